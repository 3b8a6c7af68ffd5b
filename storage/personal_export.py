"""Everything carewatch holds about one household, read for an access request (``schemas.personal_data``).

Bounded: raw readings of the last ``raw_days`` days only (the daily summary covers everything retained)
and at most ``LIMITS`` rows per list, newest first kept; the caller is told which lists were cut. Reads
only; never commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

LIMITS = {
    "raw_readings": 50_000,
    "events": 10_000,
    "alerts": 5_000,
    "checkins": 5_000,
    "visits": 5_000,
    "access_log": 2_000,
}


def _rows(conn: psycopg.Connection, query: str, params: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _bounded(
    conn: psycopg.Connection, name: str, query: str, params: dict[str, Any], truncated: list[str]
) -> list[dict[str, Any]]:
    """``query`` (newest first, with ``LIMIT %(limit)s``) cut at its bound, returned oldest first."""
    rows = _rows(conn, query, {**params, "limit": LIMITS[name] + 1})
    if len(rows) > LIMITS[name]:
        truncated.append(name)
        rows = rows[: LIMITS[name]]
    rows.reverse()
    return rows


def household_export(
    conn: psycopg.Connection, household_id: str, now: datetime, *, raw_days: int = 7
) -> dict[str, Any] | None:
    """The export document's fields (see ``schemas.personal_data.HouseholdExport``); None if no such
    household."""
    households = _rows(
        conn,
        "SELECT household_id, name, address, district, timezone, access_notes, visit_interval_days, settings,"
        " created_at, erased_at FROM households WHERE household_id = %s",
        (household_id,),
    )
    if not households:
        return None
    household = households[0]
    p = {"hh": household_id, "tz": household["timezone"], "since": now - timedelta(days=raw_days)}
    truncated: list[str] = []
    devices = _rows(
        conn,
        "SELECT d.device_id, d.device_type, d.created_at, d.decommissioned_at, d.last_seen_at, d.battery_pct, d.fw,"
        " r.n AS readings, r.first AS first_reading_at, r.last AS last_reading_at,"
        " (SELECT count(*) FROM events e WHERE e.device_id = d.device_id) AS events,"
        " (SELECT count(*) FROM status_reports s WHERE s.device_id = d.device_id) AS status_reports"
        " FROM devices d CROSS JOIN LATERAL (SELECT count(*) AS n, min(ts) AS first, max(ts) AS last"
        " FROM readings WHERE device_id = d.device_id) r WHERE d.household_id = %(hh)s ORDER BY d.device_id",
        p,
    )
    daily = _rows(
        conn,
        "SELECT d.device_id, (c.ts AT TIME ZONE %(tz)s)::date AS day, coalesce(sum(c.consumption_l), 0) AS litres,"
        " count(*) AS readings FROM devices d CROSS JOIN LATERAL"
        " meter_consumption(d.device_id, '-infinity'::timestamptz, 'infinity'::timestamptz) c"
        " WHERE d.household_id = %(hh)s AND d.device_type = 'water_meter' AND c.in_range"
        " GROUP BY d.device_id, day ORDER BY d.device_id, day",
        p,
    )
    raw = _bounded(
        conn,
        "raw_readings",
        "SELECT device_id, ts, register_l FROM readings WHERE ts >= %(since)s AND device_id IN"
        " (SELECT device_id FROM devices WHERE household_id = %(hh)s) ORDER BY ts DESC, device_id LIMIT %(limit)s",
        p,
        truncated,
    )
    events = _bounded(
        conn,
        "events",
        "SELECT device_id, ts, kind, note, received_at FROM events WHERE device_id IN"
        " (SELECT device_id FROM devices WHERE household_id = %(hh)s) ORDER BY ts DESC, seq DESC LIMIT %(limit)s",
        p,
        truncated,
    )
    alerts = _bounded(
        conn,
        "alerts",
        "SELECT alert_id, kind, severity, status, device_id, detector, evidence, started_at, opened_at, claimed_by,"
        " resolved_at, outcome, resolution_note FROM alerts WHERE household_id = %(hh)s"
        " ORDER BY alert_id DESC LIMIT %(limit)s",
        p,
        truncated,
    )
    timelines: dict[int, list[dict[str, Any]]] = {alert["alert_id"]: [] for alert in alerts}
    for entry in _rows(
        conn,
        "SELECT alert_id, at, actor, action, detail FROM alert_events WHERE alert_id = ANY(%s)"
        " ORDER BY alert_id, at, alert_event_id",
        (list(timelines),),
    ):
        timelines[entry.pop("alert_id")].append(entry)
    for alert in alerts:
        alert["timeline"] = timelines[alert["alert_id"]]
    return {
        "generated_at": now,
        "household": household,
        "residents": _rows(
            conn,
            "SELECT resident_id, name, birth_year, medical_notes, phone, locale, created_at, erased_at FROM residents"
            " WHERE household_id = %s ORDER BY resident_id",
            (household_id,),
        ),
        "care_plan": _rows(
            conn,
            "SELECT p.caregiver_id, c.name AS caregiver_name, p.role, p.tier, p.keyholder, p.access_notes, p.channels"
            " FROM care_plan_contacts p JOIN caregivers c USING (caregiver_id) WHERE p.household_id = %s"
            " ORDER BY p.tier, p.position, p.caregiver_id",
            (household_id,),
        ),
        "devices": devices,
        "daily_water_use": daily,
        "raw_readings_since": p["since"],
        "raw_readings": raw,
        "events": events,
        "alerts": alerts,
        "checkins": _bounded(
            conn,
            "checkins",
            "SELECT checkin_id, alert_id, kind, status, attempts, channels, started_at, answer, answered_via,"
            " answered_at, history FROM checkins WHERE household_id = %(hh)s"
            " ORDER BY started_at DESC LIMIT %(limit)s",
            p,
            truncated,
        ),
        "visits": _bounded(
            conn,
            "visits",
            "SELECT visit_id, caregiver_id, visited_at, note FROM visits WHERE household_id = %(hh)s"
            " ORDER BY visited_at DESC, visit_id DESC LIMIT %(limit)s",
            p,
            truncated,
        ),
        "access_log": _bounded(
            conn,
            "access_log",
            "SELECT at, role, subject, action, resource FROM audit_log WHERE resource_id = %(hh)s"
            " ORDER BY audit_id DESC LIMIT %(limit)s",
            p,
            truncated,
        ),
        "truncated": truncated,
    }
