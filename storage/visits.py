"""Home visits and visit intervals. Functions take a connection and never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

_VISIT_COLUMNS = "visit_id, household_id, caregiver_id, visited_at, note, created_at"


def insert_visit(
    conn: psycopg.Connection, household_id: str, caregiver_id: str, visited_at: datetime, note: str
) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "INSERT INTO visits (household_id, caregiver_id, visited_at, note) VALUES (%s, %s, %s, %s)"
            f" RETURNING {_VISIT_COLUMNS}",
            (household_id, caregiver_id, visited_at, note),
        ).fetchone()
    assert row is not None  # noqa: S101 - INSERT ... RETURNING always returns the row
    return row


def list_visits(
    conn: psycopg.Connection, household_id: str, *, before_id: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_VISIT_COLUMNS} FROM visits WHERE household_id = %s"
            " AND (%s::bigint IS NULL OR visit_id < %s) ORDER BY visited_at DESC, visit_id DESC LIMIT %s",
            (household_id, before_id, before_id, limit),
        ).fetchall()


@dataclass(frozen=True, slots=True)
class VisitDue:
    household_id: str
    interval_days: int
    last_visit_at: datetime | None
    last_visitor: str | None
    # When the interval ran out: the last visit (or the household's creation) plus the interval.
    due_at: datetime
    timezone: str = "Asia/Shanghai"


def overdue(conn: psycopg.Connection, now: datetime, limit: int = 1000) -> list[VisitDue]:
    """Households whose visit interval ran out by ``now`` and that have no open overdue-visit alert."""
    rows = conn.execute(
        "SELECT h.household_id, h.visit_interval_days, v.visited_at, v.caregiver_id,"
        " coalesce(v.visited_at, h.created_at) + make_interval(days => h.visit_interval_days) AS due_at,"
        " h.timezone"
        " FROM households h LEFT JOIN LATERAL (SELECT visited_at, caregiver_id FROM visits"
        "   WHERE household_id = h.household_id ORDER BY visited_at DESC LIMIT 1) v ON true"
        " WHERE coalesce(v.visited_at, h.created_at) + make_interval(days => h.visit_interval_days) <= %s"
        " AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.household_id = h.household_id"
        "   AND a.kind = 'visit_overdue' AND a.status <> 'resolved')"
        " ORDER BY due_at LIMIT %s",
        (now, limit),
    ).fetchall()
    return [VisitDue(*row) for row in rows]


def last_visit(conn: psycopg.Connection, household_id: str) -> datetime | None:
    row = conn.execute("SELECT max(visited_at) FROM visits WHERE household_id = %s", (household_id,)).fetchone()
    return row[0] if row else None
