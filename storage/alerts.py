"""Alerts, their timeline, and the notification outbox. Functions take a connection and never commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from i18n import english
from schemas.evidence import Evidence
from schemas.findings import AlertClosure, Finding
from schemas.kinds import AlertKind


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert_id: int
    household_id: str
    kind: str
    severity: str
    status: str
    escalation_level: int
    started_at: datetime
    opened_at: datetime
    evidence: str
    claimed_by: str | None
    # schemas.evidence.Evidence as JSON; None for alerts opened before evidence was data.
    evidence_data: dict[str, Any] | None = None


_ALERT_ROW = (
    "alert_id, household_id, kind, severity, status, escalation_level, started_at, opened_at, evidence, claimed_by,"
    " evidence_data"
)


def _evidence_json(evidence: Evidence) -> Jsonb:
    return Jsonb(evidence.model_dump(mode="json"))


def _row(values: tuple[Any, ...]) -> AlertRow:
    return AlertRow(*values)


def insert_alert(conn: psycopg.Connection, finding: Finding, now: datetime) -> AlertRow | None:
    """Open a new alert; None if an unresolved one of this household and kind already exists."""
    row = conn.execute(
        "INSERT INTO alerts (household_id, device_id, kind, severity, detector, evidence, evidence_data, details,"
        " started_at, opened_at, last_occurrence_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (household_id, kind) WHERE status <> 'resolved' DO NOTHING"
        f" RETURNING {_ALERT_ROW}",
        (
            finding.household_id,
            finding.device_id,
            finding.kind.value,
            finding.severity.value,
            finding.detector,
            english(finding.evidence),
            _evidence_json(finding.evidence),
            Jsonb(finding.details),
            finding.at,
            now,
            now,
        ),
    ).fetchone()
    return _row(row) if row else None


def lock_open_alert(conn: psycopg.Connection, household_id: str, kind: str) -> AlertRow | None:
    row = conn.execute(
        f"SELECT {_ALERT_ROW} FROM alerts WHERE household_id = %s AND kind = %s AND status <> 'resolved' FOR UPDATE",
        (household_id, kind),
    ).fetchone()
    return _row(row) if row else None


def lock_alert(conn: psycopg.Connection, alert_id: int) -> AlertRow | None:
    row = conn.execute(f"SELECT {_ALERT_ROW} FROM alerts WHERE alert_id = %s FOR UPDATE", (alert_id,)).fetchone()
    return _row(row) if row else None


def add_occurrence(
    conn: psycopg.Connection, alert_id: int, now: datetime, severity: str, evidence: Evidence | None
) -> int:
    """Count a repeat; with ``evidence`` (a raised severity) it becomes the alert's evidence. Returns the
    alert's occurrence count now."""
    text, data = (english(evidence), _evidence_json(evidence)) if evidence is not None else (None, None)
    row = conn.execute(
        "UPDATE alerts SET occurrences = occurrences + 1, last_occurrence_at = %s, severity = %s,"
        " evidence = coalesce(%s, evidence), evidence_data = coalesce(%s::jsonb, evidence_data) WHERE alert_id = %s"
        " RETURNING occurrences",
        (now, severity, text, data, alert_id),
    ).fetchone()
    return int(row[0]) if row else 0


def merge_details(conn: psycopg.Connection, alert_id: int, details: dict[str, Any]) -> None:
    conn.execute("UPDATE alerts SET details = details || %s WHERE alert_id = %s", (Jsonb(details), alert_id))


def add_timeline(
    conn: psycopg.Connection, alert_id: int, at: datetime, actor: str, action: str, detail: str | Evidence = ""
) -> None:
    """A timeline entry; evidence (an occurrence, a note) is kept as data beside its English text."""
    text, data = (english(detail), _evidence_json(detail)) if isinstance(detail, Evidence) else (detail, None)
    conn.execute(
        "INSERT INTO alert_events (alert_id, at, actor, action, detail, detail_data) VALUES (%s, %s, %s, %s, %s, %s)",
        (alert_id, at, actor, action, text[:2000], data),
    )


def set_escalation(conn: psycopg.Connection, alert_id: int, level: int, next_at: datetime | None) -> None:
    conn.execute(
        "UPDATE alerts SET escalation_level = %s, next_escalation_at = %s WHERE alert_id = %s",
        (level, next_at, alert_id),
    )


def lock_due_escalations(conn: psycopg.Connection, now: datetime, limit: int = 100) -> list[AlertRow]:
    """Alerts whose next escalation step is due; rows locked, skipping those another worker holds."""
    rows = conn.execute(
        f"SELECT {_ALERT_ROW} FROM alerts WHERE next_escalation_at <= %s"
        " AND status IN ('checking_in', 'open', 'notified') ORDER BY next_escalation_at LIMIT %s"
        " FOR UPDATE SKIP LOCKED",
        (now, limit),
    ).fetchall()
    return [_row(row) for row in rows]


