"""The MQTT edge of the ingest: a paho-mqtt subscriber with manual acknowledgement.

paho runs the network loop in its own thread and hands each message to ``on_message``, which puts it in
a bounded inbox. When the writer falls behind (or PostgreSQL is down) the inbox fills, ``put`` blocks
paho's thread, paho stops reading the socket and the broker keeps the messages: back-pressure instead of
unbounded memory. A message is acknowledged (PUBACK) only by ``ack`` after the writer committed it, so a
worker killed at any point loses nothing: the persistent session (MQTT 5, ``clean_start=False`` with a
session expiry) makes the broker redeliver every unacknowledged message.

Packet ids are only valid on the connection that received them, so every inbound message carries the
connection generation, and acks for an older generation are skipped: the broker redelivers those, and
storage deduplicates.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.inbox import Inbox

log = logging.getLogger(__name__)

SESSION_EXPIRY_S = 7 * 24 * 3600


class Inbound(NamedTuple):
    """One received message. A named tuple: immutable and about three times cheaper to create than a
    frozen dataclass, which matters at one per message on paho's thread."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    generation: int


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    # "5" (default: session expiry, receive maximum, shared subscriptions) or "3.1.1" for brokers
    # that only speak 3.1.1 (the embedded amqtt fallback), where clean_session=False keeps the session.
    protocol: str = "5"

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://[user:pass@]host[:port][?protocol=3.1.1]`` or ``mqtts://...`` (TLS, port 8883)."""
        parts = urlsplit(url)
        if parts.scheme not in {"mqtt", "mqtts", "tcp", "ssl"}:
            raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r}")
        tls = parts.scheme in {"mqtts", "ssl"}
        protocol = parse_qs(parts.query).get("protocol", ["5"])[0]
        if protocol not in {"5", "3.1.1"}:
            raise ValueError(f"unsupported MQTT protocol {protocol!r}: use 5 or 3.1.1")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=parts.username,
            password=parts.password,
            tls=tls,
            protocol=protocol,
        )


# Packets read per wake-up of paho's network thread (see ``_DrainingClient``).
_READ_BURST = 256
_PUBACK_COMMAND = 0x40
_PUBACK = struct.Struct("!BBH")


class _DrainingClient(mqtt.Client):
    """paho's client with two hot-path changes (paho is pinned ``<3``; every service test runs them).

    - ``loop_read`` reads up to ``_READ_BURST`` packets per ``select()`` instead of one. paho 2.x
      reads as many packets as it has messages in flight *outbound*, so a pure subscriber makes one
      pass through its loop (a ``select()`` and the loop's bookkeeping) per message: about a quarter
      of the network thread's time under a backlog (py-spy, docs/ingest.md). The override is paho's
      own ``loop_read`` with a larger bound, stopping at the first would-block as the original does.
    - ``ack_many`` queues the PUBACKs of a whole batch as one write. ``ack`` queues one packet per
      message, each waking the network thread and costing a ``send()``.
    - ``_handle_on_message`` calls ``on_message`` directly. paho first walks its trie of per-topic
      callbacks (``message_callback_add``, which carewatch never uses) for every message: about a
      fifth of the network thread's time (py-spy ``--gil``). Exceptions are handled as paho does.
    """

    def _handle_on_message(self, message: mqtt.MQTTMessage) -> None:
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception as err:
                self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                if not self.suppress_exceptions:
                    raise

    def ack_many(self, mids: list[int]) -> None:
        """Send a QoS 1 PUBACK for each of ``mids`` (in order), as one packet-queue entry."""
        if mids:
            pack = _PUBACK.pack
            # Queued like paho's own PUBACK (command PUBACK, fixed header + packet id), only several
            # of them back to back; _packet_write sends the bytes and has nothing to do after a PUBACK.
            self._packet_queue(_PUBACK_COMMAND, b"".join(pack(_PUBACK_COMMAND, 2, mid) for mid in mids), 0, 0)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        for _ in range(max(max_packets, _READ_BURST)):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return MQTTErrorCode.MQTT_ERR_SUCCESS


