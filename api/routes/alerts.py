"""Alerts: list and filter, the timeline, claim (acknowledge) and resolve with an outcome.

Scoped like every read: operators see their district, caregivers their care plans' households (any other
alert is a 404). A caregiver claims and resolves as themselves; staff may claim on behalf of a caregiver
who accepted by phone and resolve naming who dealt with it. Every view and change is audited.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import psycopg
from fastapi import APIRouter, Path, Query

from alerting.service import claim_alert, resolve_alert
from api.audit import Audit
from api.auth import Principal, Reader
from api.deps import Connection, Context
from api.language import RequestLanguage, alert_public, event_public
from api.problems import ProblemError
from i18n import N_
from schemas.alerts import AlertClaim, AlertEventPublic, AlertPublic, AlertResolve
from schemas.api import ApiRole, Page
from schemas.kinds import AlertKind, AlertStatus, Severity
from schemas.language import Language
from storage import alert_views, registry
from storage import alerts as store

router = APIRouter(prefix="/alerts", tags=["alerts"])


AlertIdPath = Annotated[int, Path(ge=1, le=2**63 - 1)]


class Order(StrEnum):
    NEWEST = "newest"
    OLDEST = "oldest"


@router.get("")
def list_alerts(
    conn: Connection,
    principal: Reader,
    audit: Audit,
    language: RequestLanguage,
    household_id: str | None = None,
    district: str | None = None,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    kind: Annotated[list[AlertKind] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="opened at or after (with UTC offset)")] = None,
    until: Annotated[datetime | None, Query(description="opened before (with UTC offset)")] = None,
    order: Order = Order.NEWEST,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[AlertPublic]:
    """Keyset pages by ``alert_id``: pass the previous page's ``next_cursor`` as ``cursor``."""
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise ProblemError(422, N_("Invalid request"), N_("since and until need a UTC offset"))
    flt = alert_views.AlertFilter(
        statuses=tuple(s.value for s in status or ()),
        severities=tuple(s.value for s in severity or ()),
        kinds=tuple(k.value for k in kind or ()),
        household_id=household_id,
        district=district,
        since=since,
        until=until,
    )
    rows = alert_views.list_alerts(
        conn, principal.scope, flt, cursor=cursor, newest_first=order is Order.NEWEST, limit=limit
    )
    items = [alert_public(row, language) for row in rows]
    audit("list", "alert", detail=",".join(str(item.alert_id) for item in items)[:500])
    return Page(items=items, next_cursor=str(items[-1].alert_id) if len(items) == limit else None)


def alert_or_404(
    conn: psycopg.Connection, principal: Principal, alert_id: int, language: Language = Language.EN
) -> AlertPublic:
    row = alert_views.get_alert(conn, principal.scope, alert_id)
    if row is None:
        raise ProblemError(404, N_("Not found"), N_("alert {alert_id} not found"), alert_id=alert_id)
    return alert_public(row, language)


@router.get("/{alert_id}")
def get_alert(
    alert_id: AlertIdPath, conn: Connection, principal: Reader, audit: Audit, language: RequestLanguage
) -> AlertPublic:
    alert = alert_or_404(conn, principal, alert_id, language)
    audit("view", "alert", alert_id)
    return alert


@router.get("/{alert_id}/timeline")
def get_timeline(
    alert_id: AlertIdPath, conn: Connection, principal: Reader, audit: Audit, language: RequestLanguage
) -> list[AlertEventPublic]:
    alert_or_404(conn, principal, alert_id)
    audit("view", "alert_timeline", alert_id)
    return [event_public(row, language) for row in store.timeline(conn, alert_id)]


@router.post("/{alert_id}/claim")
def claim(
    alert_id: AlertIdPath,
    body: AlertClaim,
    conn: Connection,
    context: Context,
    principal: Reader,
    audit: Audit,
    language: RequestLanguage,
) -> AlertPublic:
    """Acknowledge the alert: the first caregiver to claim owns it and escalation stops."""
    alert_or_404(conn, principal, alert_id)
    if principal.role is ApiRole.CAREGIVER and body.caregiver_id != principal.subject:
        raise ProblemError(403, N_("Forbidden"), N_("a caregiver claims alerts as themselves"))
    if not registry.caregiver_exists(conn, body.caregiver_id):
        raise ProblemError(
            422, N_("Invalid request"), N_("caregiver {caregiver_id} not found"), caregiver_id=body.caregiver_id
        )
    with conn.transaction():  # refusals become 404/409 problems (api.problems)
        claim_alert(conn, alert_id, body.caregiver_id, context.clock(), context.alerting)
        audit("claim", "alert", alert_id, detail=f"for caregiver {body.caregiver_id}")
    context.on_alert_changed(alert_id)
    return alert_or_404(conn, principal, alert_id, language)


@router.post("/{alert_id}/resolve")
def resolve(
    alert_id: AlertIdPath,
    body: AlertResolve,
    conn: Connection,
    context: Context,
    principal: Reader,
    audit: Audit,
    language: RequestLanguage,
) -> AlertPublic:
    """Close the alert with its outcome. A caregiver is recorded as the actor whatever ``actor`` says."""
    alert_or_404(conn, principal, alert_id)
    actor = principal.subject if principal.role is ApiRole.CAREGIVER else body.actor
    with conn.transaction():  # refusals become 404/409 problems (api.problems)
        resolve_alert(conn, alert_id, actor, body.outcome, body.note, context.clock())
        audit("resolve", "alert", alert_id, detail=f"outcome {body.outcome.value} by {actor}")
    context.on_alert_changed(alert_id)
    return alert_or_404(conn, principal, alert_id, language)
