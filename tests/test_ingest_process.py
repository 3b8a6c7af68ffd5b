"""The ingest in its own process: killed mid-stream it is restarted and loses nothing, and records it
committed without handing them to the detectors are read back from the database.

Real broker and database, the default pipeline (ingest and dispatcher in child processes).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from carewatch.ingest_process import IngestProcess
from carewatch.runtime import ingest_config
from ingest.service import IngestService
from schemas.api import DeviceCreate, HouseholdCreate
from schemas.kinds import DeviceType
from storage import registry
from tests.support import payload, pipeline_settings, publish_raw, running_pipeline, wait_until

pytestmark = pytest.mark.services

METERS = [f"ip-meter-{i}" for i in range(20)]
PER_METER = 30


@pytest.fixture(scope="module")
def provisioned(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        registry.insert_household(conn, HouseholdCreate(household_id="hh-ip", name="Li Ayi"))
        for device_id in METERS:
            registry.insert_device(
                conn, DeviceCreate(device_id=device_id, device_type=DeviceType.WATER_METER, household_id="hh-ip")
            )
        registry.insert_household(conn, HouseholdCreate(household_id="hh-ip-side", name="Wang Laoshi"))
        for device_id, household_id in (("ip-button", "hh-ip"), ("ip-button-side", "hh-ip-side")):
            registry.insert_device(
                conn, DeviceCreate(device_id=device_id, device_type=DeviceType.CALL_BUTTON, household_id=household_id)
            )
    return database_url


def _count(database_url: str, query: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _readings(topic_root: str, first: int, last: int) -> list[tuple[str, bytes]]:
    start = datetime.now(UTC) - timedelta(hours=2)
    return [
        (
            f"{topic_root}/dev/{meter}/telemetry",
            payload(ts=(start + timedelta(minutes=step)).isoformat(), seq=step, register_l=100.0 + step),
        )
        for step in range(first, last)
        for meter in METERS
    ]


@pytest.mark.full_broker
def test_killed_ingest_process_is_restarted_and_every_message_is_stored_once(
    provisioned: str, mqtt_url: str, topic_root: str
) -> None:
    database_url = provisioned
    stored = "SELECT count(*) FROM readings WHERE device_id LIKE 'ip-meter-%'"
    with running_pipeline(pipeline_settings(topic_root), mqtt_url, database_url, serve_api=False) as pipeline:
        ingest = pipeline.ingest
        assert isinstance(ingest, IngestProcess)
        publish_raw(mqtt_url, _readings(topic_root, 0, PER_METER // 2))
        wait_until(lambda: _count(database_url, stored) > 0, timeout=30)
        (pid,) = ingest.pids
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        publish_raw(mqtt_url, _readings(topic_root, PER_METER // 2, PER_METER))
        publish_raw(
            mqtt_url,
            [(f"{topic_root}/dev/ip-button/event", payload(ts=datetime.now(UTC).isoformat(), seq=1, event="sos"))],
        )
        wait_until(lambda: _count(database_url, stored) == len(METERS) * PER_METER, timeout=60)
        wait_until(lambda: _count(database_url, "SELECT count(*) FROM alerts WHERE kind = 'sos'"), timeout=30)
        assert ingest.restarts == 1
        assert ingest.pids != [pid]
        assert ingest.alive
        assert ingest.connected.is_set()
    distinct = "SELECT count(DISTINCT (device_id, ts)) FROM readings WHERE device_id LIKE 'ip-meter-%'"
    assert _count(database_url, distinct) == len(METERS) * PER_METER


def test_records_committed_by_another_ingest_reach_the_detectors(
    provisioned: str, mqtt_url: str, topic_root: str
) -> None:
    """An ingest that hands nothing over (a standalone ``python -m ingest`` worker, or one that died
    right after its commit): the detectors read its records from the database's feed all the same."""
    database_url = provisioned
    side_root = f"{topic_root}-side"
    side_settings = pipeline_settings(side_root, mqtt_client_id=f"side-{uuid.uuid4().hex[:8]}")
    # Commits, then tells nobody: as a standalone worker, or a child killed right after its commit.
    side = IngestService(
        config=ingest_config(side_settings),
        mqtt_url=mqtt_url,
        database_url=database_url,
        on_committed=lambda committed: None,
        registry=CollectorRegistry(),
    )
    side_alerts = "SELECT count(*) FROM alerts WHERE household_id = 'hh-ip-side' AND kind = 'sos'"
    side_events = "SELECT count(*) FROM events WHERE device_id = 'ip-button-side'"
    with running_pipeline(pipeline_settings(topic_root), mqtt_url, database_url, serve_api=False) as pipeline:
        # One record through the pipeline gives the runner a watermark to replay from.
        publish_raw(mqtt_url, _readings(topic_root, 100, 101)[:1])
        wait_until(lambda: pipeline.detectors.watermark is not None, timeout=30)
        side.start()
        try:
            publish_raw(
                mqtt_url,
                [
                    (
                        f"{side_root}/dev/ip-button-side/event",
                        payload(ts=datetime.now(UTC).isoformat(), seq=7, event="sos"),
                    )
                ],
            )
            wait_until(lambda: _count(database_url, side_events) == 1, timeout=30)
            # No hand-over, no replay asked for: the event's commit woke the feed.
            wait_until(lambda: _count(database_url, side_alerts) == 1, timeout=10)
        finally:
            side.stop()
        time.sleep(1.0)  # several runner rounds more: still one alert
        assert _count(database_url, side_alerts) == 1


