"""Erasing a household's personal data on request, keeping the statistics and the audit trail.

A resident who leaves the program may ask that carewatch forget them (PIPL art. 47, GDPR art. 17). The
program must still account for its work — how many alerts, how fast answered, with what outcome — and
for who did what (the audit log). So rows that statistics and foreign keys need stay, without their
personal fields, and everything else about the household is deleted:

==========================  =====================================================================
kept, personal fields       households (name, address, access notes, detector settings; district,
scrubbed                    time zone and visit interval stay), residents (name, birth year, medical
                            notes), alerts (evidence, details, resolution note; kind, severity,
                            times, status, outcome, detector, who claimed stay), alert timeline
                            (details; who, what, when stay), notifications (body, last error;
                            caregiver, channel, times, status stay), delivery attempts (detail),
                            declines (note), visits (note); caregivers (name, phone, e-mail,
                            webhook) only when they serve no other household, whose API tokens are
                            then revoked
deleted                     raw device data of the household's devices (readings, events, status
                            reports, message receipts, rejects), detector snapshots of the household
                            and its devices, care-plan contacts
stopped                     devices decommissioned and their MQTT logins revoked; open alerts
                            resolved (outcome ``other``) and their pending notifications dead
untouched                   audit log (ids only), alert change feed (ids only), API tokens of staff
==========================  =====================================================================

Ids stay everywhere (household, resident, device, caregiver, alert ids): they are pseudonyms once the
fields that tie them to a person are gone, and they keep the counts joinable. Erasing twice is harmless.
TimescaleDB's hourly aggregate of readings is refreshed by the caller afterwards (``refresh_hourly``:
it cannot run inside a transaction).

Functions take a connection and never commit: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

ERASED = "[erased]"
ERASURE_ACTOR = "system:erasure"
RAW_TABLES = ("readings", "events", "status_reports", "message_receipts", "rejects")


class HouseholdNotFoundError(LookupError):
    def __init__(self, household_id: str) -> None:
        super().__init__(f"household {household_id} not found")
        self.household_id = household_id


@dataclass(frozen=True, slots=True)
class Erasure:
    household_id: str
    erased_at: datetime
    already_erased: bool
    devices: list[str]
    alerts_kept: int
    alerts_resolved: int
    caregivers_erased: list[str]
    rows_deleted: dict[str, int] = field(default_factory=dict)
    rows_scrubbed: dict[str, int] = field(default_factory=dict)
    # Device-time span of the deleted readings, for refreshing TimescaleDB's hourly aggregate.
    readings_span: tuple[datetime, datetime] | None = None


def erase_household(conn: psycopg.Connection, household_id: str, now: datetime) -> Erasure:
    """Erase ``household_id`` as the module docstring says; raises ``HouseholdNotFoundError``."""
    row = conn.execute(
        "SELECT erased_at FROM households WHERE household_id = %s FOR UPDATE", (household_id,)
    ).fetchone()
    if row is None:
        raise HouseholdNotFoundError(household_id)
    already_erased = row[0] is not None
    erased_at: datetime = row[0] or now
    devices = [
        str(r[0]) for r in conn.execute("SELECT device_id FROM devices WHERE household_id = %s", (household_id,))
    ]
    resolved = _stop_alerts(conn, household_id, now)
    span = conn.execute("SELECT min(ts), max(ts) FROM readings WHERE device_id = ANY(%s)", (devices,)).fetchone()
    readings_span = (span[0], span[1]) if span is not None and span[0] is not None else None

    deleted = {table: _count(conn, f"DELETE FROM {table} WHERE device_id = ANY(%s)", devices) for table in RAW_TABLES}
    keys = [f"hh:{household_id}", *(f"dev:{device_id}" for device_id in devices)]
    deleted["detector_state"] = _count(conn, "DELETE FROM detector_state WHERE state_key = ANY(%s)", keys)

    alerts = "SELECT alert_id FROM alerts WHERE household_id = %(hh)s"
    notifications = f"SELECT notification_id FROM notifications WHERE alert_id IN ({alerts})"
    statements = {
        # Structured evidence (evidence_data, detail_data) quotes residents' notes: it goes with the text.
        "alerts": "UPDATE alerts SET evidence = %(erased)s, evidence_data = NULL, details = '{}',"
        " resolution_note = NULL WHERE household_id = %(hh)s AND (evidence <> %(erased)s"
        " OR evidence_data IS NOT NULL OR details <> '{}' OR resolution_note IS NOT NULL)",
        "alert_events": f"UPDATE alert_events SET detail = '', detail_data = NULL WHERE alert_id IN ({alerts})"
        " AND (detail <> '' OR detail_data IS NOT NULL)",
        "notifications": "UPDATE notifications SET body = '{}', last_error = NULL"
        f" WHERE alert_id IN ({alerts}) AND (body <> '{{}}' OR last_error IS NOT NULL)",
        "delivery_attempts": f"UPDATE delivery_attempts SET detail = '' WHERE notification_id IN ({notifications})"
        " AND detail <> ''",
        "alert_declines": f"UPDATE alert_declines SET note = '' WHERE alert_id IN ({alerts}) AND note <> ''",
        "visits": "UPDATE visits SET note = '' WHERE household_id = %(hh)s AND note <> ''",
        "devices": "UPDATE devices SET decommissioned_at = %(now)s WHERE household_id = %(hh)s"
        " AND decommissioned_at IS NULL",
        "device_credentials": "UPDATE device_credentials SET revoked_at = %(now)s WHERE revoked_at IS NULL"
        " AND device_id IN (SELECT device_id FROM devices WHERE household_id = %(hh)s)",
    }
    values = {"hh": household_id, "now": now, "erased": ERASED}
    scrubbed = {name: conn.execute(query, values).rowcount for name, query in statements.items()}

    caregivers = [
        str(r[0])
        for r in conn.execute(
            "DELETE FROM care_plan_contacts WHERE household_id = %s RETURNING caregiver_id", (household_id,)
        )
    ]
    deleted["care_plan_contacts"] = len(caregivers)
    lone = _erase_lone_caregivers(conn, caregivers, now)
    scrubbed["caregivers"] = len(lone)
    scrubbed["residents"] = conn.execute(
        "UPDATE residents SET name = %(erased)s, birth_year = NULL, medical_notes = '', phone = '',"
        " erased_at = coalesce(erased_at, %(now)s) WHERE household_id = %(hh)s",
        values,
    ).rowcount
    scrubbed["households"] = conn.execute(
        "UPDATE households SET name = %(erased)s, address = '', access_notes = '', settings = '{}',"
        " erased_at = coalesce(erased_at, %(now)s) WHERE household_id = %(hh)s",
        values,
    ).rowcount
    kept = conn.execute("SELECT count(*) FROM alerts WHERE household_id = %s", (household_id,)).fetchone()
    return Erasure(
        household_id=household_id,
        erased_at=erased_at,
        already_erased=already_erased,
        devices=devices,
        alerts_kept=int(kept[0]) if kept else 0,
        alerts_resolved=resolved,
        caregivers_erased=lone,
        rows_deleted=deleted,
        rows_scrubbed=scrubbed,
        readings_span=readings_span,
    )


def _count(conn: psycopg.Connection, query: str, ids: list[str]) -> int:
    return conn.execute(query, (ids,)).rowcount


def _stop_alerts(conn: psycopg.Connection, household_id: str, now: datetime) -> int:
    """Resolve the household's open alerts (nobody is to be sent any more) and kill their pending
    notifications; returns how many alerts were resolved."""
    resolved = [
        int(r[0])
        for r in conn.execute(
            "UPDATE alerts SET status = 'resolved', resolved_at = %s, resolved_by = %s, outcome = 'other',"
            " next_escalation_at = NULL WHERE household_id = %s AND status <> 'resolved' RETURNING alert_id",
            (now, ERASURE_ACTOR, household_id),
        )
    ]
    if resolved:
        conn.execute(
            "INSERT INTO alert_events (alert_id, at, actor, action, detail) SELECT id, %s, %s, 'resolved', ''"
            " FROM unnest(%s::bigint[]) AS id",
            (now, ERASURE_ACTOR, resolved),
        )
        conn.execute(
            "UPDATE notifications SET status = 'dead', last_error = NULL"
            " WHERE alert_id = ANY(%s) AND status = 'pending'",
            (resolved,),
        )
    return len(resolved)


def _erase_lone_caregivers(conn: psycopg.Connection, caregivers: list[str], now: datetime) -> list[str]:
    """Scrub the contact fields of the caregivers in ``caregivers`` that serve no household any more,
    and revoke their API tokens; returns their ids."""
    lone = [
        str(r[0])
        for r in conn.execute(
            "UPDATE caregivers c SET name = %s, phone = '', email = '', webhook_url = NULL, webhook_secret = NULL,"
            " erased_at = coalesce(c.erased_at, %s) WHERE c.caregiver_id = ANY(%s)"
            " AND NOT EXISTS (SELECT 1 FROM care_plan_contacts p WHERE p.caregiver_id = c.caregiver_id)"
            " RETURNING c.caregiver_id",
            (ERASED, now, caregivers),
        )
    ]
    if lone:
        conn.execute(
            "UPDATE api_tokens SET revoked_at = %s"
            " WHERE role = 'caregiver' AND subject = ANY(%s) AND revoked_at IS NULL",
            (now, lone),
        )
    return sorted(lone)


def refresh_hourly(conn: psycopg.Connection, span: tuple[datetime, datetime]) -> bool:
    """TimescaleDB: re-materialise the hourly aggregate over ``span`` so the erased readings' hours go
    too (``conn`` must be in autocommit: a refresh cannot run in a transaction). False without one."""
    if conn.execute("SELECT to_regclass('readings_hourly') IS NOT NULL").fetchone() != (True,):
        return False
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return False
    conn.execute(
        "CALL refresh_continuous_aggregate('readings_hourly', %s::timestamptz - interval '1 hour',"
        " %s::timestamptz + interval '1 hour')",
        span,
    )
    return True
