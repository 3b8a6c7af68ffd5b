"""Home visits: an overdue visit becomes a reminder task (a ``visit_overdue`` alert) for the care team.

Each household has a visit interval (default 30 days, the programs' monthly visit). When the last
logged visit (or, before any, the household's registration) is older than that, the alerting worker
raises one ``visit_overdue`` alert through the normal path, so it is routed by the policy like any
normal-severity alert: the care team's queue, in working hours. Logging a visit resolves the open task
(outcome ``other``, "visit logged"); such tasks are left out of false-alarm statistics
(``detector = 'visits'``). Everything runs in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from alerting.service import AlertingConfig, apply_findings, resolve_alert
from schemas.evidence import Evidence, LastVisit, NoVisitYet, VisitOverdue
from schemas.findings import Finding
from schemas.kinds import DEFAULT_SEVERITY, AlertKind, Outcome
from storage import alerts as alert_store
from storage import visits as store

DETECTOR = "visits"


def raise_overdue_visits(conn: psycopg.Connection, now: datetime, config: AlertingConfig) -> int:
    """Open a reminder task for every household whose visit is overdue; return how many were opened."""
    findings = []
    for due in store.overdue(conn, now):
        last = (
            LastVisit(at=due.last_visit_at, by=due.last_visitor or "")
            if due.last_visit_at is not None
            else NoVisitYet()
        )
        message = VisitOverdue(last=last, interval_days=due.interval_days, due_at=due.due_at)
        findings.append(
            Finding(
                kind=AlertKind.VISIT_OVERDUE,
                severity=DEFAULT_SEVERITY[AlertKind.VISIT_OVERDUE],
                household_id=due.household_id,
                device_id=None,
                at=due.due_at,
                detected_at=now,
                evidence=Evidence(message=message, tz=due.timezone, as_of=now),
                detector=DETECTOR,
                details={"interval_days": due.interval_days},
            )
        )
    return len(apply_findings(conn, findings, now, config)) if findings else 0


def log_visit(
    conn: psycopg.Connection, household_id: str, caregiver_id: str, visited_at: datetime, note: str, now: datetime
) -> dict[str, object]:
    """Record a visit and close the household's open overdue-visit task, if any."""
    visit = store.insert_visit(conn, household_id, caregiver_id, visited_at, note)
    task = alert_store.lock_open_alert(conn, household_id, AlertKind.VISIT_OVERDUE.value)
    if task is not None:
        resolve_alert(conn, task.alert_id, caregiver_id, Outcome.OTHER, f"visit logged ({visited_at:%Y-%m-%d})", now)
    return visit