@dataclass(frozen=True, slots=True)
class Contact:
    caregiver_id: str
    role: str
    tier: int
    webhook_url: str | None
    email: str = ""
    phone: str = ""
    # None: the webhook if there is one (the foundation's behaviour before channels were configurable).
    channels: tuple[str, ...] | None = None
    working_hours: dict[str, Any] | None = None
    timezone: str = "Asia/Shanghai"
    # The caregiver's own robot (``caregivers.robot_group_id``) and its kind ('wecom' or 'dingtalk').
    robot_group_id: str | None = None
    robot_kind: str | None = None


def contacts(conn: psycopg.Connection, household_id: str, tiers: Iterable[int]) -> list[Contact]:
    """The care-plan contacts of ``tiers``, in tier then plan order."""
    rows = conn.execute(
        "SELECT c.caregiver_id, p.role, p.tier, c.webhook_url, c.email, c.phone, p.channels, p.working_hours,"
        " h.timezone, g.group_id, g.kind FROM care_plan_contacts p JOIN caregivers c USING (caregiver_id)"
        " JOIN households h USING (household_id) LEFT JOIN notify_groups g ON g.group_id = c.robot_group_id"
        " WHERE p.household_id = %s AND p.tier = ANY(%s)"
        " ORDER BY p.tier, p.position, c.caregiver_id",
        (household_id, list(tiers)),
    ).fetchall()
    return [
        Contact(
            caregiver_id=row[0],
            role=row[1],
            tier=row[2],
            webhook_url=row[3],
            email=row[4],
            phone=row[5],
            channels=tuple(row[6]) if row[6] is not None else None,
            working_hours=row[7],
            timezone=row[8],
            robot_group_id=row[9],
            robot_kind=row[10],
        )
        for row in rows
    ]


def notified_caregivers(conn: psycopg.Connection, alert_id: int, level: int | None = None) -> list[str]:
    """Caregivers asked to act on the alert (claim notices excluded), at ``level`` or at any step."""
    rows = conn.execute(
        "SELECT DISTINCT caregiver_id FROM notifications WHERE alert_id = %s AND reason <> 'claimed_by_other'"
        " AND caregiver_id IS NOT NULL"
        " AND (%s::int IS NULL OR level = %s) ORDER BY 1",
        (alert_id, level, level),
    ).fetchall()
    return [row[0] for row in rows]


