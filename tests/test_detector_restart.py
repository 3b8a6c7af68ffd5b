"""The detector runner across restarts: nothing about to fire is forgotten, nothing open is re-raised.

Real broker and database: the pipeline is stopped between the two halves of a quiet night, so the
second pipeline must restore the snapshot (or replay from the database) to know the water stopped
eleven hours ago.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from schemas.api import DeviceCreate, HouseholdCreate
from schemas.kinds import DeviceType
from storage import registry
from tests.support import payload, pipeline_settings, publish_raw, running_pipeline, wait_until

pytestmark = pytest.mark.services

METER = "restart-meter"
HOUSEHOLD = "hh-restart"


@pytest.fixture(scope="module")
def provisioned(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        registry.insert_household(conn, HouseholdCreate(household_id=HOUSEHOLD, name="Zhang Shushu"))
        registry.insert_device(
            conn, DeviceCreate(device_id=METER, device_type=DeviceType.WATER_METER, household_id=HOUSEHOLD)
        )
    return database_url


def _readings(topic_root: str, start: datetime, first: int, last: int) -> list[tuple[str, bytes]]:
    return [
        (
            f"{topic_root}/dev/{METER}/telemetry",
            payload(ts=(start + timedelta(minutes=15 * step)).isoformat(), seq=step, register_l=500.0),
        )
        for step in range(first, last)
    ]


def _alerts(database_url: str) -> list[tuple[str, int]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT kind, occurrences FROM alerts WHERE household_id = %s ORDER BY alert_id", (HOUSEHOLD,)
        ).fetchall()


def _stored(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM readings WHERE device_id = %s", (METER,)).fetchone()
    return int(row[0]) if row else 0


def test_restart_mid_window_then_once_after_alert(provisioned: str, mqtt_url: str, topic_root: str) -> None:
    database_url = provisioned
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=14)
    # Water used at the start, then nothing: 11 quiet hours before the restart.
    first = [
        (
            f"{topic_root}/dev/{METER}/telemetry",
            payload(ts=(start - timedelta(minutes=15)).isoformat(), seq=1000, register_l=480.0),
        )
    ]
    with running_pipeline(pipeline_settings(topic_root), mqtt_url, database_url):
        publish_raw(mqtt_url, first + _readings(topic_root, start, 0, 44))
        wait_until(lambda: _stored(database_url) == 45, timeout=30)
    assert _alerts(database_url) == []

    # Second life: two more quiet hours complete the 12-hour window; the alert must fire once.
    with running_pipeline(pipeline_settings(topic_root), mqtt_url, database_url):
        publish_raw(mqtt_url, _readings(topic_root, start, 44, 52))
        wait_until(lambda: _alerts(database_url), timeout=30)
        wait_until(lambda: _stored(database_url) == 53, timeout=30)
    assert [kind for kind, _ in _alerts(database_url)] == ["inactivity"]

    # Third life: still no water. The open alert is neither raised again nor forgotten.
    with running_pipeline(pipeline_settings(topic_root), mqtt_url, database_url):
        publish_raw(mqtt_url, _readings(topic_root, start, 52, 56))
        wait_until(lambda: _stored(database_url) == 57, timeout=30)
    alerts = _alerts(database_url)
    assert [kind for kind, _ in alerts] == ["inactivity"]
    assert alerts[0][1] == 1, "a restart must not re-raise (or re-count) an alert that is already open"
