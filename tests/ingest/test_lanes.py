"""Emergencies do not queue behind telemetry: the urgent lane is its own MQTT session.

A backlog of meter readings is queued at the broker while the ingest is away, then one ``sos``. When
the ingest starts, the ``sos`` must be committed (and handed to the detectors) long before the
telemetry backlog has drained, and every message must still be stored exactly once.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from ingest.decode import DecodePolicy
from ingest.service import IngestConfig, IngestService
from schemas.intake import Accepted
from tests.ingest.helpers import count_receipts, meter_stream, provision
from tests.support import publish_raw, wait_until

BACKLOG = 20_000


class _Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.committed = 0
        self.sos_after: int | None = None  # how many messages had been committed when the sos was

    def __call__(self, new: list[Accepted]) -> None:
        with self.lock:
            for item in new:
                if item.channel.value == "event" and self.sos_after is None:
                    self.sos_after = self.committed
            self.committed += len(new)


@pytest.mark.full_broker
def test_sos_overtakes_a_telemetry_backlog(mqtt_url: str, database_url: str, topic_root: str) -> None:
    prefix = f"lane{uuid.uuid4().hex[:4]}"
    meters = [f"{prefix}-m{k:02d}" for k in range(50)]
    button = f"{prefix}-button"
    provision(database_url, f"hh-{prefix}", {**dict.fromkeys(meters, "water_meter"), button: "call_button"})
    config = IngestConfig(
        client_id=f"test-lanes-{uuid.uuid4().hex[:6]}",
        policy=DecodePolicy(topic_root=topic_root),
        device_rate_burst=10_000,
        device_rate_per_s=10_000,
    )
    recorder = _Recorder()

    def service() -> IngestService:
        return IngestService(
            config=config,
            mqtt_url=mqtt_url,
            database_url=database_url,
            on_committed=recorder,
            registry=CollectorRegistry(),
        )

    # Create both persistent sessions, then go away: the broker queues everything for them.
    first = service()
    for source in first.sources:
        source.start()
    assert first.connected.wait(10)
    time.sleep(0.3)
    for source in first.sources:
        source.stop()

    sos = json.dumps({"ts": datetime.now(UTC).isoformat(), "seq": 1, "event": "sos"}).encode()
    publish_raw(mqtt_url, [*meter_stream(topic_root, meters, BACKLOG), (f"{topic_root}/dev/{button}/event", sos)])

    second = service()
    second.start()
    try:
        wait_until(lambda: recorder.committed >= BACKLOG + 1, timeout=120, interval=0.05)
    finally:
        second.stop()

    assert recorder.sos_after is not None
    assert recorder.sos_after < BACKLOG // 2, f"the sos waited behind {recorder.sos_after} readings"
    assert count_receipts(database_url, prefix) == (BACKLOG + 1, BACKLOG + 1)
