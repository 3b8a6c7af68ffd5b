"""A small world for the API tests: two districts, households, caregivers with different care roles,
devices, readings and alerts, and one token per role; plus a live uvicorn server around ``create_app``.

Changning: ``hh-a1`` (cared for by ``cg-fam`` as family and ``cg-vol`` as volunteer) and ``hh-a2``.
Putuo: ``hh-b1`` (cared for by ``cg-b``). Alerts are opened through the alerting service, as detectors do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import uvicorn
from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from alerting.checkin_policy import CheckinConfig
from alerting.service import AlertingConfig, apply_findings
from api.app import create_app
from api.auth import create_token
from carewatch.embedded import free_port
from schemas.api import CaregiverCreate, CarePlanContactCreate, DeviceCreate, HouseholdCreate, ResidentCreate
from schemas.evidence import Evidence, Message, PlainText
from schemas.findings import Finding
from schemas.kinds import AlertKind, CareRole, DeviceType, Severity
from storage import registry

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Tokens:
    admin: str
    op_a: str
    op_b: str
    cg_fam: str
    cg_vol: str
    cg_b: str
    provisioner: str


@dataclass(frozen=True)
class World:
    tokens: Tokens
    alerts: dict[str, int]  # "a1-sos", "a2-smoke", "b1-sos" -> alert_id


def finding(
    household_id: str,
    kind: AlertKind,
    severity: Severity,
    at: datetime,
    device_id: str | None = None,
    message: Message | None = None,
) -> Finding:
    """A finding with ``message`` as its evidence (default: a plain test text)."""
    return Finding(
        kind=kind,
        severity=severity,
        household_id=household_id,
        device_id=device_id,
        at=at,
        detected_at=at,
        evidence=Evidence(
            message=message or PlainText(text=f"{kind.value} test evidence"), tz="Asia/Shanghai", as_of=at
        ),
        detector="test",
    )


def seed(conn: psycopg.Connection) -> World:
    for household_id, district, notes in (
        ("hh-a1", "Changning", "diabetic; insulin in fridge"),
        ("hh-a2", "Changning", ""),
        ("hh-b1", "Putuo", "hearing aid"),
    ):
        registry.insert_household(
            conn,
            HouseholdCreate(
                household_id=household_id,
                name=f"Resident of {household_id}",
                address="secret address",
                district=district,
                residents=[ResidentCreate(name=f"Elder {household_id}", birth_year=1940, medical_notes=notes)],
            ),
        )
    for caregiver_id in ("cg-fam", "cg-vol", "cg-b"):
        registry.insert_caregiver(
            conn, CaregiverCreate(caregiver_id=caregiver_id, name=f"Name {caregiver_id}", phone="13800000000")
        )
    for household_id, caregiver_id, role in (
        ("hh-a1", "cg-fam", CareRole.FAMILY),
        ("hh-a1", "cg-vol", CareRole.VOLUNTEER),
        ("hh-b1", "cg-b", CareRole.FAMILY),
    ):
        registry.upsert_contact(conn, household_id, CarePlanContactCreate(caregiver_id=caregiver_id, role=role))
    for device_id, device_type, household_id in (
        ("a1-meter", DeviceType.WATER_METER, "hh-a1"),
        ("a1-button", DeviceType.CALL_BUTTON, "hh-a1"),
        ("a2-smoke", DeviceType.SMOKE_ALARM, "hh-a2"),
        ("b1-meter", DeviceType.WATER_METER, "hh-b1"),
    ):
        registry.insert_device(
            conn, DeviceCreate(device_id=device_id, device_type=device_type, household_id=household_id)
        )
    # Eight days of quarter-hourly meter readings for a1: 2 L per quarter in the day, nothing at night.
    rows = []
    register = 1000.0
    moment = NOW - timedelta(days=8)
    while moment < NOW:
        if 6 <= (moment.hour + 8) % 24 <= 22:
            register += 2.0
        rows.append(("a1-meter", moment, register, moment))
        moment += timedelta(minutes=15)
    with conn.cursor().copy("COPY readings (device_id, ts, register_l, received_at) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    # Alerts page at once here (no resident check-in first): these tests are about who sees what.
    config = AlertingConfig(checkins=CheckinConfig(policies={}))
    alerts = {}
    for key, household_id, kind, severity, device_id in (
        ("a1-sos", "hh-a1", AlertKind.SOS, Severity.CRITICAL, "a1-button"),
        ("a2-smoke", "hh-a2", AlertKind.SMOKE, Severity.CRITICAL, "a2-smoke"),
        ("b1-sos", "hh-b1", AlertKind.SOS, Severity.CRITICAL, None),
        ("a1-inactivity", "hh-a1", AlertKind.INACTIVITY, Severity.HIGH, "a1-meter"),
    ):
        (alert_id,) = apply_findings(
            conn,
            [finding(household_id, kind, severity, NOW - timedelta(hours=2), device_id)],
            NOW - timedelta(hours=2),
            config,
        )
        alerts[key] = alert_id
    tokens = Tokens(
        admin=create_token(conn, "admin", "root"),
        op_a=create_token(conn, "operator", "op-a", "Changning"),
        op_b=create_token(conn, "operator", "op-b", "Putuo"),
        cg_fam=create_token(conn, "caregiver", "cg-fam"),
        cg_vol=create_token(conn, "caregiver", "cg-vol"),
        cg_b=create_token(conn, "caregiver", "cg-b"),
        provisioner=create_token(conn, "device_provisioner", "prov-1"),
    )
    return World(tokens=tokens, alerts=alerts)


@dataclass
class Served:
    url: str
    app: FastAPI
    pool: ConnectionPool

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@contextmanager
def serve(database_url: str, **kwargs: object) -> Iterator[Served]:
    """``create_app`` on a real uvicorn server in a thread (SSE and the browser need a real socket)."""
    pool = ConnectionPool(database_url, min_size=1, max_size=8, kwargs={"autocommit": True}, open=True)
    app = create_app(pool=pool, feed_poll_s=0.2, **kwargs)  # type: ignore[arg-type]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("API server did not start")
        time.sleep(0.02)
    try:
        yield Served(url=f"http://127.0.0.1:{port}", app=app, pool=pool)
    finally:
        app.state.feed.close()
        server.should_exit = True
        thread.join(timeout=10)
        pool.close()
