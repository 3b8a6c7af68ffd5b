"""The MQTT edge against the real broker: every message arrives whole, in order, with its packet id.

``MqttSource`` reads the socket through a buffer and decodes QoS 1 PUBLISH packets itself (see
``_DrainingClient``). These tests throw at it what could break that: packets far larger than the
read buffer (split over many reads), thousands of small ones back to back (packets split at every
possible buffer boundary), MQTT 5 properties (paho's own path), a non-UTF-8-clean payload, and a
reconnect (no bytes of the old connection read as the new one's).
"""

from __future__ import annotations

import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.inbox import Inbox
from ingest.mqtt_source import Inbound, MqttSource
from tests.fixtures.fix_mqtt import MqttBroker

pytestmark = pytest.mark.full_broker


def _publisher(broker: MqttBroker) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_queued_messages_set(0)
    client.max_inflight_messages_set(1000)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _drain(inbox: Inbox[Inbound], count: int, timeout: float = 30.0) -> list[Inbound]:
    got: list[Inbound] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got.extend(inbox.take(count - len(got), 0.2))
    return got


def _source(broker: MqttBroker, topic_root: str, inbox: Inbox[Inbound]) -> MqttSource:
    source = MqttSource(
        url=broker.url, client_id=f"test-src-{uuid.uuid4().hex[:8]}", topic_root=topic_root, inbox=inbox
    )
    source.start()
    assert source.connected.wait(10), "source did not subscribe"
    return source


def test_every_message_arrives_whole_and_in_order(mqtt_broker: MqttBroker, topic_root: str) -> None:
    inbox: Inbox[Inbound] = Inbox(100_000)
    source = _source(mqtt_broker, topic_root, inbox)
    fast = source._client.on_publish_fast
    assert fast is not None
    fast_count = 0

    def counting(topic: str, payload: bytes, mid: int) -> None:
        nonlocal fast_count
        fast_count += 1
        fast(topic, payload, mid)

    source._client.on_publish_fast = counting
    publisher = _publisher(mqtt_broker)
    try:
        sent: list[tuple[str, bytes]] = []
        for k in range(3000):
            size = (k * 37) % 400 + 1  # every length from 1 to 400 bytes: packets cut at every boundary
            sent.append((f"{topic_root}/dev/d{k % 7}/telemetry", bytes((k + i) % 256 for i in range(size))))
        # Larger than the 64 KiB read buffer, several times over: finished across passes of the loop.
        sent.insert(1000, (f"{topic_root}/dev/big/telemetry", b"x" * 300_000))
        sent.insert(2000, (f"{topic_root}/dev/big/telemetry", bytes(range(256)) * 300))
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.UserProperty = ("trace", "1")
        infos = []
        for k, (topic, payload) in enumerate(sent):
            # Every 100th message carries MQTT 5 properties, which paho decodes on its own path.
            infos.append(publisher.publish(topic, payload, qos=1, properties=properties if k % 100 == 0 else None))
        for info in infos:
            info.wait_for_publish(10)
        got = _drain(inbox, len(sent))
        assert [(m.topic, m.payload) for m in got] == sent
        assert fast_count == len(sent) - 31  # all but the 31 with properties took the direct path
        assert all(m.qos == 1 and 0 < m.mid < 65536 for m in got)
        assert len({m.mid for m in got[:1000]}) == 1000  # unacknowledged, so distinct ids in flight
        assert source.ack(got) == len(got)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        source.stop()


def test_acknowledged_messages_are_not_redelivered_and_unacknowledged_are(
    mqtt_broker: MqttBroker, topic_root: str
) -> None:
    """Across a reconnect of the same persistent session: the buffer never mixes connections."""
    inbox: Inbox[Inbound] = Inbox(10_000)
    client_id = f"test-src-{uuid.uuid4().hex[:8]}"
    source = MqttSource(url=mqtt_broker.url, client_id=client_id, topic_root=topic_root, inbox=inbox)
    source.start()
    assert source.connected.wait(10)
    publisher = _publisher(mqtt_broker)
    try:
        for k in range(200):
            publisher.publish(f"{topic_root}/dev/d1/telemetry", f"m{k}".encode(), qos=1).wait_for_publish(10)
        first = _drain(inbox, 200)
        assert [m.payload for m in first] == [f"m{k}".encode() for k in range(200)]
        source.ack(first[:120])
        time.sleep(0.5)  # let the PUBACKs leave before the connection goes
        source.stop()
        again = MqttSource(url=mqtt_broker.url, client_id=client_id, topic_root=topic_root, inbox=inbox)
        again.start()
        assert again.connected.wait(10)
        redelivered = _drain(inbox, 80)
        assert sorted(m.payload for m in redelivered) == sorted(f"m{k}".encode() for k in range(120, 200))
        assert again.ack(redelivered) == 80
        assert _drain(inbox, 1, timeout=1.0) == []
        again.stop()
    finally:
        publisher.loop_stop()
        publisher.disconnect()
