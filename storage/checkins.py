"""Resident check-ins: the ``checkins`` table, who can be reached, and their outbox rows. Never commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

_COLUMNS = (
    "checkin_id, alert_id, household_id, kind, status, attempt, attempts, wait_s, channels, started_at,"
    " attempt_at, expires_at, answer, answered_via, answered_at, history"
)


@dataclass(frozen=True, slots=True)
class CheckinRow:
    checkin_id: str
    alert_id: int
    household_id: str
    kind: str
    status: str
    attempt: int
    attempts: int
    wait_s: int
    channels: tuple[str, ...]
    started_at: datetime
    attempt_at: datetime
    expires_at: datetime
    answer: str | None
    answered_via: str | None
    answered_at: datetime | None
    history: list[dict[str, Any]]


def _row(values: Sequence[Any]) -> CheckinRow:
    values = list(values)
    values[8] = tuple(values[8])
    values[15] = list(values[15] or [])
    return CheckinRow(*values)


@dataclass(frozen=True, slots=True)
class ResidentPhone:
    resident_id: str
    phone: str
    locale: str


@dataclass(frozen=True, slots=True)
class Reach:
    """Where a household's resident can be asked: its call buttons and the residents' phones."""

    buttons: tuple[str, ...]
    phones: tuple[ResidentPhone, ...]


def reach(conn: psycopg.Connection, household_id: str) -> Reach:
    buttons = conn.execute(
        "SELECT device_id FROM devices WHERE household_id = %s AND device_type = 'call_button'"
        " AND decommissioned_at IS NULL ORDER BY device_id",
        (household_id,),
    ).fetchall()
    phones = conn.execute(
        "SELECT resident_id, phone, locale FROM residents WHERE household_id = %s AND phone <> '' ORDER BY resident_id",
        (household_id,),
    ).fetchall()
    return Reach(tuple(row[0] for row in buttons), tuple(ResidentPhone(*row) for row in phones))


def household_checkin_settings(conn: psycopg.Connection, household_id: str) -> dict[str, Any]:
    """The household's ``settings["checkin"]`` overrides ({} when none)."""
    row = conn.execute(
        "SELECT settings -> 'checkin' FROM households WHERE household_id = %s", (household_id,)
    ).fetchone()
    return dict(row[0]) if row and isinstance(row[0], dict) else {}


def insert_checkin(
    conn: psycopg.Connection,
    *,
    checkin_id: str,
    alert_id: int,
    household_id: str,
    kind: str,
    attempts: int,
    wait_s: int,
    channels: Iterable[str],
    now: datetime,
    expires_at: datetime,
) -> CheckinRow:
    row = conn.execute(
        "INSERT INTO checkins (checkin_id, alert_id, household_id, kind, attempts, wait_s, channels, started_at,"
        f" attempt_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (checkin_id, alert_id, household_id, kind, attempts, wait_s, list(channels), now, now, expires_at),
    ).fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING
    return _row(row)


def lock_checkin(conn: psycopg.Connection, checkin_id: str) -> CheckinRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM checkins WHERE checkin_id = %s FOR UPDATE", (checkin_id,)).fetchone()
    return _row(row) if row else None


def lock_checkin_of_alert(conn: psycopg.Connection, alert_id: int) -> CheckinRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM checkins WHERE alert_id = %s FOR UPDATE", (alert_id,)).fetchone()
    return _row(row) if row else None


def next_attempt(
    conn: psycopg.Connection, checkin_id: str, attempt: int, at: datetime, expires_at: datetime, history: list[Any]
) -> None:
    conn.execute(
        "UPDATE checkins SET attempt = %s, attempt_at = %s, expires_at = %s, history = %s WHERE checkin_id = %s",
        (attempt, at, expires_at, Jsonb(history), checkin_id),
    )


def finish(
    conn: psycopg.Connection,
    checkin_id: str,
    *,
    status: str,
    answer: str | None,
    via: str | None,
    at: datetime | None,
    history: list[Any],
) -> None:
    conn.execute(
        "UPDATE checkins SET status = %s, answer = %s, answered_via = %s, answered_at = %s, history = %s"
        " WHERE checkin_id = %s",
        (status, answer, via, at, Jsonb(history), checkin_id),
    )


def withdraw_deliveries(conn: psycopg.Connection, checkin_id: str) -> int:
    """Cancel the check-in's deliveries not yet sent (the resident answered: do not ring them again)."""
    cur = conn.execute(
        "UPDATE notifications SET status = 'cancelled' WHERE checkin_id = %s AND status = 'pending'", (checkin_id,)
    )
    return cur.rowcount


def attempt_deliveries(conn: psycopg.Connection, checkin_id: str, attempt: int) -> list[tuple[str, str]]:
    """(channel, status) of one attempt's deliveries."""
    rows = conn.execute(
        "SELECT channel, status FROM notifications WHERE checkin_id = %s AND (body ->> 'attempt')::int = %s",
        (checkin_id, attempt),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def for_alerts(conn: psycopg.Connection, alert_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Each alert's check-in, for the API (alert board, alert detail)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(f"SELECT {_COLUMNS} FROM checkins WHERE alert_id = ANY(%s)", (list(alert_ids),)).fetchall()
    return {row["alert_id"]: row for row in rows}


def for_household(
    conn: psycopg.Connection, household_id: str, *, since: datetime | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM checkins WHERE household_id = %s"
            " AND (%s::timestamptz IS NULL OR started_at >= %s) ORDER BY started_at DESC LIMIT %s",
            (household_id, since, since, limit),
        ).fetchall()


def get(conn: psycopg.Connection, checkin_id: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM checkins WHERE checkin_id = %s", (checkin_id,)).fetchone()
