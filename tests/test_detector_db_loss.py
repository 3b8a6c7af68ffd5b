"""The detector runner loses its database connection (a failover, a restart) and keeps its partitions.

Before, every partition reloaded from its snapshot and replayed the feed after any lost connection, so
after a database failover every sos waited for the node's whole reload (seconds; bench/failover.py's
p99 outside the failover windows). Now the engines stay and the feed rewinds: records read again are
ignored or page once (the finding's key). Only a partition whose findings were being committed when
the connection went reloads, since its engine moved on while its alert may not have been stored.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from carewatch import detector_runner
from carewatch.partitions import PARTITIONS
from carewatch.runtime import Pipeline
from carewatch.webhook_receiver import WebhookReceiver
from schemas.api import CaregiverCreate, CarePlanContactCreate, DeviceCreate, HouseholdCreate
from schemas.kinds import CareRole, DeviceType
from storage import registry
from tests.support import payload, pipeline_settings, publish_raw, running_pipeline, wait_until

pytestmark = [pytest.mark.services, pytest.mark.full_broker]

HOUSEHOLDS = [f"hh-dbl-{n:02d}" for n in range(8)]
WRITING = "hh-dbl-w"  # the second test's home: the first test leaves open sos alerts in the others


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(secret=secrets.token_hex(16))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def provisioned(database_url: str, receiver: WebhookReceiver) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        registry.insert_caregiver(
            conn,
            CaregiverCreate(
                caregiver_id="cg-dbl", name="Wang", webhook_url=receiver.url, webhook_secret=receiver.secret
            ),
        )
        for household_id in [*HOUSEHOLDS, WRITING]:
            registry.insert_household(conn, HouseholdCreate(household_id=household_id, name="x"))
            registry.insert_device(
                conn,
                DeviceCreate(
                    device_id=f"btn-{household_id}", device_type=DeviceType.CALL_BUTTON, household_id=household_id
                ),
            )
            registry.upsert_contact(
                conn, household_id, CarePlanContactCreate(caregiver_id="cg-dbl", role=CareRole.VOLUNTEER)
            )
    return database_url


def _press(mqtt_url: str, topic_root: str, households: list[str], at: datetime, seq: int) -> None:
    publish_raw(
        mqtt_url,
        [(f"{topic_root}/dev/btn-{h}/event", payload(ts=at.isoformat(), seq=seq, event="sos")) for h in households],
    )


def _pages(receiver: WebhookReceiver) -> Counter[str]:
    return Counter(
        d.body.get("household_id", "?")
        for d in receiver.deliveries
        if d.body.get("kind") == "sos" and d.body.get("reason") == "new"
    )


def _cut_connections(database_url: str) -> int:
    """Terminate every other session on the database: what a failover does to the node's connections."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def _pipeline(topic_root: str, mqtt_url: str, database_url: str) -> Any:
    settings = pipeline_settings(topic_root, node_id=f"node-dbl-{secrets.token_hex(3)}", lease_ttl_s=3.0)
    return running_pipeline(settings, mqtt_url, database_url, serve_api=False)


def test_a_lost_connection_keeps_the_partitions_and_pages_every_sos_once(
    provisioned: str, mqtt_url: str, topic_root: str, receiver: WebhookReceiver
) -> None:
    node: Pipeline
    with _pipeline(topic_root, mqtt_url, provisioned) as node:
        wait_until(lambda: len(node.detectors.partitions) == PARTITIONS, timeout=30)
        loads = node.detectors.loaded_total
        now = datetime.now(UTC)
        _press(mqtt_url, topic_root, HOUSEHOLDS[:4], now - timedelta(minutes=5), 1)
        wait_until(lambda: len(_pages(receiver)) == 4, timeout=30)

        assert _cut_connections(provisioned) > 0
        _press(mqtt_url, topic_root, HOUSEHOLDS[4:], now, 1)
        wait_until(lambda: len(_pages(receiver)) == len(HOUSEHOLDS), timeout=30)
        assert len(node.detectors.partitions) == PARTITIONS
        assert node.detectors.loaded_total == loads  # nothing reloaded: no write was in flight
    assert _pages(receiver) == Counter(dict.fromkeys(HOUSEHOLDS, 1))


def test_a_connection_lost_while_writing_reloads_that_partition_and_still_pages_once(
    provisioned: str, mqtt_url: str, topic_root: str, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _pages(receiver)
    real = detector_runner.detector_state.first_time_findings
    failed: list[int] = []

    def fail_once(conn: psycopg.Connection, paging: dict[str, int]) -> set[str]:
        if paging and not failed:
            failed.append(len(paging))  # the connection dies inside the findings' transaction
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return real(conn, paging)

    monkeypatch.setattr(detector_runner.detector_state, "first_time_findings", fail_once)
    node: Pipeline
    with _pipeline(topic_root, mqtt_url, provisioned) as node:
        wait_until(lambda: len(node.detectors.partitions) == PARTITIONS, timeout=30)
        loads = node.detectors.loaded_total
        household = WRITING
        _press(mqtt_url, topic_root, [household], datetime.now(UTC), 1)
        wait_until(lambda: _pages(receiver)[household] == before[household] + 1, timeout=30)
        assert failed  # the write did fail once
        assert node.detectors.loaded_total == loads + 1  # that partition, and only it, reloaded
        assert len(node.detectors.partitions) == PARTITIONS
    after = _pages(receiver)
    assert after - before == Counter({household: 1})
