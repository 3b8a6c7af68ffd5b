"""The device registry: which devices exist, their type and household."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

from schemas.kinds import DeviceType
from schemas.records import DeviceInfo

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
