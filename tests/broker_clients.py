"""A small MQTT client for the broker-security tests: connects with a login over TLS and reports what
the broker said (CONNACK, SUBACK codes, disconnects, messages)."""

from __future__ import annotations

import queue
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from schemas.mqtt_endpoint import MqttEndpoint


class Probe:
    def __init__(self, url: str, username: str | None, password: str | None, *, client_id: str | None = None) -> None:
        endpoint = MqttEndpoint.parse(url)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"probe-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311
        )
        self.client.reconnect_delay_set(min_delay=30, max_delay=60)  # a refused probe stays refused
        if username is not None:
            self.client.username_pw_set(username, password)
        context = endpoint.ssl_context()
        if context is not None:
            self.client.tls_set_context(context)
        self.connack: str | None = None
        self.disconnected = threading.Event()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._answered = threading.Event()
        self._suback: list[str] = []
        self._subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.connect_async(endpoint.host, endpoint.port, keepalive=30)
        self.client.loop_start()
        self._answered.wait(10)

    @property
    def accepted(self) -> bool:
        return self.connack == "Success"

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connack = str(reason)
        self._answered.set()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        self._suback = [str(reason) for reason in reasons]
        self._subscribed.set()

    def subscribe(self, *topics: str) -> list[bool]:
        """Subscribe at QoS 1; whether the broker granted each topic."""
        self._subscribed.clear()
        self.client.subscribe([(topic, 1) for topic in topics])
        assert self._subscribed.wait(10), "no SUBACK"
        return [code.startswith("Granted") for code in self._suback]

    def publish(self, topic: str, payload: bytes | str) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)

    def received(self, timeout: float) -> list[tuple[str, bytes]]:
        got = []
        try:
            while True:
                got.append(self.messages.get(timeout=timeout))
                timeout = 0.2
        except queue.Empty:
            return got

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
