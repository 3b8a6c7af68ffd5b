"""The publishing shell: URL parsing, pacing, and (services) a real broker round trip."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulator.pacing import Pacer, drive
from simulator.payloads import SimMessage
from simulator.publisher import DevicePublisher, MqttTarget, SharedPublisher
from simulator.scenarios import ScenarioKind, ScenarioRequest
from tests.simulator.helpers import small_fleet


def test_mqtt_url_forms() -> None:
    target = MqttTarget.from_url("mqtt://alice:s%40cret@broker.example:1884")
    assert (target.host, target.port, target.username, target.password, target.tls) == (
        "broker.example",
        1884,
        "alice",
        "s@cret",
        False,
    )
    secure = MqttTarget.from_url("mqtts://broker.example", ca_file="/etc/ca.pem")
    assert (secure.port, secure.tls, secure.ca_file) == (8883, True, "/etc/ca.pem")
    assert MqttTarget.from_url("127.0.0.1:1883").host == "127.0.0.1"
    with pytest.raises(ValueError, match="scheme"):
        MqttTarget.from_url("http://x")


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_backfills_then_follows_device_time() -> None:
    clock = _Clock()
    pacer = Pacer(60.0, live_from_ms=1_000_000, clock=clock)
    assert pacer.wait_s(500_000) == 0.0  # backfill: at once
    assert pacer.wait_s(1_000_000) == 0.0
    assert pacer.wait_s(1_060_000) == pytest.approx(1.0)  # 60 s simulated at 60x
    clock.now += 0.25
    assert pacer.wait_s(1_060_000) == pytest.approx(0.75)
    assert Pacer(None).wait_s(10**12) == 0.0


class _Recorder:
    def __init__(self) -> None:
        self.published: list[SimMessage] = []

    def publish(self, message: SimMessage) -> None:
        self.published.append(message)

    def poll(self, timeout_s: float) -> None:
        time.sleep(min(timeout_s, 0.001))


def test_drive_publishes_in_order() -> None:
    sim = small_fleet(homes=2).simulate(timedelta(hours=1))
    sink = _Recorder()
    count = drive(sim, sink, Pacer(None))
    assert count == len(sink.published) > 0


def _subscribe(url: str, topic: str) -> tuple[mqtt.Client, list[mqtt.MQTTMessage], threading.Event]:
    target = MqttTarget.from_url(url)
    received: list[mqtt.MQTTMessage] = []
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_message = lambda _c, _u, msg: received.append(msg)
    client.on_subscribe = lambda *_: ready.set()
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect(target.host, target.port)
    client.loop_start()
    assert ready.wait(10)
    return client, received, ready


@pytest.mark.services
@pytest.mark.parametrize("mode", ["shared", "shared-paho", "device"])
def test_publish_to_broker(mqtt_url: str, topic_root: str, mode: str) -> None:
    fleet = small_fleet(homes=3)
    offline = ScenarioRequest(ScenarioKind.DEVICE_OFFLINE, home=0, at="1h", duration_ms=3_600_000, device="cb")
    sim = fleet.simulate(timedelta(hours=4), scenarios=[offline], topic_root=topic_root)
    subscriber, received, _ = _subscribe(mqtt_url, f"{topic_root}/#")
    target = MqttTarget.from_url(mqtt_url)
    publisher = (
        SharedPublisher(
            target,
            client_id_prefix=f"simtest-{topic_root.split('/')[1]}",
            wire="paho" if mode == "shared-paho" else "raw",
        )
        if mode.startswith("shared")
        else DevicePublisher(target, sim.devices, topic_root=topic_root)
    )
    publisher.open()
    try:
        sent = drive(sim, publisher, Pacer(None))
    finally:
        assert publisher.close(10.0)
    expected = sent - (1 if mode == "device" else 0)  # in device mode the broker sends the will itself
    deadline = time.monotonic() + 10
    while len(received) < expected + (1 if mode == "device" else 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    wills = [m for m in received if m.topic.endswith("-cb/status") and json.loads(m.payload)["online"] is False]
    retained_topics = {m.topic for m in received if m.topic.endswith("/status")}
    # Clear the retained status messages this test left on the broker.
    for topic in retained_topics:
        subscriber.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    subscriber.loop_stop()
    subscriber.disconnect()
    assert len(received) >= expected
    assert len(wills) == 1
