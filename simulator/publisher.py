"""The one publishing shell: paho-mqtt, QoS 1, driven from the caller's thread.

Two modes:
- ``SharedPublisher`` (connection sharing, for load): a few connections carry every device's
  messages; a device always uses the same connection so its messages stay in order. This is how one
  process drives 100,000 devices. Last Wills cannot be per device on a shared connection, so the
  simulator publishes each device's "will" status itself when the device falls silent.
- ``DevicePublisher`` (one connection per device, for small fleets): each device connects with its own
  client id and registers its Last Will (retained ``status`` with ``online: false``). When the stream
  says a device falls silent, its socket is cut without DISCONNECT so the broker itself publishes the
  will; the device reconnects (with a fresh will) when it next has something to send.

No network thread: paho's ``loop_read``/``loop_write``/``loop_misc`` are called from ``poll`` with a
``selectors`` wait. That avoids the GIL ping-pong of ``loop_start`` and lets ``publish`` write straight
to the socket. Back-pressure: paho numbers QoS 1 messages with 16-bit ids, so more than 65,535
unacknowledged messages on one connection would collide; each connection is bounded to
``max_in_flight`` (default 20,000) unacknowledged messages and ``publish`` waits for PUBACKs past it.

Errors: ``PublishError`` (a connection refused or lost; ``client_id`` and ``reason`` attributes).
"""

from __future__ import annotations

import logging
import selectors
import socket
import ssl
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from schemas.mqtt_endpoint import MqttEndpoint
from simulator import payloads
from simulator.devices import SimDevice
from simulator.payloads import SimMessage
from simulator.wire import WireConnection

logger = logging.getLogger(__name__)
# The raw wire writes its buffer once it holds this much (and at every poll).
_FLUSH_BYTES = 256 * 1024


