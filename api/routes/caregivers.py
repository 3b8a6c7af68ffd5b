"""Caregivers: family, volunteer partners, committee staff, social workers, supervisors.

Admins and operators create and read caregivers (operators staff the volunteer network across their
district's care plans). A caregiver reads only their own record; any other id is a 404. A caregiver's
``locale`` (the language of their notifications) is changed with ``PATCH``, by staff or by the caregiver.
"""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, status

from api.audit import Audit
from api.auth import Reader, Staff
from api.deps import Connection
from api.problems import ProblemError
from i18n import N_
from schemas.api import ApiRole, CaregiverCreate, CaregiverPublic, CaregiverSettings, Page
from storage import registry

router = APIRouter(prefix="/caregivers", tags=["caregivers"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_caregiver(body: CaregiverCreate, conn: Connection, principal: Staff, audit: Audit) -> CaregiverPublic:
    if body.webhook_url is not None and body.webhook_secret is None:
        raise ProblemError(422, N_("Invalid request"), N_("a webhook_url needs a webhook_secret to sign deliveries"))
    try:
        with conn.transaction():
            caregiver_id = registry.insert_caregiver(conn, body)
            audit("create", "caregiver", caregiver_id)
    except psycopg.errors.UniqueViolation as exc:
        raise ProblemError(
            409, N_("Caregiver exists"), N_("caregiver {caregiver_id} already exists"), caregiver_id=body.caregiver_id
        ) from exc
    return CaregiverPublic.model_validate(registry.get_caregiver(conn, caregiver_id))


@router.get("")
def list_caregivers(
    conn: Connection,
    principal: Reader,
    audit: Audit,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[CaregiverPublic]:
    if principal.role is ApiRole.CAREGIVER:
        own = registry.get_caregiver(conn, principal.subject)
        rows = [own] if own is not None and (cursor is None or principal.subject > cursor) else []
    else:
        rows = registry.list_caregivers(conn, after=cursor, limit=limit)
    items = [CaregiverPublic.model_validate(row) for row in rows]
    audit("list", "caregiver", detail=",".join(item.caregiver_id for item in items)[:500])
    return Page(items=items, next_cursor=items[-1].caregiver_id if len(items) == limit else None)


@router.get("/{caregiver_id}")
def get_caregiver(caregiver_id: str, conn: Connection, principal: Reader, audit: Audit) -> CaregiverPublic:
    row = registry.get_caregiver(conn, caregiver_id)
    if row is None or (principal.role is ApiRole.CAREGIVER and caregiver_id != principal.subject):
        raise ProblemError(404, N_("Not found"), N_("caregiver {caregiver_id} not found"), caregiver_id=caregiver_id)
    audit("view", "caregiver", caregiver_id)
    return CaregiverPublic.model_validate(row)


@router.patch("/{caregiver_id}")
def update_caregiver(
    caregiver_id: str, body: CaregiverSettings, conn: Connection, principal: Reader, audit: Audit
) -> CaregiverPublic:
    """Change a caregiver's settings (today their ``locale``); fields left out stay as they are."""
    if principal.role is ApiRole.CAREGIVER and caregiver_id != principal.subject:
        raise ProblemError(404, N_("Not found"), N_("caregiver {caregiver_id} not found"), caregiver_id=caregiver_id)
    with conn.transaction():
        if "locale" in body.model_fields_set:
            locale = body.locale.value if body.locale is not None else None
            if not registry.set_caregiver_locale(conn, caregiver_id, locale):
                raise ProblemError(
                    404, N_("Not found"), N_("caregiver {caregiver_id} not found"), caregiver_id=caregiver_id
                )
        row = registry.get_caregiver(conn, caregiver_id)
        if row is None:
            raise ProblemError(
                404, N_("Not found"), N_("caregiver {caregiver_id} not found"), caregiver_id=caregiver_id
            )
        audit("update", "caregiver", caregiver_id, detail=f"locale {body.locale}")
    return CaregiverPublic.model_validate(row)
