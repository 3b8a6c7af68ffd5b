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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.inbox import Inbox
from schemas.mqtt_endpoint import MqttEndpoint

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


# The broker address, login and TLS files of an ``mqtt://`` / ``mqtts://`` URL (schemas.mqtt_endpoint).
BrokerAddress = MqttEndpoint


# Bytes taken from the socket per ``recv`` (see ``_DrainingClient``): a few hundred device messages.
_RECV_CHUNK = 64 * 1024
_PUBACK_COMMAND = 0x40
_PUBACK = struct.Struct("!BBH")
# Called on paho's network thread for each QoS 1 PUBLISH: (topic, payload, packet id).
PublishHandler = Callable[[str, bytes, int], None]


class _DrainingClient(mqtt.Client):
    """paho's client with hot-path changes for a QoS 1 subscriber (paho is pinned ``>=2.2,<2.3``: these
    use its private packet-reading hooks, and every service test runs them).

    - Buffered reads. paho reads each packet with three or four ``recv`` calls (the command byte, each
      remaining-length byte, the rest). Here ``_sock_recv`` serves them from one ``recv`` of up to
      ``_RECV_CHUNK`` bytes. Each ``recv`` also releases and re-takes the GIL, and with the writer
      threads busy every re-take waits its turn: under load that, not the system call, was the cost.
      A pass of ``loop_read`` refills the buffer once and then reports "would block" when the buffer is
      empty, so it never returns with bytes left in the buffer (``select()`` cannot see them) and still
      gives paho's loop a turn to send PUBACKs between chunks. paho's packet reader keeps partial
      packets across passes, so a packet split over two chunks is simply finished in the next pass.
    - A direct PUBLISH path. paho decodes every PUBLISH into an ``MQTTMessage`` with an MQTT 5
      ``Properties`` object (building its name tables each time) and walks its per-topic callback
      trie: together about half the network thread's time (py-spy ``--gil``). A QoS 1 PUBLISH without
      properties, the only kind devices send, goes straight to ``on_publish_fast``; anything else
      (properties, QoS 0 or 2, no fast handler) takes paho's own path.
    - ``ack_many`` queues the PUBACKs of a whole batch as one write. ``ack`` queues one packet per
      message, each waking the network thread and costing a ``send()``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_publish_fast: PublishHandler | None = None
        self._rx = b""
        self._rx_pos = 0
        self._refills = 0

    # Reading ---------------------------------------------------------------------------------------
    def _sock_recv(self, bufsize: int) -> bytes:
        pos = self._rx_pos
        if pos >= len(self._rx):
            if self._refills <= 0:
                raise BlockingIOError  # this pass is over; select() wakes the next one
            self._refills -= 1
            data = super()._sock_recv(max(bufsize, _RECV_CHUNK))
            if len(data) <= bufsize:  # also b"": the connection closed
                self._rx, self._rx_pos = b"", 0
                return data
            self._rx, pos = data, 0
        end = pos + bufsize
        self._rx_pos = end
        return self._rx[pos:end]

    def _sock_close(self) -> None:
        # Bytes of a closed connection must never be read as the start of the next one.
        self._rx, self._rx_pos = b"", 0
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        self._refills = 1
        while True:
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_publish(self) -> MQTTErrorCode:
        handler = self.on_publish_fast
        header: int = self._in_packet["command"]
        packet: bytes | bytearray = self._in_packet["packet"]
        # PUBLISH variable header: topic length (2), topic, packet id (2, QoS > 0), then in MQTT 5 the
        # property length (a variable byte integer; 0 is one zero byte) and the properties.
        end = 2 + (packet[0] << 8 | packet[1]) if len(packet) >= 2 else 0
        v5 = self._protocol == mqtt.MQTTv5
        start = end + (3 if v5 else 2)
        if (
            handler is None
            or not self._manual_ack
            or header & 0x06 != 0x02  # QoS 1 only
            or end <= 2  # an empty topic (MQTT 5 topic alias) or a short packet
            or len(packet) < start
            or (v5 and packet[end + 2] != 0)
        ):
            return super()._handle_publish()
        try:
            topic = bytes(packet[2:end]).decode("utf-8")
        except UnicodeDecodeError:
            # Brokers should refuse such topics; if one passes, keep it as evidence and reject it later.
            topic = bytes(packet[2:end]).decode("utf-8", errors="replace")
        with self._in_callback_mutex:
            handler(topic, bytes(packet[start:]), packet[end] << 8 | packet[end + 1])
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    # Acknowledging ---------------------------------------------------------------------------------
    def ack_many(self, mids: list[int]) -> None:
        """Send a QoS 1 PUBACK for each of ``mids`` (in order), as one packet-queue entry."""
        if mids:
            pack = _PUBACK.pack
            # Queued like paho's own PUBACK (command PUBACK, fixed header + packet id), only several
            # of them back to back; _packet_write sends the bytes and has nothing to do after a PUBACK.
            self._packet_queue(_PUBACK_COMMAND, b"".join(pack(_PUBACK_COMMAND, 2, mid) for mid in mids), 0, 0)


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
        context = self._address.ssl_context()
        if context is not None:
            self._client.tls_set_context(context)
        # Let the broker keep many unacknowledged messages in flight to us while a batch commits.
        self._client.max_inflight_messages_set(65535)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_publish_fast = self._on_publish

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

    def _on_publish(self, topic: str, payload: bytes, mid: int) -> None:
        # Blocking here when the inbox is full is the back-pressure: see the module docstring.
        self._inbox.put(Inbound(topic, payload, mid, 1, datetime.now(UTC), self._generation))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Messages paho decodes itself (with MQTT 5 properties, or QoS 2): rare."""
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = message._topic.decode("utf-8", errors="replace")
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
