"""Reading back committed records by receive time, for the detector runner's restart replay."""

from __future__ import annotations

from datetime import datetime

import psycopg

from schemas.kinds import DeviceType
from schemas.records import DeviceEvent, MeterSample, Record, StatusReport


def load_records_received_since(conn: psycopg.Connection, since: datetime, limit: int = 2_000_000) -> list[Record]:
    """Readings, events and status reports received after ``since``, in receive then device-time order."""
    records: list[tuple[datetime, datetime, Record]] = []
    for device_id, household_id, ts, register_l, received_at in conn.execute(
        "SELECT r.device_id, d.household_id, r.ts, r.register_l, r.received_at FROM readings r"
        " JOIN devices d USING (device_id) WHERE r.received_at > %s LIMIT %s",
        (since, limit),
    ):
        records.append((received_at, ts, MeterSample(device_id, household_id, ts, register_l, received_at)))
    for device_id, household_id, device_type, ts, seq, kind, note, received_at, checkin_id in conn.execute(
        "SELECT e.device_id, d.household_id, d.device_type, e.ts, e.seq, e.kind, e.note, e.received_at,"
        " e.checkin_id FROM events e JOIN devices d USING (device_id) WHERE e.received_at > %s LIMIT %s",
        (since, limit),
    ):
        event = DeviceEvent(
            device_id, household_id, DeviceType(device_type), ts, seq, kind, received_at, note, checkin_id
        )
        records.append((received_at, ts, event))
    for row in conn.execute(
        "SELECT s.device_id, d.household_id, d.device_type, s.ts, s.seq, s.online, s.received_at, s.battery_pct,"
        " s.rssi_dbm, s.fw FROM status_reports s JOIN devices d USING (device_id) WHERE s.received_at > %s LIMIT %s",
        (since, limit),
    ):
        device_id, household_id, device_type, ts, seq, online, received_at, battery, rssi, fw = row
        status = StatusReport(
            device_id, household_id, DeviceType(device_type), ts, seq, online, received_at, battery, rssi, fw
        )
        records.append((received_at, ts, status))
    records.sort(key=lambda item: (item[0], item[1]))
    return [record for _, _, record in records]
