"""Horizontal scale: two ingest processes share one MQTT 5 subscription (``$share/<group>/...``).

The broker hands each message to one member of the group, both workers store some, and nothing is
stored twice. Needs MQTT 5 (the amqtt fallback broker speaks 3.1.1 only).
"""

from __future__ import annotations

import urllib.request
import uuid

import pytest

from carewatch.embedded import free_port
from tests.fixtures.fix_mqtt import MqttBroker
from tests.ingest.helpers import count_receipts, meter_stream, provision, worker
from tests.support import publish_raw, wait_until

pytestmark = pytest.mark.slow


def _stored(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("carewatch_ingest_stored_total")
    )


@pytest.mark.full_broker
def test_two_workers_share_one_subscription_without_double_storing(
    mqtt_broker: MqttBroker, database_url: str, topic_root: str
) -> None:
    prefix = f"share{uuid.uuid4().hex[:4]}"
    devices = [f"{prefix}-{k:02d}" for k in range(20)]
    provision(database_url, f"hh-{prefix}", dict.fromkeys(devices, "water_meter"))
    messages = meter_stream(topic_root, devices, 3000)
    group = f"g{uuid.uuid4().hex[:6]}"
    ports = [free_port(), free_port()]
    common = {"mqtt_url": mqtt_broker.url, "database_url": database_url, "topic_root": topic_root}
    with (
        worker(**common, client_id=f"{group}-0", share_group=group, metrics_port=ports[0]),
        worker(**common, client_id=f"{group}-1", share_group=group, metrics_port=ports[1]),
    ):
        publish_raw(mqtt_broker.url, messages)
        wait_until(lambda: count_receipts(database_url, prefix)[0] >= len(messages), timeout=60)
        per_worker = [_stored(port) for port in ports]
    assert count_receipts(database_url, prefix) == (len(messages), len(messages))
    assert sum(per_worker) == len(messages)  # each message went to exactly one worker
    assert min(per_worker) > 0, per_worker  # and both took part
