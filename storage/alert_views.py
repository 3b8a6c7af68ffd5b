"""Alert queries of the monitoring API: scoped, filtered, keyset-paginated lists and the change feed.

Kept apart from ``storage.alerts`` (the alerting service's writes) so the API's read paths can grow
filters without touching the lifecycle code. Every query takes a ``Scope`` and adds its household filter,
so an operator never reads another district's alert and a caregiver only their care plans' households.

Lists are newest first (or oldest first) by ``alert_id``, paged with ``before``/``after`` ids: a page
costs one index range scan however deep the client pages (``alerts_status_id_idx``,
``alerts_household_id_idx``), unlike OFFSET.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from storage import checkins
from storage.access import Scope, household_filter


@dataclass(frozen=True, slots=True)
class AlertFilter:
    statuses: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    household_id: str | None = None
    district: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _where(scope: Scope, flt: AlertFilter) -> tuple[list[str], list[Any]]:
    condition, params = household_filter(scope)
    clauses = [condition]
    for column, values in (("status", flt.statuses), ("severity", flt.severities), ("kind", flt.kinds)):
        if values:
            clauses.append(f"{column} = ANY(%s)")
            params.append(list(values))
    if flt.household_id is not None:
        clauses.append("household_id = %s")
        params.append(flt.household_id)
    if flt.district is not None:
        clauses.append("household_id IN (SELECT household_id FROM households WHERE district = %s)")
        params.append(flt.district)
    if flt.since is not None:
        clauses.append("opened_at >= %s")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append("opened_at < %s")
        params.append(flt.until)
    return clauses, params


def list_alerts(
    conn: psycopg.Connection,
    scope: Scope,
    flt: AlertFilter,
    *,
    cursor: int | None = None,
    newest_first: bool = True,
    limit: int = 100,
) -> list[dict[str, Any]]:
    clauses, params = _where(scope, flt)
    if cursor is not None:
        clauses.append("alert_id < %s" if newest_first else "alert_id > %s")
        params.append(cursor)
    params.append(limit)
    order = "DESC" if newest_first else "ASC"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT * FROM alerts WHERE {' AND '.join(clauses)} ORDER BY alert_id {order} LIMIT %s", params
        ).fetchall()
    return _with_checkins(conn, rows)


def get_alert(conn: psycopg.Connection, scope: Scope, alert_id: int) -> dict[str, Any] | None:
    condition, params = household_filter(scope)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM alerts WHERE alert_id = %s AND {condition}", [alert_id, *params]).fetchone()
    return _with_checkins(conn, [row])[0] if row else None


def _with_checkins(conn: psycopg.Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each alert with its resident check-in (or None): the board shows who is being asked."""
    found = checkins.for_alerts(conn, [row["alert_id"] for row in rows]) if rows else {}
    for row in rows:
        row["checkin"] = found.get(row["alert_id"])
    return rows


@dataclass(frozen=True, slots=True)
class AlertChange:
    change_id: int
    alert_id: int
    household_id: str
    district: str


def latest_change_id(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(change_id), 0) FROM alert_changes").fetchone()
    return int(row[0]) if row else 0


def changes_after(conn: psycopg.Connection, after_id: int, limit: int = 500) -> list[AlertChange]:
    """Changes with ``change_id > after_id``, oldest first, with each household's district for filtering."""
    rows = conn.execute(
        "SELECT c.change_id, c.alert_id, c.household_id, coalesce(h.district, '') FROM alert_changes c"
        " LEFT JOIN households h USING (household_id) WHERE c.change_id > %s ORDER BY c.change_id LIMIT %s",
        (after_id, limit),
    ).fetchall()
    return [AlertChange(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


def get_alerts(conn: psycopg.Connection, alert_ids: list[int]) -> dict[int, dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM alerts WHERE alert_id = ANY(%s)", (alert_ids,)).fetchall()
    return {int(row["alert_id"]): row for row in _with_checkins(conn, rows)}


def prune_changes(conn: psycopg.Connection, before: datetime) -> int:
    """Drop feed rows older than ``before`` (clients reconnecting later reload the board instead)."""
    return conn.execute("DELETE FROM alert_changes WHERE at < %s", (before,)).rowcount
