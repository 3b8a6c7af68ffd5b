"""Households, their residents and care plans.

Operators see and manage their district's households; caregivers read the households in their care
plans (any other household is a 404); device provisioners have no access. Residents' medical notes are
shown only to the roles ``api.auth.may_read_medical_notes`` allows, and every view is audited.
"""

from __future__ import annotations

from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query, status

from api.audit import Audit
from api.auth import Principal, Reader, Staff, may_read_medical_notes
from api.deps import Connection
from api.problems import ProblemError
from i18n import N_
from schemas.api import (
    ApiRole,
    CarePlanContactCreate,
    CarePlanContactPublic,
    HouseholdCreate,
    HouseholdPatch,
    HouseholdPublic,
    Page,
    ResidentCreate,
    ResidentDetail,
)
from storage import access, registry, residents

router = APIRouter(prefix="/households", tags=["households"])


def visible_or_404(conn: psycopg.Connection, principal: Principal, household_id: str) -> None:
    """404 for a household that does not exist *or* that the caller may not see (no existence leak)."""
    if not access.household_visible(conn, principal.scope, household_id):
        raise ProblemError(404, N_("Not found"), N_("household {household_id} not found"), household_id=household_id)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_household(body: HouseholdCreate, conn: Connection, principal: Staff, audit: Audit) -> HouseholdPublic:
    if principal.role is ApiRole.OPERATOR:
        if body.district not in {"", principal.district}:
            raise ProblemError(403, N_("Forbidden"), N_("operators create households in their own district only"))
        body = body.model_copy(update={"district": principal.district})
    try:
        with conn.transaction():
            household_id = registry.insert_household(conn, body)
            audit("create", "household", household_id)
    except psycopg.errors.UniqueViolation as exc:
        raise ProblemError(
            409, N_("Household exists"), N_("household {household_id} already exists"), household_id=body.household_id
        ) from exc
    return HouseholdPublic.model_validate(registry.get_household(conn, household_id))


@router.get("")
def list_households(
    conn: Connection,
    principal: Reader,
    audit: Audit,
    district: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[HouseholdPublic]:
    """Ordered by id; ``cursor`` is the last id of the previous page (keyset pagination)."""
    scope = principal.scope
    rows: list[dict[str, Any] | None]
    if scope.caregiver_id is not None:
        # A caregiver's care plans name a handful of households: read them one by one.
        ids = sorted(i for i in access.visible_household_ids(conn, scope) or () if cursor is None or i > cursor)
        rows = [registry.get_household(conn, i) for i in ids[:limit]]
    elif scope.district is not None and district not in {None, scope.district}:
        rows = []  # another district: nothing the operator may see
    else:
        rows = list(registry.list_households(conn, district=scope.district or district, after=cursor, limit=limit))
    items = [HouseholdPublic.model_validate(row) for row in rows if row is not None]
    audit("list", "household", detail=",".join(item.household_id for item in items)[:500])
    return Page(items=items, next_cursor=items[-1].household_id if len(items) == limit else None)


@router.get("/{household_id}")
def get_household(household_id: str, conn: Connection, principal: Reader, audit: Audit) -> HouseholdPublic:
    visible_or_404(conn, principal, household_id)
    row = registry.get_household(conn, household_id)
    audit("view", "household", household_id)
    return HouseholdPublic.model_validate(row)


@router.patch("/{household_id}")
def update_household(
    household_id: str, body: HouseholdPatch, conn: Connection, principal: Staff, audit: Audit
) -> HouseholdPublic:
    """Assign the household to a neighbourhood committee (居委会) of its district."""
    visible_or_404(conn, principal, household_id)
    with conn.transaction():
        if not registry.set_committee(conn, household_id, body.committee):
            raise ProblemError(
                404, N_("Not found"), N_("household {household_id} not found"), household_id=household_id
            )
        audit("update", "household", household_id, detail="committee")
    return HouseholdPublic.model_validate(registry.get_household(conn, household_id))


@router.get("/{household_id}/residents")
def list_residents(household_id: str, conn: Connection, principal: Reader, audit: Audit) -> list[ResidentDetail]:
    visible_or_404(conn, principal, household_id)
    show_notes = may_read_medical_notes(conn, principal, household_id)
    items = [
        ResidentDetail(
            resident_id=row["resident_id"],
            household_id=row["household_id"],
            name=row["name"],
            birth_year=row["birth_year"],
            medical_notes=row["medical_notes"] if show_notes else None,
            medical_notes_visible=show_notes,
        )
        for row in residents.list_residents(conn, household_id)
    ]
    audit("view", "residents", household_id, detail="with medical notes" if show_notes else "")
    return items


@router.post("/{household_id}/residents", status_code=status.HTTP_201_CREATED)
def add_resident(
    household_id: str, body: ResidentCreate, conn: Connection, principal: Staff, audit: Audit
) -> ResidentDetail:
    visible_or_404(conn, principal, household_id)
    with conn.transaction():
        resident_id = residents.insert_resident(conn, household_id, body)
        audit("create", "resident", resident_id, detail=f"household {household_id}")
    return ResidentDetail(
        resident_id=resident_id,
        household_id=household_id,
        name=body.name,
        birth_year=body.birth_year,
        medical_notes=body.medical_notes,
        medical_notes_visible=True,
    )


@router.put("/{household_id}/care-plan/{caregiver_id}")
def set_contact(
    household_id: str,
    caregiver_id: str,
    body: CarePlanContactCreate,
    conn: Connection,
    principal: Staff,
    audit: Audit,
) -> CarePlanContactPublic:
    if body.caregiver_id != caregiver_id:
        raise ProblemError(422, N_("Invalid request"), N_("caregiver_id in the path and the body differ"))
    visible_or_404(conn, principal, household_id)
    if not registry.caregiver_exists(conn, caregiver_id):
        raise ProblemError(404, N_("Not found"), N_("caregiver {caregiver_id} not found"), caregiver_id=caregiver_id)
    with conn.transaction():
        contact = registry.upsert_contact(conn, household_id, body)
        audit("update", "care_plan", household_id, detail=f"caregiver {caregiver_id} as {body.role.value}")
    return CarePlanContactPublic.model_validate(contact)


@router.get("/{household_id}/care-plan")
def get_care_plan(household_id: str, conn: Connection, principal: Reader, audit: Audit) -> list[CarePlanContactPublic]:
    visible_or_404(conn, principal, household_id)
    audit("view", "care_plan", household_id)
    return [CarePlanContactPublic.model_validate(row) for row in registry.list_contacts(conn, household_id)]
