"""Read stored history back as ``schemas.records`` values, for backtests and for replay on start.

Every function takes an open ``psycopg.Connection`` and never commits: the caller owns the
transaction (a backtest typically runs in one read-only transaction so that it sees one snapshot).
Records come back ordered by device time (ties: readings, then events, then status reports, then
device id), which is the order the detectors evaluate them in; ``received_at`` is kept so a replay can
also reproduce processing time.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg

from schemas.kinds import DeviceType
from schemas.records import DeviceEvent, DeviceInfo, MeterSample, Record, StatusReport


def load_devices(conn: psycopg.Connection, household_ids: Sequence[str] | None = None) -> list[DeviceInfo]:
    """Active (not decommissioned) devices, optionally of some households only, in id order."""
    query = (
        "SELECT device_id, device_type, household_id, expected_interval_s FROM devices WHERE decommissioned_at IS NULL"
    )
    params: list[Any] = []
    if household_ids:
        query += " AND household_id = ANY(%s)"
        params.append(list(household_ids))
    rows = conn.execute(query + " ORDER BY device_id", params).fetchall()
    return [DeviceInfo(row[0], DeviceType(row[1]), row[2], int(row[3])) for row in rows]


def load_household_settings(
    conn: psycopg.Connection, household_ids: Sequence[str] | None = None
) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{household_id: (timezone, settings JSON)}`` for building ``HouseholdSettings``."""
    query = "SELECT household_id, timezone, settings FROM households"
    params: list[Any] = []
    if household_ids:
        query += " WHERE household_id = ANY(%s)"
        params.append(list(household_ids))
    return {row[0]: (row[1], dict(row[2] or {})) for row in conn.execute(query, params)}


def _filter(household_ids: Sequence[str] | None, params: list[Any]) -> str:
    if not household_ids:
        return ""
    params.append(list(household_ids))
    return " AND d.household_id = ANY(%s)"


def load_readings(
    conn: psycopg.Connection, start: datetime, end: datetime, household_ids: Sequence[str] | None = None
) -> list[MeterSample]:
    """Meter readings with ``start <= ts < end``, by device time."""
    params: list[Any] = [start, end]
    where = _filter(household_ids, params)
    rows = conn.execute(
        "SELECT r.device_id, d.household_id, r.ts, r.register_l, r.received_at"
        " FROM readings r JOIN devices d ON d.device_id = r.device_id"
        f" WHERE r.ts >= %s AND r.ts < %s{where} ORDER BY r.ts, r.device_id",
        params,
    ).fetchall()
    return [MeterSample(row[0], row[1], row[2], float(row[3]), row[4]) for row in rows]


def load_events(
    conn: psycopg.Connection, start: datetime, end: datetime, household_ids: Sequence[str] | None = None
) -> list[DeviceEvent]:
    """Smoke alarm and call button events with ``start <= ts < end``, by device time."""
    params: list[Any] = [start, end]
    where = _filter(household_ids, params)
    rows = conn.execute(
        "SELECT e.device_id, d.household_id, d.device_type, e.ts, e.seq, e.kind, e.received_at, e.note,"
        " e.checkin_id FROM events e JOIN devices d ON d.device_id = e.device_id"
        f" WHERE e.ts >= %s AND e.ts < %s{where} ORDER BY e.ts, e.device_id, e.seq",
        params,
    ).fetchall()
    return [DeviceEvent(r[0], r[1], DeviceType(r[2]), r[3], int(r[4]), r[5], r[6], r[7], r[8]) for r in rows]


def load_status_reports(
    conn: psycopg.Connection, start: datetime, end: datetime, household_ids: Sequence[str] | None = None
) -> list[StatusReport]:
    """Status reports (heartbeats, Last Wills) with ``start <= ts < end``, by device time."""
    params: list[Any] = [start, end]
    where = _filter(household_ids, params)
    rows = conn.execute(
        "SELECT s.device_id, d.household_id, d.device_type, s.ts, s.seq, s.online, s.received_at,"
        " s.battery_pct, s.rssi_dbm, s.fw"
        " FROM status_reports s JOIN devices d ON d.device_id = s.device_id"
        f" WHERE s.ts >= %s AND s.ts < %s{where} ORDER BY s.ts, s.device_id, s.seq",
        params,
    ).fetchall()
    return [
        StatusReport(r[0], r[1], DeviceType(r[2]), r[3], int(r[4]), bool(r[5]), r[6], r[7], r[8], r[9]) for r in rows
    ]


def load_records(
    conn: psycopg.Connection, start: datetime, end: datetime, household_ids: Sequence[str] | None = None
) -> list[Record]:
    """Every stored record with ``start <= ts < end`` (optionally of some households), by device time."""
    streams: Iterable[Sequence[Record]] = (
        load_readings(conn, start, end, household_ids),
        load_events(conn, start, end, household_ids),
        load_status_reports(conn, start, end, household_ids),
    )
    tagged = [[(rec.ts, order, rec.device_id, i, rec) for i, rec in enumerate(s)] for order, s in enumerate(streams)]
    return [item[4] for item in heapq.merge(*tagged)]
