"""Alerts: list and filter, the timeline, claim (acknowledge) and resolve with an outcome."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alerting.service import AlertConflictError, AlertNotFoundError, claim_alert, resolve_alert
from api.deps import Connection, Context
from api.problems import ProblemError
from schemas.alerts import AlertClaim, AlertEventPublic, AlertPublic, AlertResolve
from schemas.api import Page
from schemas.kinds import AlertKind, AlertStatus, Severity
from storage import alerts as store
from storage import registry

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("")
def list_alerts(
    conn: Connection,
    household_id: str | None = None,
    status: Annotated[list[AlertStatus] | None, Query()] = None,
    kind: AlertKind | None = None,
    severity: Severity | None = None,
    cursor: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[AlertPublic]:
    rows = store.list_alerts(
        conn,
        household_id=household_id,
        statuses=[s.value for s in status] if status else None,
        kind=kind.value if kind else None,
        severity=severity.value if severity else None,
        before_id=cursor,
        limit=limit,
    )
    items = [AlertPublic.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=str(items[-1].alert_id) if len(items) == limit else None)


def _alert_or_404(conn: Connection, alert_id: int) -> AlertPublic:
    row = store.get_alert(conn, alert_id)
    if row is None:
        raise ProblemError(404, "Not found", f"alert {alert_id} not found")
    return AlertPublic.model_validate(row)


@router.get("/{alert_id}")
def get_alert(alert_id: int, conn: Connection) -> AlertPublic:
    return _alert_or_404(conn, alert_id)


@router.get("/{alert_id}/timeline")
def get_timeline(alert_id: int, conn: Connection) -> list[AlertEventPublic]:
    _alert_or_404(conn, alert_id)
    return [AlertEventPublic.model_validate(row) for row in store.timeline(conn, alert_id)]


@router.post("/{alert_id}/claim")
def claim(alert_id: int, body: AlertClaim, conn: Connection, context: Context) -> AlertPublic:
    """Acknowledge the alert: the first caregiver to claim owns it and escalation stops."""
    if not registry.caregiver_exists(conn, body.caregiver_id):
        raise ProblemError(422, "Invalid request", f"caregiver {body.caregiver_id} not found")
    try:
        with conn.transaction():
            claim_alert(conn, alert_id, body.caregiver_id, context.clock(), context.alerting)
    except AlertNotFoundError as exc:
        raise ProblemError(404, "Not found", str(exc)) from exc
    except AlertConflictError as exc:
        raise ProblemError(409, "Conflict", str(exc)) from exc
    context.on_alert_changed(alert_id)
    return _alert_or_404(conn, alert_id)


@router.post("/{alert_id}/resolve")
def resolve(alert_id: int, body: AlertResolve, conn: Connection, context: Context) -> AlertPublic:
    try:
        with conn.transaction():
            resolve_alert(conn, alert_id, body.actor, body.outcome, body.note, context.clock())
    except AlertNotFoundError as exc:
        raise ProblemError(404, "Not found", str(exc)) from exc
    except AlertConflictError as exc:
        raise ProblemError(409, "Conflict", str(exc)) from exc
    context.on_alert_changed(alert_id)
    return _alert_or_404(conn, alert_id)