class MqttSource:
    """Subscribes to ``{topic_root}/dev/+/+`` at QoS 1 and feeds a bounded inbox."""

    def __init__(
        self,
        *,
        url: str,
        client_id: str,
        topic_root: str,
        inbox: Inbox[Inbound],
        share_group: str = "",
        filters: Sequence[str] = ("+/+",),
    ) -> None:
        self._address = BrokerAddress.parse(url)
        self._inbox = inbox
        topics = [f"{topic_root}/dev/{topic_filter}" for topic_filter in filters]
        self._subscriptions = [f"$share/{share_group}/{topic}" if share_group else topic for topic in topics]
        self._subscription = ", ".join(self._subscriptions)
        self._generation = 0
        self._stopping = False
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._v5 = self._address.protocol == "5"
        self._client = _DrainingClient(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else False,
            manual_ack=True,
        )
        if self._address.username is not None:
            self._client.username_pw_set(self._address.username, self._address.password)
        if self._address.tls:
            self._client.tls_set()
        # Let the broker keep many unacknowledged messages in flight to us while a batch commits.
        self._client.max_inflight_messages_set(65535)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    @property
    def connected(self) -> threading.Event:
        return self._connected

    def start(self) -> None:
        if self._v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
            properties.ReceiveMaximum = 65535
            self._client.connect_async(
                self._address.host, self._address.port, keepalive=60, clean_start=False, properties=properties
            )
        else:
            self._client.connect_async(self._address.host, self._address.port, keepalive=60)
        self._client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()

    def ack(self, messages: list[Inbound]) -> int:
        """Acknowledge committed messages still on the current connection, in order; return how many."""
        with self._lock:
            generation = self._generation
        mids = [m.mid for m in messages if m.qos == 1 and m.generation == generation]
        self._client.ack_many(mids)
        # QoS 2 is never granted (we subscribe at QoS 1), but acknowledge it properly if a broker does.
        for message in messages:
            if message.qos == 2 and message.generation == generation:
                self._client.ack(message.mid, message.qos)
                mids.append(message.mid)
        return len(mids)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        with self._lock:
            self._generation += 1
        log.info(
            "MQTT connected to %s:%s (session present: %s), subscribing %s",
            self._address.host,
            self._address.port,
            flags.session_present,
            self._subscription,
        )
        # Subscribing again to a subscription the session already has makes the broker resend every
        # matching retained message: every device's status, a whole fleet on each reconnect. MQTT 5
        # retain handling 1 sends them only for a new subscription (and a changed topic root or share
        # group still takes effect); MQTT 3.1.1 cannot say that, so there the kept session is trusted.
        if self._v5:
            client.subscribe([(topic, SubscribeOptions(qos=1, retainHandling=1)) for topic in self._subscriptions])
        elif flags.session_present:
            self._connected.set()
        else:
            client.subscribe([(topic, 1) for topic in self._subscriptions])

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        # "Connected" means subscribed: a message published after this reaches us even on a first start.
        if any(code.is_failure for code in reason_codes):
            log.error("MQTT subscription to %s refused: %s", self._subscription, reason_codes)
            return
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        if self._stopping:
            log.info("MQTT disconnected (%s)", reason_code)
        else:
            log.warning("MQTT disconnected (%s); paho reconnects with backoff", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            # Brokers should refuse such topics; if one passes, keep it as evidence and reject it later.
            topic = message._topic.decode("utf-8", errors="replace")
        # Blocking here when the inbox is full is the back-pressure: see the module docstring.
        self._inbox.put(
            Inbound(
                topic=topic,
                payload=bytes(message.payload),
                mid=message.mid,
                qos=message.qos,
                received_at=datetime.now(UTC),
                generation=self._generation,
            )
        )