@pytest.mark.full_broker
def test_two_ingest_processes_share_the_subscription_and_feed_one_detector_runner(
    provisioned: str, mqtt_url: str, topic_root: str
) -> None:
    database_url = provisioned
    root = f"{topic_root}-two"
    stored = "SELECT count(*) FROM readings WHERE device_id LIKE 'ip-meter-%' AND ts >= now() - interval '10 minutes'"
    sos_alerts = "SELECT count(*) FROM alerts WHERE household_id = 'hh-ip-two' AND kind = 'sos'"
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        registry.insert_household(conn, HouseholdCreate(household_id="hh-ip-two", name="Chen Popo"))
        registry.insert_device(
            conn, DeviceCreate(device_id="ip-button-two", device_type=DeviceType.CALL_BUTTON, household_id="hh-ip-two")
        )
    settings = pipeline_settings(root, ingest_processes=2)
    with running_pipeline(settings, mqtt_url, database_url, serve_api=False) as pipeline:
        ingest = pipeline.ingest
        assert isinstance(ingest, IngestProcess)
        assert len(ingest.pids) == 2
        now = datetime.now(UTC)
        readings = [
            (
                f"{root}/dev/{meter}/telemetry",
                payload(
                    ts=(now - timedelta(seconds=10 * (20 - step))).isoformat(), seq=500 + step, register_l=900.0 + step
                ),
            )
            for step in range(20)
            for meter in METERS
        ]
        sos = (f"{root}/dev/ip-button-two/event", payload(ts=now.isoformat(), seq=1, event="sos"))
        publish_raw(mqtt_url, [*readings, sos])
        wait_until(lambda: _count(database_url, stored) == len(readings), timeout=60)
        wait_until(lambda: _count(database_url, sos_alerts) == 1, timeout=30)

        # The workers' counters are summed into the pipeline's registry.
        def stored_metric() -> float:
            return sum(
                sample.value
                for family in pipeline.metrics.collect()
                if family.name == "carewatch_ingest_stored"
                for sample in family.samples
                if sample.name == "carewatch_ingest_stored_total"
            )

        wait_until(lambda: stored_metric() == len(readings) + 1, timeout=10)
    # Every meter's newest reading reached the one detector runner, whichever worker stored it (the
    # runner's snapshot on stop holds each meter's last reading time).
    newest = (now - timedelta(seconds=10)).timestamp()
    with psycopg.connect(database_url) as conn:
        seen = conn.execute(
            "SELECT state_key, (state->'logic'->>'t')::float8 FROM detector_state WHERE state_key LIKE 'dev:ip-meter-%'"
        ).fetchall()
    assert sorted(key for key, _ in seen) == sorted(f"dev:{meter}" for meter in METERS)
    assert all(abs(t - newest) < 0.01 for _, t in seen), seen
