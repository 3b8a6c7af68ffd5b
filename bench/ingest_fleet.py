"""The simulated fleet of the ingest benchmark: 10,000 devices, their payloads, and the publisher.

Deterministic so that the benchmark can check every message afterwards: message ``k`` comes from
device ``k % DEVICES`` with ``seq = k // DEVICES``. 8,000 water meters alternate a batch upload of two
interval readings (NB-IoT style) and a status heartbeat; 1,000 smoke alarms and 1,000 call buttons
send status heartbeats. Payloads average about 150 bytes. Device time ``ts`` is the publish time in
milliseconds, so the consumer can measure publish → commit latency from the payload alone.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import psycopg

DEVICES = 10_000
METERS = 8_000
SMOKE_ALARMS = 1_000
TOPIC_ROOT = "care/v1"
_SHANGHAI = timezone(timedelta(hours=8))
_WINDOW = 20_000


def device(index: int) -> tuple[str, str]:
    """(device_id, device_type) of device ``index``."""
    if index < METERS:
        return f"wm-{index:05d}", "water_meter"
    if index < METERS + SMOKE_ALARMS:
        return f"sa-{index:05d}", "smoke_alarm"
    return f"cb-{index:05d}", "call_button"


def provision(database_url: str) -> None:
    """2,500 households of four devices each (in practice: one meter, alarm or button per home)."""
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        with cur.copy("COPY households (household_id, name, district) FROM STDIN") as copy:
            for h in range(DEVICES // 4):
                copy.write_row((f"hh-{h:05d}", f"Bench home {h}", "Putuo"))
        with cur.copy("COPY devices (device_id, device_type, household_id, expected_interval_s) FROM STDIN") as copy:
            for i in range(DEVICES):
                device_id, device_type = device(i)
                copy.write_row((device_id, device_type, f"hh-{i // 4:05d}", 900))


def _is_batch(index: int) -> bool:
    return index % DEVICES < METERS and (index // DEVICES) % 2 == 0


def message(index: int, now: datetime) -> tuple[str, bytes]:
    """Topic and payload of message ``index`` sent at ``now``."""
    device_id, _ = device(index % DEVICES)
    seq = index // DEVICES
    ts = now.astimezone(_SHANGHAI).isoformat(timespec="milliseconds")
    if _is_batch(index):
        register = 1000.0 + seq * 2.5
        body: dict[str, Any] = {
            "ts": ts,
            "seq": seq,
            "readings": [
                {"ts": (now - timedelta(seconds=60)).isoformat(timespec="milliseconds"), "register_l": register},
                {"ts": (now - timedelta(seconds=30)).isoformat(timespec="milliseconds"), "register_l": register + 1.2},
            ],
        }
        return f"{TOPIC_ROOT}/dev/{device_id}/telemetry", json.dumps(body, separators=(",", ":")).encode()
    body = {
        "ts": ts,
        "seq": seq,
        "online": True,
        "battery_pct": 87 - seq % 50,
        "rssi_dbm": -71 - index % 30,
        "fw": "nb-2.3.1+build.20250110",
    }
    return f"{TOPIC_ROOT}/dev/{device_id}/status", json.dumps(body).encode()


def expected_rows(start: int, count: int) -> int:
    """Data rows (readings + status reports) messages ``start .. start+count-1`` produce."""
    return sum(2 if _is_batch(k) else 1 for k in range(start, start + count))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _publish_packet(topic: bytes, payload: bytes, mid: int) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big") + payload
    return b"\x32" + _varint(len(body)) + body  # PUBLISH, QoS 1


class RawPublisher:
    """A minimal MQTT 3.1.1 QoS 1 publisher on a plain socket.

    The devices of a real fleet cost the ingest host nothing; here they share its two cores. paho
    spends about as much CPU publishing a message as receiving one, which would halve what is left for
    the system under test, so the benchmark writes PUBLISH packets itself (several per ``sendall``) and
    counts PUBACKs (4 bytes each: the only packet the broker sends back after CONNACK, keep-alive off).
    """

    def __init__(self, host: str, port: int) -> None:
        self._sock = socket.create_connection((host, port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client_id = f"bench-pub-{uuid.uuid4().hex[:6]}".encode()
        variable = b"\x00\x04MQTT\x04\x02\x00\x00"  # MQTT 3.1.1, clean session, keep-alive off
        body = variable + len(client_id).to_bytes(2, "big") + client_id
        self._sock.sendall(b"\x10" + _varint(len(body)) + body)
        connack = self._sock.recv(4)
        if connack[:1] != b"\x20" or connack[3:4] != b"\x00":
            raise SystemExit(f"publisher: connection refused by the broker: {connack!r}")
        self.acked = 0
        self._mid = 0
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _read_acks(self) -> None:
        received = 0
        while True:
            data = self._sock.recv(65536)
            if not data:
                return
            received += len(data)
            self.acked = received // 4

    def send(self, messages: list[tuple[str, bytes]]) -> None:
        packets = []
        for topic, payload in messages:
            self._mid = self._mid % 65535 + 1
            packets.append(_publish_packet(topic.encode(), payload, self._mid))
        self._sock.sendall(b"".join(packets))

    def close(self) -> None:
        self._sock.sendall(b"\xe0\x00")  # DISCONNECT
        self._sock.close()


def publish_main(spec: dict[str, Any]) -> int:
    """Child process body: publish ``count`` messages from ``start`` at ``rate``/s (0: flat out).

    Waits for every PUBACK, then prints a JSON report as its last line.
    """
    parts = urlsplit(spec["url"])
    publisher = RawPublisher(parts.hostname or "127.0.0.1", parts.port or 1883)
    count, start, rate = int(spec["count"]), int(spec["start"]), float(spec["rate"])
    total_bytes = 0
    began, started_at = time.perf_counter(), time.time()
    sent = 0
    while sent < count:
        due = count if rate <= 0 else min(count, int((time.perf_counter() - began) * rate) + 1)
        # Bounded in flight: packet ids must not be reused while unacknowledged (65,535 of them).
        due = min(due, publisher.acked + _WINDOW, sent + 500)
        if sent >= due:
            time.sleep(0.0005)
            continue
        now = datetime.now(UTC)
        batch = [message(index, now) for index in range(start + sent, start + due)]
        total_bytes += sum(len(payload) for _, payload in batch)
        publisher.send(batch)
        sent = due
    published_s = time.perf_counter() - began
    deadline = time.monotonic() + 300
    while publisher.acked < count and time.monotonic() < deadline:
        time.sleep(0.01)
    if publisher.acked < count:
        raise SystemExit(f"publisher: only {publisher.acked} of {count} acknowledged by the broker")
    publisher.close()
    report = {
        "published": sent,
        "started_at": started_at,
        "seconds": published_s,
        "rate": sent / published_s if published_s else 0.0,
        "mean_bytes": total_bytes / max(1, sent),
    }
    print(json.dumps(report), flush=True)
    return 0