class PublishError(RuntimeError):
    """The broker refused or dropped a connection."""

    def __init__(self, client_id: str, reason: str) -> None:
        super().__init__(f"MQTT client {client_id}: {reason}")
        self.client_id = client_id
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """Where to publish: host, port, credentials and TLS settings."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    keepalive_s: int = 60

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> MqttTarget:
        """``mqtt://user:pass@host:port`` (``mqtts://`` for TLS; default ports 1883/8883; ``ca_file``,
        ``cert_file``, ``key_file`` query parameters as in ``schemas.mqtt_endpoint``)."""
        endpoint = MqttEndpoint.parse(url)
        target = cls(
            host=endpoint.host,
            port=endpoint.port,
            username=endpoint.username,
            password=endpoint.password,
            tls=endpoint.tls,
            ca_file=endpoint.ca_file,
            cert_file=endpoint.cert_file,
            key_file=endpoint.key_file,
        )
        return replace(target, **{k: v for k, v in overrides.items() if v is not None})

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``simulator.wire`` connections (None without TLS)."""
        if not (self.tls or self.ca_file):
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        if self.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def client(self, client_id: str) -> mqtt.Client:
        """A configured, unconnected paho client (MQTT 3.1.1, clean session)."""
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        # Unlimited inside paho: the bound is ours (see the module docstring).
        client.max_inflight_messages_set(0)
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls or self.ca_file:
            client.tls_set(
                ca_certs=self.ca_file,
                certfile=self.cert_file,
                keyfile=self.key_file,
                cert_reqs=ssl.CERT_NONE if self.tls_insecure else ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(self.tls_insecure)
        return client


class _Connection:
    """One paho client with our own in-flight accounting."""

    def __init__(self, client: mqtt.Client, client_id: str) -> None:
        self.client = client
        self.client_id = client_id
        self.sent = 0
        self.acked = 0
        self.connected = False
        self.failure: str | None = None
        client.on_publish = self._on_publish
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect

    def _on_publish(self, *_: Any) -> None:
        self.acked += 1

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.failure = f"connection refused: {reason}"
        else:
            self.connected = True

    def _on_disconnect(self, *_: Any) -> None:
        self.connected = False

    @property
    def in_flight(self) -> int:
        return self.sent - self.acked


def _write_later(*_: Any) -> None:
    """paho wants to write: ``_Loop.poll`` will (see ``_Loop.add``)."""


class _Loop:
    """Drives a set of connections' network I/O from the calling thread."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = min(max(1, max_in_flight), 60_000)
        self.connections: list[_Connection] = []
        self.selector = selectors.DefaultSelector()
        self._misc_at = 0.0
        self.published = 0

    def add(self, conn: _Connection, target: MqttTarget, timeout_s: float = 10.0) -> None:
        try:
            conn.client.connect(target.host, target.port, keepalive=target.keepalive_s)
        except (OSError, ssl.SSLError) as exc:
            raise PublishError(conn.client_id, f"cannot connect to {target.host}:{target.port}: {exc}") from exc
        sock = conn.client.socket()
        if sock is None:
            raise PublishError(conn.client_id, "no socket after connect")
        self.selector.register(sock, selectors.EVENT_READ, conn)
        self.connections.append(conn)
        deadline = time.monotonic() + timeout_s
        while not conn.connected:
            if conn.failure:
                raise PublishError(conn.client_id, conn.failure)
            if time.monotonic() > deadline:
                raise PublishError(conn.client_id, "no CONNACK in time")
            self.poll(0.05)
        # Public paho API: with a "socket register write" callback, ``publish`` only queues the packet
        # instead of calling ``loop_write`` itself, so ``poll`` writes many queued packets per call
        # (measured +20-40 % messages/s on one connection). Every path that must get bytes out polls.
        conn.client.on_socket_register_write = _write_later

    def drop(self, conn: _Connection) -> None:
        sock = conn.client.socket()
        if sock is not None:
            self.selector.unregister(sock)
        self.connections.remove(conn)

    def poll(self, timeout_s: float) -> None:
        """Read PUBACKs, flush pending writes, keep connections alive; wait at most ``timeout_s``."""
        for conn in self.connections:
            if conn.client.want_write():
                conn.client.loop_write()
        if self.connections:
            for key, _ in self.selector.select(timeout_s):
                conn = key.data
                rc = conn.client.loop_read(1000)
                if rc != mqtt.MQTT_ERR_SUCCESS and not conn.connected:
                    raise PublishError(conn.client_id, f"connection lost ({mqtt.error_string(rc)})")
        elif timeout_s > 0:
            time.sleep(timeout_s)
        now = time.monotonic()
        if now >= self._misc_at:
            self._misc_at = now + 1.0
            for conn in self.connections:
                conn.client.loop_misc()

    def publish(self, conn: _Connection, message: SimMessage) -> None:
        self.published += 1
        while conn.in_flight >= self.max_in_flight:
            self.poll(0.05)
        info = conn.client.publish(message.topic, message.payload, qos=1, retain=message.retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_QUEUE_SIZE):
            raise PublishError(conn.client_id, f"publish failed ({mqtt.error_string(info.rc)})")
        conn.sent += 1

    def drain(self, timeout_s: float) -> bool:
        """Wait until every message is acknowledged; False if ``timeout_s`` passed first."""
        deadline = time.monotonic() + timeout_s
        while any(c.in_flight for c in self.connections):
            if time.monotonic() > deadline:
                return False
            self.poll(0.05)
        return True

    def close(self) -> None:
        for conn in list(self.connections):
            conn.client.disconnect()
            conn.client.loop_write()
            self.drop(conn)
        self.selector.close()


class _WireLoop:
    """``SharedPublisher``'s connections on ``simulator.wire`` (see there for why), driven like ``_Loop``."""

    def __init__(self, target: MqttTarget, client_ids: list[str], max_in_flight: int) -> None:
        self.target = target
        self.max_in_flight = min(max(1, max_in_flight), 60_000)
        self.connections = [WireConnection(cid, keepalive_s=target.keepalive_s) for cid in client_ids]
        self.selector = selectors.DefaultSelector()
        self.published = 0
        self._misc_at = 0.0

    def open(self) -> None:
        tls = self.target.ssl_context()
        for conn in self.connections:
            try:
                conn.open(
                    self.target.host,
                    self.target.port,
                    username=self.target.username,
                    password=self.target.password,
                    tls=tls,
                )
            except (OSError, ConnectionError) as exc:
                where = f"{self.target.host}:{self.target.port}"
                raise PublishError(conn.client_id, f"cannot connect to {where}: {exc}") from exc
            self.selector.register(conn.fileno(), selectors.EVENT_READ, conn)

    def publish(self, conn: WireConnection, message: SimMessage) -> None:
        self.published += 1
        if conn.in_flight >= self.max_in_flight:
            while conn.in_flight >= self.max_in_flight:
                self.poll(0.05)
        conn.publish(message.topic, message.payload, retain=message.retain)
        if conn.buffered >= _FLUSH_BYTES:
            self._io(conn.flush, conn)

    def poll(self, timeout_s: float) -> None:
        """Write what is queued, count PUBACKs, keep connections alive; wait at most ``timeout_s``."""
        for conn in self.connections:
            self._io(conn.flush, conn)
        ready = [c for c in self.connections if c.pending()]
        if ready:
            timeout_s = 0.0
        for key, _ in self.selector.select(timeout_s):
            ready.append(key.data)
        for conn in ready:
            self._io(conn.read, conn)
        now = time.monotonic()
        if now >= self._misc_at:
            self._misc_at = now + 1.0
            for conn in self.connections:
                self._io(conn.keepalive, conn)

    @staticmethod
    def _io(operation: Callable[[], None], conn: WireConnection) -> None:
        try:
            operation()
        except (OSError, ConnectionError) as exc:
            raise PublishError(conn.client_id, f"connection lost ({exc})") from exc

    def drain(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while any(c.in_flight for c in self.connections):
            if time.monotonic() > deadline:
                return False
            self.poll(0.05)
        return True

    def close(self) -> None:
        for conn in self.connections:
            if conn.fileno() >= 0:
                self.selector.unregister(conn.fileno())
            conn.close()
        self.selector.close()


class SharedPublisher:
    """Connection sharing: ``connections`` clients named ``{client_id_prefix}-{n}`` carry all devices.

    ``wire="raw"`` (default) speaks MQTT through ``simulator.wire`` (about three times less CPU per
    message than paho, see there); ``wire="paho"`` uses paho-mqtt like ``DevicePublisher``.
    """

    def __init__(
        self,
        target: MqttTarget,
        *,
        client_id_prefix: str,
        connections: int = 1,
        max_in_flight: int = 20_000,
        wire: str = "raw",
    ) -> None:
        if wire not in ("raw", "paho"):
            raise ValueError(f"wire must be 'raw' or 'paho', not {wire!r}")
        self.target = target
        client_ids = [f"{client_id_prefix}-{n}" for n in range(connections)]
        self._wire: _WireLoop | None = None
        self._paho: _Loop | None = None
        self._conns: list[Any]
        if wire == "raw":
            self._wire = _WireLoop(target, client_ids, max_in_flight)
            self._conns = list(self._wire.connections)
        else:
            self._paho = _Loop(max_in_flight)
            self._conns = [_Connection(target.client(cid), cid) for cid in client_ids]
        self._route: dict[str, Any] = {}

    def open(self) -> None:
        if self._wire is not None:
            self._wire.open()
        else:
            assert self._paho is not None  # noqa: S101 - one of the two is set in __init__
            for conn in self._conns:
                self._paho.add(conn, self.target)
        logger.info("connected %d shared connection(s) to %s:%d", len(self._conns), self.target.host, self.target.port)

    def publish(self, message: SimMessage) -> None:
        conn = self._route.get(message.topic)
        if conn is None:
            # All topics of a device go through one connection, so its messages keep their order.
            device = message.device_id
            conn = self._conns[zlib.crc32(device.encode()) % len(self._conns)]
            self._route[message.topic] = conn
        if self._wire is not None:
            self._wire.publish(conn, message)
        else:
            assert self._paho is not None  # noqa: S101
            self._paho.publish(conn, message)

    @property
    def published(self) -> int:
        return self._wire.published if self._wire is not None else self._loop().published

    @property
    def acked(self) -> int:
        """Messages the broker has acknowledged (PUBACK) so far."""
        return sum(int(c.acked) for c in self._conns)

    def _loop(self) -> _Loop | _WireLoop:
        loop = self._wire or self._paho
        assert loop is not None  # noqa: S101
        return loop

    def poll(self, timeout_s: float) -> None:
        self._loop().poll(timeout_s)

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait until every message is acknowledged; False if ``timeout_s`` passed first."""
        return self._loop().drain(timeout_s)

    def close(self, drain_s: float = 30.0) -> bool:
        loop = self._loop()
        drained = loop.drain(drain_s)
        loop.close()
        return drained


class DevicePublisher:
    """One connection per device, with its client id and Last Will (small fleets: up to a few thousand)."""

    def __init__(self, target: MqttTarget, devices: Iterable[SimDevice], *, topic_root: str = "care/v1") -> None:
        self.target = target
        self.loop = _Loop(20_000)
        self.topic_root = topic_root
        self.devices = {d.device_id: d for d in devices}
        self._conns: dict[str, _Connection] = {}

    def open(self) -> None:
        """Devices connect lazily, on their first message; nothing to do up front."""

    def _connect(self, device: SimDevice, message: SimMessage) -> _Connection:
        client = self.target.client(device.client_id)
        # The will is fixed at connect time, so it carries the connect time and a seq the device skips.
        will = payloads.status(
            message.at_ms, _seq_of(message.payload) - 1, online=False, epoch=device.meter_mode is not None
        )
        client.will_set(device.topic(self.topic_root, "status"), will, qos=1, retain=True)
        conn = _Connection(client, device.client_id)
        self.loop.add(conn, self.target)
        self._conns[device.device_id] = conn
        return conn

    def publish(self, message: SimMessage) -> None:
        device = self.devices.get(message.device_id)
        if device is None:
            # A fault aimed at an unknown device or a bad topic: send it on a connection we have.
            conn = next(iter(self._conns.values()), None)
            if conn is not None:
                self.loop.publish(conn, message)
            return
        conn = self._conns.get(device.device_id)
        if message.kind == "will":
            if conn is not None:
                self._cut(conn)
                del self._conns[device.device_id]
            return
        if conn is None or not conn.connected:
            conn = self._connect(device, message)
        self.loop.publish(conn, message)

    def _cut(self, conn: _Connection) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the Last Will."""
        self.loop.drain(5.0)
        sock = conn.client.socket()
        self.loop.drop(conn)
        if isinstance(sock, socket.socket | ssl.SSLSocket):
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @property
    def published(self) -> int:
        return self.loop.published

    def poll(self, timeout_s: float) -> None:
        self.loop.poll(timeout_s)

    def close(self, drain_s: float = 30.0) -> bool:
        drained = self.loop.drain(drain_s)
        self.loop.close()
        return drained


def _seq_of(payload: bytes) -> int:
    start = payload.find(b'"seq":')
    if start < 0:
        return 0
    digits = payload[start + 6 : start + 17].split(b",")[0].split(b"}")[0]
    return int(digits) if digits.isdigit() else 0
