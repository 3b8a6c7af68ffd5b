"""Helpers shared by the service tests: a raw MQTT publisher and a pipeline under test."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from carewatch.embedded import free_port
from carewatch.runtime import Pipeline
from carewatch.settings import Settings
from ingest.mqtt_source import BrokerAddress


def publish_raw(mqtt_url: str, messages: Iterable[tuple[str, bytes | str]], *, qos: int = 1) -> int:
    """Publish like ``mosquitto_pub`` does: raw bytes on a topic, QoS 1, wait for every PUBACK."""
    address = BrokerAddress.parse(mqtt_url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311
    )
    client.connect(address.host, address.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=30)
        return len(infos)
    finally:
        client.disconnect()
        client.loop_stop()


def payload(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test with a clear message if not."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def pipeline_settings(topic_root: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "topic_root": topic_root,
        "mqtt_client_id": f"test-ingest-{uuid.uuid4().hex[:8]}",
        "api_port": free_port(),
        "detector_tick_s": 0.5,
        "dispatch_poll_s": 0.1,
        "ingest_flush_ms": 20,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_pipeline(settings: Settings, mqtt_url: str, database_url: str, **kwargs: Any) -> Iterator[Pipeline]:
    pipeline = Pipeline(settings=settings, mqtt_url=mqtt_url, database_url=database_url, **kwargs)
    pipeline.start()
    try:
        yield pipeline
    finally:
        pipeline.stop()
