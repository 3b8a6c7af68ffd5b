"""Caregivers: family, volunteer partners, committee staff, social workers, supervisors."""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, status

from api.deps import Connection
from api.problems import ProblemError
from schemas.api import CaregiverCreate, CaregiverPublic, Page
from storage import registry

router = APIRouter(prefix="/caregivers", tags=["caregivers"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_caregiver(body: CaregiverCreate, conn: Connection) -> CaregiverPublic:
    if body.webhook_url is not None and body.webhook_secret is None:
        raise ProblemError(422, "Invalid request", "a webhook_url needs a webhook_secret to sign deliveries")
    try:
        with conn.transaction():
            caregiver_id = registry.insert_caregiver(conn, body)
    except psycopg.errors.UniqueViolation as exc:
        raise ProblemError(409, "Caregiver exists", f"caregiver {body.caregiver_id} already exists") from exc
    return CaregiverPublic.model_validate(registry.get_caregiver(conn, caregiver_id))


@router.get("")
def list_caregivers(
    conn: Connection, cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> Page[CaregiverPublic]:
    items = [CaregiverPublic.model_validate(row) for row in registry.list_caregivers(conn, after=cursor, limit=limit)]
    return Page(items=items, next_cursor=items[-1].caregiver_id if len(items) == limit else None)


@router.get("/{caregiver_id}")
def get_caregiver(caregiver_id: str, conn: Connection) -> CaregiverPublic:
    row = registry.get_caregiver(conn, caregiver_id)
    if row is None:
        raise ProblemError(404, "Not found", f"caregiver {caregiver_id} not found")
    return CaregiverPublic.model_validate(row)
