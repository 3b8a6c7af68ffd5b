"""Care plans in full: ordered contacts with channels, working hours, keyholder and access notes;
the household's visit interval; who may see residents' medical notes. Never commits.

``replace_plan`` rewrites the household's contacts in one statement batch (the caller's transaction),
so a plan is never seen half-written. The foundation's single-contact upsert
(``storage.registry.upsert_contact``) keeps working: new columns have defaults.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from schemas.api import DEFAULT_TIER
from schemas.care import CarePlanPut
from schemas.kinds import MEDICAL_NOTES_ROLES, CareRole


def replace_plan(conn: psycopg.Connection, household_id: str, plan: CarePlanPut) -> None:
    conn.execute(
        "UPDATE households SET visit_interval_days = %s, access_notes = %s WHERE household_id = %s",
        (plan.visit_interval_days, plan.access_notes, household_id),
    )
    conn.execute("DELETE FROM care_plan_contacts WHERE household_id = %s", (household_id,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO care_plan_contacts (household_id, caregiver_id, role, tier, position, channels,"
            " working_hours, keyholder, access_notes, medical_access) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    household_id,
                    contact.caregiver_id,
                    contact.role.value,
                    contact.tier or DEFAULT_TIER[contact.role],
                    position,
                    [channel.value for channel in contact.channels] if contact.channels is not None else None,
                    Jsonb(contact.working_hours.model_dump(mode="json")) if contact.working_hours else None,
                    contact.keyholder,
                    contact.access_notes,
                    contact.medical_access,
                )
                for position, contact in enumerate(plan.contacts)
            ],
        )


def get_plan(conn: psycopg.Connection, household_id: str) -> dict[str, Any] | None:
    """The plan with every contact and resident (medical notes included: filter with ``sees_medical_notes``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        plan = cur.execute(
            "SELECT household_id, district, timezone, visit_interval_days, access_notes, created_at"
            " FROM households WHERE household_id = %s",
            (household_id,),
        ).fetchone()
        if plan is None:
            return None
        plan["contacts"] = cur.execute(
            "SELECT caregiver_id, role, tier, channels, working_hours, keyholder, access_notes, medical_access"
            " FROM care_plan_contacts WHERE household_id = %s ORDER BY tier, position, caregiver_id",
            (household_id,),
        ).fetchall()
        plan["residents"] = cur.execute(
            "SELECT resident_id, name, medical_notes FROM residents WHERE household_id = %s ORDER BY resident_id",
            (household_id,),
        ).fetchall()
    return plan


def sees_medical_notes(role: CareRole, medical_access: bool | None) -> bool:
    """The rule: an explicit per-contact setting wins, else the role decides."""
    return medical_access if medical_access is not None else role in MEDICAL_NOTES_ROLES


def caregiver_sees_medical_notes(conn: psycopg.Connection, household_id: str, caregiver_id: str) -> bool:
    """For the API's access control: may this caregiver read this household's residents' medical notes?"""
    row = conn.execute(
        "SELECT role, medical_access FROM care_plan_contacts WHERE household_id = %s AND caregiver_id = %s",
        (household_id, caregiver_id),
    ).fetchone()
    return row is not None and sees_medical_notes(CareRole(row[0]), row[1])


def households_of(conn: psycopg.Connection, caregiver_id: str) -> list[dict[str, Any]]:
    """The caregiver's side of the many-to-many: every household whose plan names them."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT p.household_id, h.name, h.district, p.role, p.tier, p.keyholder FROM care_plan_contacts p"
            " JOIN households h USING (household_id) WHERE p.caregiver_id = %s ORDER BY p.household_id",
            (caregiver_id,),
        ).fetchall()
