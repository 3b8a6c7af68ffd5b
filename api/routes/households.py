"""Households, their residents and care plans."""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, status

from api.deps import Connection
from api.problems import ProblemError
from schemas.api import (
    CarePlanContactCreate,
    CarePlanContactPublic,
    HouseholdCreate,
    HouseholdPublic,
    Page,
)
from storage import registry

router = APIRouter(prefix="/households", tags=["households"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_household(body: HouseholdCreate, conn: Connection) -> HouseholdPublic:
    try:
        with conn.transaction():
            household_id = registry.insert_household(conn, body)
    except psycopg.errors.UniqueViolation as exc:
        raise ProblemError(409, "Household exists", f"household {body.household_id} already exists") from exc
    row = registry.get_household(conn, household_id)
    return HouseholdPublic.model_validate(row)


@router.get("")
def list_households(
    conn: Connection,
    district: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[HouseholdPublic]:
    rows = registry.list_households(conn, district=district, after=cursor, limit=limit)
    items = [HouseholdPublic.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=items[-1].household_id if len(items) == limit else None)


@router.get("/{household_id}")
def get_household(household_id: str, conn: Connection) -> HouseholdPublic:
    row = registry.get_household(conn, household_id)
    if row is None:
        raise ProblemError(404, "Not found", f"household {household_id} not found")
    return HouseholdPublic.model_validate(row)


@router.put("/{household_id}/care-plan/{caregiver_id}")
def set_contact(
    household_id: str, caregiver_id: str, body: CarePlanContactCreate, conn: Connection
) -> CarePlanContactPublic:
    if body.caregiver_id != caregiver_id:
        raise ProblemError(422, "Invalid request", "caregiver_id in the path and the body differ")
    if not registry.household_exists(conn, household_id):
        raise ProblemError(404, "Not found", f"household {household_id} not found")
    if not registry.caregiver_exists(conn, caregiver_id):
        raise ProblemError(404, "Not found", f"caregiver {caregiver_id} not found")
    with conn.transaction():
        contact = registry.upsert_contact(conn, household_id, body)
    return CarePlanContactPublic.model_validate(contact)


@router.get("/{household_id}/care-plan")
def get_care_plan(household_id: str, conn: Connection) -> list[CarePlanContactPublic]:
    if not registry.household_exists(conn, household_id):
        raise ProblemError(404, "Not found", f"household {household_id} not found")
    return [CarePlanContactPublic.model_validate(row) for row in registry.list_contacts(conn, household_id)]
