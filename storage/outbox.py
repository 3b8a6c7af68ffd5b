"""The notification outbox as the dispatcher sees it (claim one due row, record the attempt) and as
operators see it (dead deliveries, every attempt of an alert's notifications)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

# NOTIFY channel of the ``notifications_queued`` trigger (migration 0005).
WAKE_CHANNEL = "carewatch_outbox"


@dataclass(frozen=True, slots=True)
class DueNotification:
    notification_id: int
    alert_id: int
    # None for a check-in delivery: it goes to the resident (``checkin_id``), its address in the body.
    caregiver_id: str | None
    channel: str
    idempotency_key: str
    body: dict[str, Any]
    attempts: int
    deadline: datetime
    severity: str
    webhook_url: str | None
    webhook_secret: str | None
    email: str
    phone: str
    level: int | None
    reason: str
    checkin_id: str | None = None
    # Messaging robots (migration 0014): the group whose robot carries it (``caregiver_id`` is empty for
    # a message to the group itself), the robot's webhook, DingTalk secret.
    group_id: str | None = None
    robot_url: str | None = None
    robot_secret: str | None = None
    # The recipient's language: the caregiver's setting, else the group's (None: from the household's
    # zone), and the household's zone.
    locale: str | None = None
    timezone: str = "Asia/Shanghai"
    created_at: datetime | None = None

    @property
    def recipient(self) -> str:
        """Who it is for, in log lines and the timeline: the caregiver, else the group, else the resident
        being checked on."""
        if self.caregiver_id:
            return self.caregiver_id
        return f"group {self.group_id}" if self.group_id else "the resident"


def listen_queued(conn: psycopg.Connection) -> None:
    """Subscribe ``conn`` (autocommit) to "a notification was queued", from any process."""
    conn.execute(f"LISTEN {WAKE_CHANNEL}")


def wait_for_queued(conn: psycopg.Connection, timeout_s: float) -> bool:
    """Block until a notification is queued or ``timeout_s`` passes; True if woken."""
    woken = False
    for _ in conn.notifies(timeout=timeout_s, stop_after=1):
        woken = True
    return woken


def lock_next_due(conn: psycopg.Connection, now: datetime) -> DueNotification | None:
    """Lock one due pending notification, skipping rows other dispatchers hold (no double-sending)."""
    row = conn.execute(
        "SELECT n.notification_id, n.alert_id, n.caregiver_id, n.channel, n.idempotency_key, n.body,"
        " n.attempts, n.deadline, a.severity, c.webhook_url, c.webhook_secret, coalesce(c.email, ''),"
        " coalesce(c.phone, ''), n.level, n.reason, n.checkin_id, n.group_id, g.webhook_url, g.secret,"
        " coalesce(c.locale, g.locale), h.timezone, n.created_at"
        " FROM notifications n JOIN alerts a USING (alert_id) LEFT JOIN caregivers c USING (caregiver_id)"
        " LEFT JOIN notify_groups g ON g.group_id = n.group_id JOIN households h ON h.household_id = a.household_id"
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


def defer(
    conn: psycopg.Connection, notification_id: int, attempts: int, next_at: datetime, deadline: datetime, why: str
) -> None:
    """Re-queue a rate-limited delivery at ``next_at`` with its deadline moved (waiting is not failing)."""
    conn.execute(
        "UPDATE notifications SET attempts = %s, next_attempt_at = %s, deadline = %s, last_error = %s"
        " WHERE notification_id = %s",
        (attempts, next_at, deadline, why[:500], notification_id),
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


_NOTIFICATION_COLUMNS = (
    "n.notification_id, n.alert_id, a.household_id, a.severity, n.caregiver_id, n.group_id, n.channel, n.reason,"
    " n.level, n.idempotency_key, n.status, n.attempts, n.created_at, n.next_attempt_at, n.deadline, n.sent_at,"
    " n.last_error"
)


def _with_attempts(cur: psycopg.Cursor[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [row["notification_id"] for row in rows]
    attempts: dict[int, list[dict[str, Any]]] = {notification_id: [] for notification_id in ids}
    for attempt in cur.execute(
        "SELECT notification_id, attempt, at, ok, detail FROM delivery_attempts WHERE notification_id = ANY(%s)"
        " ORDER BY notification_id, attempt",
        (ids,),
    ).fetchall():
        attempts[attempt.pop("notification_id")].append(attempt)
    for row in rows:
        row["attempt_log"] = attempts[row["notification_id"]]
    return rows


def list_dead(
    conn: psycopg.Connection,
    *,
    severity: str | None = None,
    district: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Dead deliveries, newest first, with their attempts: what operators must follow up by hand."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications n JOIN alerts a USING (alert_id)"
            " JOIN households h ON h.household_id = a.household_id"
            " WHERE n.status = 'dead' AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)"
            " AND (%(district)s::text IS NULL OR h.district = %(district)s)"
            " AND (%(before)s::bigint IS NULL OR n.notification_id < %(before)s)"
            " ORDER BY n.notification_id DESC LIMIT %(limit)s",
            {"severity": severity, "district": district, "before": before_id, "limit": limit},
        ).fetchall()
        return _with_attempts(cur, rows)


def list_for_alert(conn: psycopg.Connection, alert_id: int) -> list[dict[str, Any]]:
    """Every notification of one alert, oldest first, with every attempt."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications n JOIN alerts a USING (alert_id)"
            " WHERE n.alert_id = %s ORDER BY n.notification_id",
            (alert_id,),
        ).fetchall()
        return _with_attempts(cur, rows)
