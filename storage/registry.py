"""Households, residents, caregivers, care plans and devices: the registry behind the API."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from schemas.api import (
    DEFAULT_EXPECTED_INTERVAL_S,
    DEFAULT_TIER,
    CaregiverCreate,
    CarePlanContactCreate,
    DeviceCreate,
    HouseholdCreate,
)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def insert_household(conn: psycopg.Connection, body: HouseholdCreate) -> str:
    household_id = body.household_id or new_id("hh")
    conn.execute(
        "INSERT INTO households (household_id, name, address, district, committee, timezone)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (household_id, body.name, body.address, body.district, body.committee, body.timezone),
    )
    for resident in body.residents:
        conn.execute(
            "INSERT INTO residents (resident_id, household_id, name, birth_year, medical_notes, phone, locale)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                new_id("res"),
                household_id,
                resident.name,
                resident.birth_year,
                resident.medical_notes,
                resident.phone,
                resident.locale,
            ),
        )
    return household_id


def get_household(conn: psycopg.Connection, household_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT household_id, name, address, district, committee, timezone, created_at FROM households"
            " WHERE household_id = %s",
            (household_id,),
        ).fetchone()
        if row is None:
            return None
        row["residents"] = cur.execute(
            "SELECT resident_id, name, birth_year FROM residents WHERE household_id = %s ORDER BY resident_id",
            (household_id,),
        ).fetchall()
    return row


def set_committee(conn: psycopg.Connection, household_id: str, committee: str) -> bool:
    """Move a household to another neighbourhood committee; False if it does not exist."""
    row = conn.execute(
        "UPDATE households SET committee = %s WHERE household_id = %s RETURNING household_id", (committee, household_id)
    ).fetchone()
    return row is not None


def list_households(
    conn: psycopg.Connection, *, district: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT household_id, name, address, district, committee, timezone, created_at FROM households"
            " WHERE (%(district)s::text IS NULL OR district = %(district)s)"
            " AND (%(after)s::text IS NULL OR household_id > %(after)s)"
            " ORDER BY household_id LIMIT %(limit)s",
            {"district": district, "after": after, "limit": limit},
        ).fetchall()
        ids = [row["household_id"] for row in rows]
        residents: dict[str, list[dict[str, Any]]] = {household_id: [] for household_id in ids}
        for resident in cur.execute(
            "SELECT household_id, resident_id, name, birth_year FROM residents WHERE household_id = ANY(%s)"
            " ORDER BY resident_id",
            (ids,),
        ).fetchall():
            residents[resident.pop("household_id")].append(resident)
    for row in rows:
        row["residents"] = residents[row["household_id"]]
    return rows


_CAREGIVER_COLUMNS = "caregiver_id, name, phone, email, webhook_url, created_at, locale"


def insert_caregiver(conn: psycopg.Connection, body: CaregiverCreate) -> str:
    caregiver_id = body.caregiver_id or new_id("cg")
    conn.execute(
        "INSERT INTO caregivers (caregiver_id, name, phone, email, webhook_url, webhook_secret, locale)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            caregiver_id,
            body.name,
            body.phone,
            body.email,
            str(body.webhook_url) if body.webhook_url else None,
            body.webhook_secret,
            body.locale.value if body.locale else None,
        ),
    )
    return caregiver_id


def set_caregiver_locale(conn: psycopg.Connection, caregiver_id: str, locale: str | None) -> bool:
    """Set (None: clear) a caregiver's language; False if there is no such caregiver."""
    return (
        conn.execute("UPDATE caregivers SET locale = %s WHERE caregiver_id = %s", (locale, caregiver_id)).rowcount == 1
    )


def get_caregiver(conn: psycopg.Connection, caregiver_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_CAREGIVER_COLUMNS} FROM caregivers WHERE caregiver_id = %s", (caregiver_id,)
        ).fetchone()


def list_caregivers(conn: psycopg.Connection, *, after: str | None, limit: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_CAREGIVER_COLUMNS} FROM caregivers WHERE (%s::text IS NULL OR caregiver_id > %s)"
            " ORDER BY caregiver_id LIMIT %s",
            (after, after, limit),
        ).fetchall()


def upsert_contact(conn: psycopg.Connection, household_id: str, body: CarePlanContactCreate) -> dict[str, Any]:
    tier = body.tier or DEFAULT_TIER[body.role]
    conn.execute(
        "INSERT INTO care_plan_contacts (household_id, caregiver_id, role, tier) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (household_id, caregiver_id) DO UPDATE SET role = excluded.role, tier = excluded.tier",
        (household_id, body.caregiver_id, body.role.value, tier),
    )
    return {"household_id": household_id, "caregiver_id": body.caregiver_id, "role": body.role, "tier": tier}


def list_contacts(conn: psycopg.Connection, household_id: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT household_id, caregiver_id, role, tier FROM care_plan_contacts WHERE household_id = %s"
            " ORDER BY tier, caregiver_id",
            (household_id,),
        ).fetchall()


_DEVICE_COLUMNS = (
    "device_id, device_type, household_id, expected_interval_s, created_at, last_seen_at, online, battery_pct"
)


def insert_device(conn: psycopg.Connection, body: DeviceCreate) -> None:
    interval = body.expected_interval_s or DEFAULT_EXPECTED_INTERVAL_S[body.device_type]
    conn.execute(
        "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s) VALUES (%s, %s, %s, %s)",
        (body.device_id, body.device_type.value, body.household_id, interval),
    )


def get_device_row(conn: psycopg.Connection, device_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE device_id = %s AND decommissioned_at IS NULL",
            (device_id,),
        ).fetchone()


def list_device_rows(
    conn: psycopg.Connection, *, household_id: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE decommissioned_at IS NULL"
            " AND (%(household)s::text IS NULL OR household_id = %(household)s)"
            " AND (%(after)s::text IS NULL OR device_id > %(after)s) ORDER BY device_id LIMIT %(limit)s",
            {"household": household_id, "after": after, "limit": limit},
        ).fetchall()


def backdate_registration(conn: psycopg.Connection, household_ids: Sequence[str], at: datetime) -> None:
    """Say that these households, their residents, devices and care-plan caregivers were registered at
    ``at`` (a seeded history: the demo's homes were "installed" before the month it shows)."""
    ids = list(household_ids)
    conn.execute("UPDATE households SET created_at = %s WHERE household_id = ANY(%s)", (at, ids))
    conn.execute("UPDATE residents SET created_at = %s WHERE household_id = ANY(%s)", (at, ids))
    conn.execute("UPDATE devices SET created_at = %s WHERE household_id = ANY(%s)", (at, ids))
    conn.execute(
        "UPDATE caregivers SET created_at = %s WHERE caregiver_id IN"
        " (SELECT caregiver_id FROM care_plan_contacts WHERE household_id = ANY(%s))",
        (at, ids),
    )


def household_exists(conn: psycopg.Connection, household_id: str) -> bool:
    return conn.execute("SELECT 1 FROM households WHERE household_id = %s", (household_id,)).fetchone() is not None


def caregiver_exists(conn: psycopg.Connection, caregiver_id: str) -> bool:
    return conn.execute("SELECT 1 FROM caregivers WHERE caregiver_id = %s", (caregiver_id,)).fetchone() is not None


def household_settings(conn: psycopg.Connection) -> list[tuple[str, str, dict[str, Any]]]:
    """(household_id, timezone, settings JSON) of every household, for the detectors."""
    rows = conn.execute("SELECT household_id, timezone, settings FROM households").fetchall()
    return [(row[0], row[1], row[2]) for row in rows]
