"""The device registry: which devices exist, their type and household."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

from schemas.kinds import DeviceType
from schemas.records import DeviceInfo, StatusReport

_COLUMNS = "device_id, device_type, household_id, expected_interval_s"


def _info(row: tuple[str, str, str, int]) -> DeviceInfo:
    return DeviceInfo(row[0], DeviceType(row[1]), row[2], row[3])


def get_device(conn: psycopg.Connection, device_id: str) -> DeviceInfo | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM devices WHERE device_id = %s AND decommissioned_at IS NULL", (device_id,)
    ).fetchone()
    return _info(row) if row else None


def get_devices(conn: psycopg.Connection, device_ids: Iterable[str]) -> dict[str, DeviceInfo]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM devices WHERE device_id = ANY(%s) AND decommissioned_at IS NULL",
        (list(device_ids),),
    ).fetchall()
    return {row[0]: _info(row) for row in rows}


def active_devices(conn: psycopg.Connection) -> list[DeviceInfo]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM devices WHERE decommissioned_at IS NULL").fetchall()
    return [_info(row) for row in rows]


def record_last_seen(conn: psycopg.Connection, seen: Iterable[tuple[str, datetime]]) -> None:
    """Move ``last_seen_at`` forward (never back) for (device_id, received_at) pairs: one statement."""
    pairs = sorted(seen)
    if not pairs:
        return
    conn.execute(
        "UPDATE devices d SET last_seen_at = v.seen FROM unnest(%s::text[], %s::timestamptz[]) AS v(id, seen)"
        " WHERE d.device_id = v.id AND (d.last_seen_at IS NULL OR d.last_seen_at < v.seen)",
        ([device_id for device_id, _ in pairs], [at for _, at in pairs]),
    )


def record_status(conn: psycopg.Connection, reports: Iterable[StatusReport]) -> None:
    """Set ``online``, ``battery_pct``, ``rssi_dbm`` and ``fw`` from each device's latest status report
    (by device time; a report older than one already stored changes nothing): one statement. A Last
    Will carries no battery level: the last known one is kept."""
    latest: dict[str, StatusReport] = {}
    for report in reports:
        was = latest.get(report.device_id)
        if was is None or report.ts >= was.ts:
            latest[report.device_id] = report
    if not latest:
        return
    rows = sorted(latest.values(), key=lambda r: r.device_id)
    conn.execute(
        "UPDATE devices d SET online = v.online, battery_pct = coalesce(v.battery, d.battery_pct),"
        " rssi_dbm = coalesce(v.rssi, d.rssi_dbm), fw = coalesce(v.fw, d.fw)"
        " FROM unnest(%s::text[], %s::timestamptz[], %s::boolean[], %s::int[], %s::int[], %s::text[])"
        "  AS v(id, ts, online, battery, rssi, fw)"
        " WHERE d.device_id = v.id AND NOT EXISTS"
        "  (SELECT 1 FROM status_reports s WHERE s.device_id = v.id AND s.ts > v.ts)",
        (
            [r.device_id for r in rows],
            [r.ts for r in rows],
            [r.online for r in rows],
            [r.battery_pct for r in rows],
            [r.rssi_dbm for r in rows],
            [r.fw for r in rows],
        ),
    )
