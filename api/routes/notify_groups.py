"""Messaging-robot destinations (``/notify-groups``) and a caregiver's own robot (``/caregivers/{id}/robot``).

Staff only, as for care plans: admins everywhere, operators in their district (another district's group
is a 404, like a group that does not exist). Every write and every view is audited. A group serves
households of its own district only. The webhook URL (it holds the robot's key) and the DingTalk secret
are write-only: responses show the URL's host and whether a secret is set.
"""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, Response, status

from api.audit import Audit
from api.auth import Principal, Staff
from api.deps import Connection
from api.problems import ProblemError
from i18n import N_
from schemas.api import ApiRole, Page
from schemas.groups import (
    CaregiverRobot,
    NotifyGroupCreate,
    NotifyGroupHouseholds,
    NotifyGroupPublic,
    NotifyGroupUpdate,
)
from storage import notify_groups as store
from storage import registry

router = APIRouter(tags=["notify groups"])


def _district(principal: Principal) -> str | None:
    """The district a principal is confined to (None: all, for admins)."""
    return principal.district if principal.role is ApiRole.OPERATOR else None


def _group_or_404(conn: psycopg.Connection, principal: Principal, group_id: str) -> NotifyGroupPublic:
    row = store.get_group(conn, group_id, _district(principal))
    if row is None:
        raise ProblemError(404, N_("Not found"), N_("notify group {group_id} not found"), group_id=group_id)
    return NotifyGroupPublic.model_validate(row)


def _check_households(conn: psycopg.Connection, household_ids: list[str], district: str) -> None:
    outside = store.households_outside(conn, household_ids, district)
    if outside:
        raise ProblemError(
            422,
            N_("Invalid request"),
            N_("not households of district {district}: {join}"),
            district=district,
            join=", ".join(outside[:20]),
        )


@router.post("/notify-groups", status_code=status.HTTP_201_CREATED)
def create_group(body: NotifyGroupCreate, conn: Connection, principal: Staff, audit: Audit) -> NotifyGroupPublic:
    """Register a robot: its kind, webhook URL (and DingTalk secret), tier, language and households."""
    confined = _district(principal)
    if confined is not None and body.district not in {None, confined}:
        raise ProblemError(403, N_("Forbidden"), N_("operators register groups of their own district"))
    district = confined or body.district
    if district is None:
        raise ProblemError(422, N_("Invalid request"), N_("a district is required"))
    group_id = body.group_id or registry.new_id("grp")
    _check_households(conn, body.household_ids, district)
    try:
        with conn.transaction():
            store.insert_group(conn, body, group_id, district)
            store.replace_households(conn, group_id, body.household_ids)
            audit(
                "create", "notify_group", group_id, detail=f"{body.kind.value}, {len(body.household_ids)} household(s)"
            )
    except psycopg.errors.UniqueViolation as exc:
        raise ProblemError(
            409, N_("Notify group exists"), N_("notify group {group_id} already exists"), group_id=group_id
        ) from exc
    return _group_or_404(conn, principal, group_id)


@router.get("/notify-groups")
def list_groups(
    conn: Connection,
    principal: Staff,
    audit: Audit,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[NotifyGroupPublic]:
    rows = store.list_groups(conn, district=_district(principal), after=cursor, limit=limit)
    items = [NotifyGroupPublic.model_validate(row) for row in rows]
    audit("list", "notify_group", detail=",".join(item.group_id for item in items)[:500])
    return Page(items=items, next_cursor=items[-1].group_id if len(items) == limit else None)


@router.get("/notify-groups/{group_id}")
def get_group(group_id: str, conn: Connection, principal: Staff, audit: Audit) -> NotifyGroupPublic:
    group = _group_or_404(conn, principal, group_id)
    audit("view", "notify_group", group_id)
    return group


@router.patch("/notify-groups/{group_id}")
def update_group(
    group_id: str, body: NotifyGroupUpdate, conn: Connection, principal: Staff, audit: Audit
) -> NotifyGroupPublic:
    group = _group_or_404(conn, principal, group_id)
    if body.secret is not None and group.kind.value == "wecom":
        raise ProblemError(422, N_("Invalid request"), N_("WeCom group robots have no secret"))
    with conn.transaction():
        store.update_group(conn, group_id, body)
        audit("update", "notify_group", group_id, detail=",".join(sorted(body.model_fields_set)))
    return _group_or_404(conn, principal, group_id)


@router.put("/notify-groups/{group_id}/households")
def replace_households(
    group_id: str, body: NotifyGroupHouseholds, conn: Connection, principal: Staff, audit: Audit
) -> NotifyGroupPublic:
    """Replace the households the group serves (its district's households only)."""
    group = _group_or_404(conn, principal, group_id)
    _check_households(conn, body.household_ids, group.district)
    with conn.transaction():
        store.replace_households(conn, group_id, body.household_ids)
        audit("update", "notify_group", group_id, detail=f"{len(body.household_ids)} household(s)")
    return _group_or_404(conn, principal, group_id)


@router.delete("/notify-groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_group(group_id: str, conn: Connection, principal: Staff, audit: Audit) -> Response:
    """Remove a robot; its queued messages go with it (the people on the care plans are not affected)."""
    _group_or_404(conn, principal, group_id)
    with conn.transaction():
        store.delete_group(conn, group_id)
        audit("delete", "notify_group", group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/caregivers/{caregiver_id}/robot")
def set_caregiver_robot(
    caregiver_id: str, body: CaregiverRobot, conn: Connection, principal: Staff, audit: Audit
) -> CaregiverRobot:
    """Choose the group robot that carries this caregiver's alerts when a care plan lists its kind
    (``wecom`` or ``dingtalk``) among the caregiver's channels; ``null`` clears it."""
    if not registry.caregiver_exists(conn, caregiver_id):
        raise ProblemError(404, N_("Not found"), N_("caregiver {caregiver_id} not found"), caregiver_id=caregiver_id)
    if body.group_id is not None:
        _group_or_404(conn, principal, body.group_id)
    with conn.transaction():
        store.set_caregiver_robot(conn, caregiver_id, body.group_id)
        audit("update", "caregiver", caregiver_id, detail=f"robot group {body.group_id}")
    return body
