"""Node takeover end to end: two carewatch nodes on one database and one broker, one of them a real
``carewatch run`` process that is SIGKILLed. Its partitions move to the survivor, which restores their
snapshots and replays the feed: every sos is paged exactly once, none lost, none twice.

The nodes share the telemetry subscription here, but never the events' (ingest.service): every node's
ingest stores every press (storage keeps one), so the presses made while b is dead are stored by a at
once rather than waiting in b's session. b is restarted with the same client id, as a supervisor
would, and stores its copies of them again: nothing more is paged, and the partitions split again.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from carewatch.partitions import PARTITIONS, partition_of
from carewatch.webhook_receiver import WebhookReceiver
from schemas.api import CaregiverCreate, CarePlanContactCreate, DeviceCreate, HouseholdCreate
from schemas.kinds import CareRole, DeviceType
from storage import registry
from tests.support import payload, pipeline_settings, publish_raw, running_pipeline, wait_until

pytestmark = [pytest.mark.services, pytest.mark.full_broker]

HOUSEHOLDS = [f"hh-tk-{n:03d}" for n in range(24)]
LEASE_TTL_S = 2.0


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
                caregiver_id="cg-tk", name="Chen", webhook_url=receiver.url, webhook_secret=receiver.secret
            ),
        )
        for household_id in HOUSEHOLDS:
            registry.insert_household(conn, HouseholdCreate(household_id=household_id, name="x"))
            registry.insert_device(
                conn,
                DeviceCreate(
                    device_id=f"btn-{household_id}", device_type=DeviceType.CALL_BUTTON, household_id=household_id
                ),
            )
            registry.upsert_contact(
                conn, household_id, CarePlanContactCreate(caregiver_id="cg-tk", role=CareRole.VOLUNTEER)
            )
    return database_url


def _owners(database_url: str) -> Counter[str]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT owner FROM detector_leases WHERE expires_at > clock_timestamp()").fetchall()
    return Counter(str(owner) for (owner,) in rows)


def _press(mqtt_url: str, topic_root: str, at: datetime, seq: int) -> None:
    publish_raw(
        mqtt_url,
        [(f"{topic_root}/dev/btn-{h}/event", payload(ts=at.isoformat(), seq=seq, event="sos")) for h in HOUSEHOLDS],
    )


def _sos_deliveries(receiver: WebhookReceiver) -> Counter[str]:
    return Counter(d.body.get("household_id", "?") for d in receiver.deliveries if d.body.get("kind") == "sos")


def _start_node(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "from carewatch.cli import main; raise SystemExit(main(['run', '--no-api']))"],
        env=env,
        start_new_session=True,  # its own process group: SIGKILL takes its children too, as a dead host
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_killed_node_s_partitions_move_and_every_sos_is_paged_once(
    provisioned: str, mqtt_url: str, topic_root: str, receiver: WebhookReceiver
) -> None:
    database_url = provisioned
    group = f"tk{uuid.uuid4().hex[:6]}"
    b_client = f"node-b-{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "CAREWATCH_DATABASE_URL": database_url,
        "CAREWATCH_MQTT_URL": mqtt_url,
        "CAREWATCH_TOPIC_ROOT": topic_root,
        "CAREWATCH_NODE_ID": "node-b",
        "CAREWATCH_MQTT_CLIENT_ID": b_client,
        "CAREWATCH_MQTT_SHARE_GROUP": group,
        "CAREWATCH_LEASE_TTL_S": str(LEASE_TTL_S),
        "CAREWATCH_DETECTOR_TICK_S": "0.5",
        "CAREWATCH_DISPATCH_POLL_S": "0.1",
    }
    settings = pipeline_settings(topic_root, node_id="node-a", mqtt_share_group=group, lease_ttl_s=LEASE_TTL_S)
    with running_pipeline(settings, mqtt_url, database_url, serve_api=False) as node_a:
        wait_until(lambda: len(node_a.detectors.partitions) == PARTITIONS, timeout=30)
        node_b = _start_node(env)
        try:
            wait_until(lambda: _owners(database_url) == Counter({"node-a": 32, "node-b": 32}), timeout=60)
            b_partitions = {p for p in range(PARTITIONS) if p not in node_a.detectors.partitions}
            assert {partition_of(h) for h in HOUSEHOLDS} & b_partitions  # node b detects some of them
            now = datetime.now(UTC)
            _press(mqtt_url, topic_root, now - timedelta(minutes=30), 1)
            wait_until(lambda: len(_sos_deliveries(receiver)) == len(HOUSEHOLDS), timeout=60)

            os.killpg(node_b.pid, signal.SIGKILL)  # the host dies: no release, no last snapshot
            node_b.wait(timeout=10)
            killed = time.monotonic()
            _press(mqtt_url, topic_root, now, 2)  # a second press in every home, while b is dead
            wait_until(lambda: len(node_a.detectors.partitions) == PARTITIONS, timeout=15 + LEASE_TTL_S)
            takeover_s = time.monotonic() - killed
            assert takeover_s <= 15
            # Every second press is paged while b is still dead: a's ingest stored its own copy.
            wait_until(lambda: _sos_deliveries(receiver) == Counter(dict.fromkeys(HOUSEHOLDS, 2)), timeout=30)
        finally:
            if node_b.poll() is None:
                os.killpg(node_b.pid, signal.SIGKILL)
        # b comes back (same client id, as its supervisor restarts it) with its own copies of the
        # second presses queued in its session: stored again, paged no more; the partitions split again.
        node_b = _start_node(env)
        try:
            wait_until(lambda: _sos_deliveries(receiver) == Counter(dict.fromkeys(HOUSEHOLDS, 2)), timeout=90)
            time.sleep(3 * LEASE_TTL_S)  # rebalancing and replays after b's return page nothing more
            assert _sos_deliveries(receiver) == Counter(dict.fromkeys(HOUSEHOLDS, 2))
        finally:
            node_b.send_signal(signal.SIGTERM)
            node_b.wait(timeout=60)
    assert receiver.repeats == 0
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT household_id, count(*), sum(occurrences) FROM alerts WHERE kind = 'sos' GROUP BY 1"
        ).fetchall()
    assert {h: (int(n), int(o)) for h, n, o in rows} == dict.fromkeys(HOUSEHOLDS, (1, 2))
