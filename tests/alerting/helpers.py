"""Shared set-up of the alerting service tests: households, caregivers and care plans written straight
into the database, findings, and a clock the test moves by hand."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.types.json import Jsonb

from alerting.service import AlertingConfig, apply_findings
from schemas.evidence import Evidence, PlainText
from schemas.findings import Finding
from schemas.kinds import DEFAULT_SEVERITY, AlertKind, Severity

T0 = datetime(2025, 3, 4, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Shanghai


class Clock:
    """An injected clock: ``clock()`` is now; ``advance`` moves it."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@dataclass(frozen=True)
class Member:
    caregiver_id: str
    role: str
    tier: int
    webhook_url: str | None = None
    secret: str | None = None
    email: str = ""
    phone: str = ""
    channels: list[str] | None = None
    working_hours: dict[str, object] | None = None


def provision(
    conn: psycopg.Connection, household_id: str, members: Iterable[Member], *, district: str = "Putuo"
) -> None:
    conn.execute(
        "INSERT INTO households (household_id, name, district) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (household_id, f"home {household_id}", district),
    )
    for position, m in enumerate(members):
        conn.execute(
            "INSERT INTO caregivers (caregiver_id, name, email, phone, webhook_url, webhook_secret)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (caregiver_id) DO NOTHING",
            (m.caregiver_id, m.caregiver_id, m.email, m.phone, m.webhook_url, m.secret),
        )
        conn.execute(
            "INSERT INTO care_plan_contacts (household_id, caregiver_id, role, tier, position, channels, working_hours)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                household_id,
                m.caregiver_id,
                m.role,
                m.tier,
                position,
                m.channels,
                Jsonb(m.working_hours) if m.working_hours else None,
            ),
        )


def finding(
    household_id: str, kind: AlertKind = AlertKind.SOS, at: datetime = T0, severity: Severity | None = None
) -> Finding:
    return Finding(
        kind=kind,
        severity=severity or DEFAULT_SEVERITY[kind],
        household_id=household_id,
        device_id=None,
        at=at,
        detected_at=at,
        evidence=Evidence(message=PlainText(text=f"{kind.value} in {household_id}"), tz="Asia/Shanghai", as_of=at),
        detector="test",
    )


def open_alert(conn: psycopg.Connection, f: Finding, now: datetime, config: AlertingConfig) -> int:
    with conn.transaction():
        changed = apply_findings(conn, [f], now, config)
    return changed[0]


def timeline_actions(conn: psycopg.Connection, alert_id: int) -> list[str]:
    rows = conn.execute("SELECT action FROM alert_events WHERE alert_id = %s ORDER BY alert_event_id", (alert_id,))
    return [row[0] for row in rows]


def keys_for(receiver_deliveries: Iterable[object], caregiver_id: str) -> list[str]:
    return [d.idempotency_key for d in receiver_deliveries if d.body["caregiver_id"] == caregiver_id]  # type: ignore[attr-defined]
