"""Fleet health: which devices are offline, low on battery, silent (meters) or losing messages.

One CTE computes every device's health facts in the caller's scope; the summary counts and the page of
problem devices are both read from it. Per device it uses index lookups only: the newest reading through
the ``readings`` primary key (a backward scan, LIMIT 1) and the last day's receipts through
``message_receipts_device_received_idx``.

Rules (the thresholds are parameters with the defaults the API uses):
- offline: the device said ``online: false``, or nothing arrived for ``grace`` × its expected interval
  (a device never heard from counts once that long has passed since it was provisioned);
- low battery: ``battery_pct`` below ``low_battery_pct``;
- silent meter: a water meter whose newest reading (device time) is older than ``silent_after``, even if
  its status messages still arrive: the gateway lives, the readings do not;
- sequence gaps: missing ``seq`` numbers among the last 24 h of receipts in device-time order; jumps of
  more than 1,000 are read as a device restart, not as loss.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from storage.access import Scope, household_filter

DEVICE_COLUMNS = (
    "d.device_id, d.device_type, d.household_id, d.expected_interval_s, d.created_at, d.last_seen_at,"
    " d.online, d.battery_pct"
)


def list_devices(
    conn: psycopg.Connection, scope: Scope, *, household_id: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    condition, params = household_filter(scope, "d.household_id")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.decommissioned_at IS NULL AND {condition}"
            " AND (%s::text IS NULL OR d.household_id = %s) AND (%s::text IS NULL OR d.device_id > %s)"
            " ORDER BY d.device_id LIMIT %s",
            [*params, household_id, household_id, after, after, limit],
        ).fetchall()


def get_device(conn: psycopg.Connection, scope: Scope, device_id: str) -> dict[str, Any] | None:
    condition, params = household_filter(scope, "d.household_id")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.device_id = %s AND d.decommissioned_at IS NULL"
            f" AND {condition}",
            [device_id, *params],
        ).fetchone()


def silence_limit(device: str = "d", grace: str = "%(grace)s") -> str:
    """SQL: how long ``device`` (a ``devices`` row alias) may stay silent before it is offline, as an
    interval: ``grace`` × its expected interval. The monthly report (``storage.monthly_report``) applies
    the same rule to the device's history."""
    return f"make_interval(secs => {device}.expected_interval_s * {grace})"


def battery_low(battery_pct: str, low: str = "%(low)s") -> str:
    """SQL: a battery level below ``low`` per cent is low (NULL when the level is unknown)."""
    return f"({battery_pct} < {low})"


_HEALTH_CTE = (
    "WITH health AS ("
    " SELECT d.device_id, d.device_type, d.household_id, d.last_seen_at, d.online, d.battery_pct,"
    "  r.last_reading_at, coalesce(g.missing, 0) AS seq_gaps_24h,"
    "  (d.online IS FALSE OR coalesce(d.last_seen_at, d.created_at) < %(now)s - {silence}) AS is_offline,"
    "  coalesce({battery_low}, false) AS is_low_battery,"
    "  (d.device_type = 'water_meter' AND coalesce(r.last_reading_at, d.created_at) < %(silent)s) AS is_silent"
    " FROM devices d"
    " LEFT JOIN LATERAL (SELECT max(ts) AS last_reading_at FROM"
    "  (SELECT ts FROM readings WHERE device_id = d.device_id ORDER BY ts DESC LIMIT 1) newest) r ON true"
    " LEFT JOIN LATERAL (SELECT sum(step - 1) AS missing FROM ("
    "  SELECT (seq - lag(seq) OVER (ORDER BY ts, seq) + 4294967296) %% 4294967296 AS step"
    "  FROM message_receipts WHERE device_id = d.device_id AND received_at >= %(day_ago)s) s"
    "  WHERE step BETWEEN 2 AND 1000) g ON true"
    " WHERE d.decommissioned_at IS NULL AND {scope} AND (%(household)s::text IS NULL OR d.household_id = %(household)s)"
    ")"
)


def fleet_health(
    conn: psycopg.Connection,
    scope: Scope,
    now: datetime,
    *,
    household_id: str | None = None,
    grace: float = 2.0,
    low_battery_pct: int = 20,
    silent_after: timedelta = timedelta(hours=24),
    limit: int = 200,
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """(summary counts, up to ``limit`` problem devices ordered by id)."""
    condition, scope_params = household_filter(scope, "d.household_id")
    # The scope condition uses positional %s; turn it into a named parameter for this dict-style query.
    named_condition = condition.replace("%s", "%(scope_value)s")
    params: dict[str, Any] = {
        "now": now,
        "grace": grace,
        "low": low_battery_pct,
        "silent": now - silent_after,
        "day_ago": now - timedelta(hours=24),
        "household": household_id,
        "scope_value": scope_params[0] if scope_params else None,
        "limit": limit,
    }
    cte = _HEALTH_CTE.format(scope=named_condition, silence=silence_limit(), battery_low=battery_low("d.battery_pct"))
    counts = conn.execute(
        cte + " SELECT count(*), count(*) FILTER (WHERE is_offline), count(*) FILTER (WHERE is_low_battery),"
        " count(*) FILTER (WHERE is_silent), count(*) FILTER (WHERE seq_gaps_24h > 0) FROM health",
        params,
    ).fetchone()
    assert counts is not None  # noqa: S101 - an aggregate always returns one row
    summary = {
        "devices_total": int(counts[0]),
        "offline": int(counts[1]),
        "low_battery": int(counts[2]),
        "silent_meters": int(counts[3]),
        "with_seq_gaps": int(counts[4]),
    }
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            cte + " SELECT * FROM health WHERE is_offline OR is_low_battery OR is_silent OR seq_gaps_24h > 0"
            " ORDER BY device_id LIMIT %(limit)s",
            params,
        ).fetchall()
    for row in rows:
        row["problems"] = [
            name
            for name, flag in (
                ("offline", row.pop("is_offline")),
                ("low_battery", row.pop("is_low_battery")),
                ("silent_meter", row.pop("is_silent")),
                ("seq_gaps", row["seq_gaps_24h"] > 0),
            )
            if flag
        ]
        row["seq_gaps_24h"] = int(row["seq_gaps_24h"])
    return summary, rows
