"""A minimal MQTT 3.1.1 QoS 1 publisher on a plain socket, for the load mode (``SharedPublisher``).

Why not paho here: profiling the shared-connection load mode showed paho spending most of a message's
CPU on the *acknowledgement* (per PUBACK: three ``recv`` calls, a ``Properties`` and a ``ReasonCode``
object, a ``MQTTMessageInfo`` with its condition variable, callback locks), and one ``send`` per
PUBLISH. None of that can be batched through paho's public API. A connection that only ever publishes
needs very little of MQTT, so this module speaks it directly:

- ``CONNECT`` (clean session, keep-alive, optional username/password) and ``CONNACK``;
- ``PUBLISH`` QoS 1 (retain as asked), encoded into one ``bytearray`` and written with one ``send``
  per ``flush`` (hundreds of messages per system call);
- ``PUBACK``s read in bulk (one ``recv`` of up to 256 KiB) and *counted*: a broker acknowledges one
  connection's QoS 1 messages in order, and the caller bounds the unacknowledged messages well below
  the 65,535 packet ids, so the count is all the bookkeeping needed;
- ``PINGREQ`` when nothing was sent for half the keep-alive, ``DISCONNECT`` on close.

No Last Will, no subscriptions, no reconnection: a lost connection raises ``ConnectionError`` (the
publisher turns it into ``PublishError``). Per-device connections with Last Wills stay on paho
(``DevicePublisher``). TLS works by wrapping the socket before ``CONNECT``.

The socket is blocking for writes (a ``send`` that cannot complete waits: that is the back-pressure)
and reads only happen when the selector says it is readable (or TLS has buffered bytes), so a read
never blocks. Writes cannot deadlock against the broker: at most ``max_in_flight`` PUBACKs (4 bytes
each, 80 KB at the default 20,000) are ever owed to us, which the kernel's receive buffer holds.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time

CONNACK = 0x20
PUBACK = 0x40
PINGRESP = 0xD0
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"
_PROTOCOL = b"\x00\x04MQTT\x04"  # protocol name and level 4 (3.1.1)
_H = struct.Struct(">H")


def _varint(n: int) -> bytes:
    """MQTT "remaining length" encoding (1-4 bytes)."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return _H.pack(len(data)) + data


def connect_packet(client_id: str, keepalive_s: int, username: str | None, password: str | None) -> bytes:
    flags = 0x02  # clean session
    body = bytearray(_utf8(client_id))
    if username is not None:
        flags |= 0x80
        body += _utf8(username)
        if password is not None:
            flags |= 0x40
            body += _utf8(password)
    variable = _PROTOCOL + bytes([flags]) + _H.pack(keepalive_s)
    rest = variable + bytes(body)
    return b"\x10" + _varint(len(rest)) + rest


class WireConnection:
    """One publishing connection (see the module docstring); ``sent``/``acked`` count QoS 1 messages."""

    def __init__(self, client_id: str, *, keepalive_s: int = 60) -> None:
        self.client_id = client_id
        self.keepalive_s = keepalive_s
        self.sock: socket.socket | None = None
        self.sent = 0
        self.acked = 0
        self._out = bytearray()
        self._in = bytearray()
        self._mid = 0
        self._last_write = time.monotonic()
        self._topics: dict[str, bytes] = {}

    @property
    def in_flight(self) -> int:
        return self.sent - self.acked

    def open(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """Connect and wait for a successful ``CONNACK`` (``ConnectionError`` otherwise)."""
        raw = socket.create_connection((host, port), timeout=timeout_s)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock: socket.socket = tls.wrap_socket(raw, server_hostname=host) if tls is not None else raw
        sock.sendall(connect_packet(self.client_id, self.keepalive_s, username, password))
        deadline = time.monotonic() + timeout_s
        while len(self._in) < 4:
            if time.monotonic() > deadline:
                raise ConnectionError("no CONNACK in time")
            chunk = sock.recv(4 - len(self._in))
            if not chunk:
                raise ConnectionError("connection closed before CONNACK")
            self._in += chunk
        if self._in[0] != CONNACK or self._in[3] != 0:
            raise ConnectionError(f"connection refused (CONNACK return code {self._in[3]})")
        del self._in[:4]
        sock.settimeout(None)  # blocking writes: back-pressure
        self.sock = sock
        self._last_write = time.monotonic()

    @property
    def buffered(self) -> int:
        """Bytes queued and not written yet."""
        return len(self._out)

    def fileno(self) -> int:
        return self.sock.fileno() if self.sock is not None else -1

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Queue one QoS 1 ``PUBLISH``; ``flush`` writes what is queued."""
        encoded = self._topics.get(topic)
        if encoded is None:
            encoded = _utf8(topic)
            if len(self._topics) < 200_000:
                self._topics[topic] = encoded
        self._mid = self._mid % 0xFFFF + 1
        out = self._out
        out.append(0x33 if retain else 0x32)
        out += _varint(len(encoded) + 2 + len(payload))
        out += encoded
        out += _H.pack(self._mid)
        out += payload
        self.sent += 1

    def flush(self) -> None:
        """Write everything queued (blocks while the socket buffer is full)."""
        if self._out and self.sock is not None:
            self.sock.sendall(self._out)
            self._out.clear()
            self._last_write = time.monotonic()

    def pending(self) -> bool:
        """Bytes already received by TLS but not read yet (the selector cannot see them)."""
        sock = self.sock
        return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0

    def read(self) -> None:
        """Read what the broker sent (call when readable) and count the acknowledgements."""
        if self.sock is None:
            raise ConnectionError("not connected")
        chunk = self.sock.recv(262_144)
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        buf = self._in
        buf += chunk
        i, n = 0, len(buf)
        while n - i >= 2:
            kind = buf[i] & 0xF0
            length = buf[i + 1]
            if length & 0x80:  # never for what a broker sends a publisher; refuse rather than misparse
                raise ConnectionError(f"unexpected packet 0x{buf[i]:02x} from the broker")
            if n - i < 2 + length:
                break
            if kind == PUBACK:
                self.acked += 1
            elif kind != PINGRESP:
                raise ConnectionError(f"unexpected packet 0x{buf[i]:02x} from the broker")
            i += 2 + length
        del buf[:i]

    def keepalive(self) -> None:
        """Ping when nothing was written for half the keep-alive period."""
        if self.sock is not None and time.monotonic() - self._last_write > self.keepalive_s / 2:
            self._out += _PINGREQ
            self.flush()

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        try:
            if self._out:
                sock.sendall(self._out)
            sock.sendall(_DISCONNECT)
        except OSError:
            pass
        finally:
            self._out.clear()
            sock.close()