def notified_channels(conn: psycopg.Connection, alert_id: int) -> list[tuple[str, str]]:
    """(caregiver, channel) pairs that were asked to act on the alert: where to send a claim notice.
    Robot deliveries are left out: their groups get one claim notice each (``storage.notify_groups``)."""
    rows = conn.execute(
        "SELECT DISTINCT caregiver_id, channel FROM notifications WHERE alert_id = %s"
        " AND reason <> 'claimed_by_other' AND caregiver_id IS NOT NULL AND group_id IS NULL ORDER BY 1, 2",
        (alert_id,),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def add_decline(
    conn: psycopg.Connection, alert_id: int, caregiver_id: str, level: int, at: datetime, note: str
) -> bool:
    """Record a decline at a step; False if this caregiver had already declined at it."""
    row = conn.execute(
        "INSERT INTO alert_declines (alert_id, caregiver_id, level, at, note) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING alert_id",
        (alert_id, caregiver_id, level, at, note[:500]),
    ).fetchone()
    return row is not None


def declined_caregivers(conn: psycopg.Connection, alert_id: int, level: int) -> set[str]:
    rows = conn.execute(
        "SELECT caregiver_id FROM alert_declines WHERE alert_id = %s AND level = %s", (alert_id, level)
    ).fetchall()
    return {row[0] for row in rows}


def enqueue_notification(
    conn: psycopg.Connection,
    *,
    alert_id: int,
    caregiver_id: str | None,
    channel: str,
    idempotency_key: str,
    body: dict[str, Any],
    now: datetime,
    deadline: datetime,
    not_before: datetime | None = None,
    level: int | None = None,
    reason: str = "new",
    checkin_id: str | None = None,
    group_id: str | None = None,
) -> int | None:
    """Add an outbox row, due at ``not_before`` (default ``now``); None if that key was already enqueued.

    A row goes to a caregiver (``group_id``: through their group robot), to a care-team group chat
    (``group_id``, no caregiver), or to the resident being checked on (``checkin_id`` alone)."""
    row = conn.execute(
        "INSERT INTO notifications (alert_id, caregiver_id, checkin_id, channel, idempotency_key, body, created_at,"
        " next_attempt_at, deadline, level, reason, group_id)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING notification_id",
        (
            alert_id,
            caregiver_id,
            checkin_id,
            channel,
            idempotency_key,
            Jsonb(body),
            now,
            not_before or now,
            deadline,
            level,
            reason,
            group_id,
        ),
    ).fetchone()
    return row[0] if row else None


def claim(conn: psycopg.Connection, alert_id: int, caregiver_id: str, now: datetime) -> None:
    conn.execute(
        "UPDATE alerts SET status = 'claimed', claimed_by = %s, claimed_at = %s, next_escalation_at = NULL"
        " WHERE alert_id = %s",
        (caregiver_id, now, alert_id),
    )


def resolve(conn: psycopg.Connection, alert_id: int, actor: str, outcome: str, note: str, now: datetime) -> None:
    conn.execute(
        "UPDATE alerts SET status = 'resolved', resolved_by = %s, resolved_at = %s, outcome = %s,"
        " resolution_note = %s, next_escalation_at = NULL WHERE alert_id = %s",
        (actor, now, outcome, note, alert_id),
    )


def get_alert(conn: psycopg.Connection, alert_id: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM alerts WHERE alert_id = %s", (alert_id,)).fetchone()


def list_alerts(
    conn: psycopg.Connection,
    *,
    household_id: str | None = None,
    statuses: list[str] | None = None,
    kind: str | None = None,
    severity: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; keyset pagination by ``alert_id`` (``before_id``)."""
    clauses = ["true"]
    params: list[Any] = []
    for column, value in (("household_id", household_id), ("kind", kind), ("severity", severity)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if statuses:
        clauses.append("status = ANY(%s)")
        params.append(statuses)
    if before_id is not None:
        clauses.append("alert_id < %s")
        params.append(before_id)
    params.append(limit)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT * FROM alerts WHERE {' AND '.join(clauses)} ORDER BY alert_id DESC LIMIT %s", params
        ).fetchall()


def timeline(conn: psycopg.Connection, alert_id: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT at, actor, action, detail, detail_data FROM alert_events WHERE alert_id = %s"
            " ORDER BY alert_event_id",
            (alert_id,),
        ).fetchall()


def on_care_plan(conn: psycopg.Connection, alert_id: int, caregiver_id: str) -> bool:
    """True if the caregiver is a contact of the alert's household (may claim or decline it)."""
    row = conn.execute(
        "SELECT 1 FROM alerts a JOIN care_plan_contacts p USING (household_id)"
        " WHERE a.alert_id = %s AND p.caregiver_id = %s",
        (alert_id, caregiver_id),
    ).fetchone()
    return row is not None


def closed_since(conn: psycopg.Connection, since: datetime, limit: int = 10_000) -> list[AlertClosure]:
    """Alerts resolved at or after ``since``, oldest first (the detectors end the latches they came from)."""
    rows = conn.execute(
        "SELECT household_id, kind, device_id, resolved_at FROM alerts"
        " WHERE resolved_at >= %s ORDER BY resolved_at, alert_id LIMIT %s",
        (since, limit),
    ).fetchall()
    kinds = {kind.value for kind in AlertKind}
    return [AlertClosure(row[0], AlertKind(row[1]), row[2], row[3]) for row in rows if row[1] in kinds]


def set_status(conn: psycopg.Connection, alert_id: int, status: str) -> None:
    conn.execute("UPDATE alerts SET status = %s WHERE alert_id = %s", (status, alert_id))


def mark_paged(conn: psycopg.Connection, alert_id: int, now: datetime) -> None:
    """People were asked to act on the alert for the first time (service levels run from here)."""
    conn.execute("UPDATE alerts SET paged_at = coalesce(paged_at, %s) WHERE alert_id = %s", (now, alert_id))


def set_evidence(conn: psycopg.Connection, alert_id: int, evidence: Evidence) -> None:
    """The alert's evidence from now on (its English text beside the data)."""
    conn.execute(
        "UPDATE alerts SET evidence = %s, evidence_data = %s WHERE alert_id = %s",
        (english(evidence), _evidence_json(evidence), alert_id),
    )


def lock_open_alerts(conn: psycopg.Connection, household_id: str, kinds: Iterable[str]) -> list[AlertRow]:
    """The household's unresolved alerts of ``kinds``, locked, oldest first."""
    rows = conn.execute(
        f"SELECT {_ALERT_ROW} FROM alerts WHERE household_id = %s AND kind = ANY(%s) AND status <> 'resolved'"
        " ORDER BY alert_id FOR UPDATE",
        (household_id, list(kinds)),
    ).fetchall()
    return [_row(row) for row in rows]
