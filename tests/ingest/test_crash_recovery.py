"""Never lose, never duplicate, whatever restarts: the ingest worker SIGKILLed mid-stream, and
PostgreSQL stopped and started mid-stream while the ingest keeps receiving.

The worker is a ``python -m ingest`` child process, killed with SIGKILL while batches are in flight
and restarted with the same client id: the broker redelivers everything unacknowledged and storage
deduplicates, so every published QoS 1 message is stored exactly once.

PostgreSQL: a private server (pgserver) that this test stops and starts itself, so that other test
sessions sharing the machine's PostgreSQL are not disturbed; it is the same failure as a restart of
the production server (connections dropped, refused while down).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pgserver._commands import pg_ctl
from prometheus_client import CollectorRegistry

import storage
from carewatch import embedded
from ingest.decode import DecodePolicy
from ingest.service import IngestConfig, IngestService
from tests.ingest.helpers import Worker, count_receipts, meter_stream, provision
from tests.support import publish_raw, wait_until

pytestmark = pytest.mark.slow


@pytest.mark.full_broker
def test_sigkill_mid_stream_then_restart_stores_every_message_exactly_once(
    mqtt_url: str, database_url: str, topic_root: str
) -> None:
    prefix = f"kill{uuid.uuid4().hex[:4]}"
    devices = [f"{prefix}-{k:02d}" for k in range(20)]
    provision(database_url, f"hh-{prefix}", dict.fromkeys(devices, "water_meter"))
    messages = meter_stream(topic_root, devices, 6000)
    options = {
        "mqtt_url": mqtt_url,
        "database_url": database_url,
        "topic_root": topic_root,
        "client_id": f"test-kill-{uuid.uuid4().hex[:6]}",
    }
    first = Worker(**options)
    first.wait_ready()
    publisher = threading.Thread(target=publish_raw, args=(mqtt_url, messages))
    publisher.start()
    try:
        # Kill it once it is well into the stream, with batches committed and others in flight.
        wait_until(lambda: count_receipts(database_url, prefix)[0] >= 1500, timeout=60, interval=0.02)
        first.kill()
        killed_at = count_receipts(database_url, prefix)[0]
        publisher.join(timeout=120)
        assert not publisher.is_alive()
        assert killed_at < len(messages), "the worker finished before it was killed: nothing was tested"
        second = Worker(**options)
        try:
            second.wait_ready()
            wait_until(lambda: count_receipts(database_url, prefix)[0] >= len(messages), timeout=60)
            time.sleep(0.5)  # anything still redelivered must not add rows
        finally:
            second.stop()
    finally:
        first.stop()
        publisher.join(timeout=60)
    receipts, distinct = count_receipts(database_url, prefix)
    assert (receipts, distinct) == (len(messages), len(messages))


@pytest.fixture
def private_postgres() -> Iterator[embedded.EmbeddedService]:
    # Not under pytest's tmp_path: pgserver (as root) must make every parent traversable for its user.
    workdir = Path(f"/tmp/carewatch-pgrestart-{uuid.uuid4().hex[:8]}")  # noqa: S108 - private, unique
    service = embedded.start_postgres(workdir, cleanup="delete")
    try:
        storage.migrate(service.url)
        yield service
    finally:
        _pg_ctl(service, "start")  # running again whatever happened, so that it can be stopped cleanly
        service.stop()


def _pg_ctl(service: embedded.EmbeddedService, action: str) -> None:
    """Stop or start the private server (started with the socket options pgserver gave it)."""
    pgdata = service.workdir
    if action == "stop":
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user="pgserver" if _root() else None, timeout=30)
        return
    if (pgdata / "postmaster.pid").exists():
        return
    socket_dir = parse_qs(urlsplit(service.url).query)["host"][0]
    pg_ctl(
        ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"],
        pgdata=pgdata,
        user="pgserver" if _root() else None,
        timeout=30,
    )


def _root() -> bool:
    return os.geteuid() == 0


def test_postgres_down_mid_stream_holds_a_bounded_backlog_then_catches_up(
    mqtt_url: str, topic_root: str, private_postgres: embedded.EmbeddedService
) -> None:
    database_url = private_postgres.url
    devices = [f"pgr-{k:02d}" for k in range(20)]
    provision(database_url, "hh-pgr", dict.fromkeys(devices, "water_meter"))
    messages = meter_stream(topic_root, devices, 4000)
    max_backlog = 300
    service = IngestService(
        config=IngestConfig(
            client_id=f"test-pgr-{uuid.uuid4().hex[:6]}",
            policy=DecodePolicy(topic_root=topic_root),
            batch_rows=200,
            flush_ms=20,
            max_backlog=max_backlog,
            device_rate_per_s=1e5,
            device_rate_burst=100_000,
        ),
        mqtt_url=mqtt_url,
        database_url=database_url,
        on_committed=lambda batch: None,
        registry=CollectorRegistry(),
    )
    peak = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampling.is_set():
            peak = max(peak, service.backlog)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    service.start()
    sampler.start()
    publisher = threading.Thread(target=publish_raw, args=(mqtt_url, messages))
    try:
        publisher.start()
        wait_until(lambda: count_receipts(database_url, "pgr-")[0] >= 500, timeout=60, interval=0.02)
        _pg_ctl(private_postgres, "stop")
        time.sleep(2.0)  # the ingest keeps receiving, fails to commit, holds and back-pressures
        failures = service.metrics.store_failures._value.get()
        held = service.backlog  # received while the database is down, waiting
        _pg_ctl(private_postgres, "start")
        publisher.join(timeout=120)
        wait_until(lambda: count_receipts(database_url, "pgr-")[0] >= len(messages), timeout=60)
        receipts = count_receipts(database_url, "pgr-")
    finally:
        sampling.set()
        sampler.join()
        service.stop()
        publisher.join(timeout=60)
    assert failures >= 1  # the outage was seen (and retried)
    assert 0 < held <= max_backlog  # messages were held, in bounded memory; the broker kept the rest
    assert peak <= max_backlog
    assert receipts == (len(messages), len(messages))  # every message stored, exactly once
