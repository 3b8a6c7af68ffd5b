"""The notification outbox as the dispatcher sees it: claim one due row, record the attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class DueNotification:
    notification_id: int
    alert_id: int
    caregiver_id: str
    channel: str
    idempotency_key: str
    body: dict[str, Any]
    attempts: int
    deadline: datetime
    severity: str
    webhook_url: str | None
    webhook_secret: str | None


def lock_next_due(conn: psycopg.Connection, now: datetime) -> DueNotification | None:
    """Lock one due pending notification, skipping rows other dispatchers hold (no double-sending)."""
    row = conn.execute(
        "SELECT n.notification_id, n.alert_id, n.caregiver_id, n.channel, n.idempotency_key, n.body,"
        " n.attempts, n.deadline, a.severity, c.webhook_url, c.webhook_secret"
        " FROM notifications n JOIN alerts a USING (alert_id) JOIN caregivers c USING (caregiver_id)"
        " WHERE n.status = 'pending' AND n.next_attempt_at <= %s"
        " ORDER BY n.next_attempt_at LIMIT 1 FOR UPDATE OF n SKIP LOCKED",
        (now,),
    ).fetchone()
    return DueNotification(*row) if row else None


def record_attempt(
    conn: psycopg.Connection, notification_id: int, attempt: int, at: datetime, ok: bool, detail: str
) -> None:
    conn.execute(
        "INSERT INTO delivery_attempts (notification_id, attempt, at, ok, detail) VALUES (%s, %s, %s, %s, %s)",
        (notification_id, attempt, at, ok, detail[:500]),
    )


def mark_sent(conn: psycopg.Connection, notification_id: int, attempt: int, at: datetime) -> None:
    conn.execute(
        "UPDATE notifications SET status = 'sent', attempts = %s, sent_at = %s, last_error = NULL"
        " WHERE notification_id = %s",
        (attempt, at, notification_id),
    )


def mark_retry(conn: psycopg.Connection, notification_id: int, attempt: int, next_at: datetime, error: str) -> None:
    conn.execute(
        "UPDATE notifications SET attempts = %s, next_attempt_at = %s, last_error = %s WHERE notification_id = %s",
        (attempt, next_at, error[:500], notification_id),
    )


def mark_dead(conn: psycopg.Connection, notification_id: int, attempt: int, error: str) -> None:
    conn.execute(
        "UPDATE notifications SET status = 'dead', attempts = %s, last_error = %s WHERE notification_id = %s",
        (attempt, error[:500], notification_id),
    )


def mark_alert_notified(conn: psycopg.Connection, alert_id: int, at: datetime) -> bool:
    """First successful delivery: ``open`` → ``notified``; True if this was the first."""
    row = conn.execute(
        "UPDATE alerts SET first_notified_at = %s, status = CASE WHEN status = 'open' THEN 'notified'"
        " ELSE status END WHERE alert_id = %s AND first_notified_at IS NULL RETURNING alert_id",
        (at, alert_id),
    ).fetchone()
    return row is not None


def pending_count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM notifications WHERE status = 'pending'").fetchone()
    return int(row[0]) if row else 0
