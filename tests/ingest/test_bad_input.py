"""Every bad-input class of the ingest issue ends as a reject row with its reason, through the real
broker and database, and never affects the good message published right after it on the same device.
Also: duplicates and replays are stored once; late, out-of-order batches are stored in device-time
order with the receive time kept; a wrong device clock is flagged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg import errors

import ingest.writer
from ingest.decode import DecodePolicy
from ingest.service import IngestConfig, IngestService
from schemas.intake import Accepted
from tests.ingest.helpers import provision
from tests.support import publish_raw, wait_until

# Raised from the protocol's 16 KiB so that a batch of 1,441 readings fits and is refused for its
# length: at 16 KiB it is always refused as oversized first (see docs/ingest.md).
PAYLOAD_LIMIT = 64 * 1024
NOW = datetime.now(UTC)


def _body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def _good(seq: int) -> bytes:
    return _body(ts=NOW.isoformat(), seq=seq, register_l=10.0)


@dataclass(frozen=True)
class Case:
    reason: str
    device_type: str
    channel: str
    payload: bytes
    repeat: int = 1


CASES: dict[str, Case] = {
    "invalid_json": Case("invalid_json", "water_meter", "telemetry", b'{"ts": 1, "seq": 1,'),
    "not_object": Case("not_object", "water_meter", "telemetry", b"[1, 2, 3]"),
    "not_utf8": Case("not_utf8", "water_meter", "telemetry", b'{"ts": "\xff\xfe"}'),
    "wrong_type": Case("wrong_type", "water_meter", "telemetry", _body(ts=NOW.isoformat(), seq="7", register_l=1.0)),
    "missing_field": Case("missing_field", "water_meter", "telemetry", _body(ts=NOW.isoformat(), register_l=1.0)),
    "invalid_value": Case("invalid_value", "water_meter", "telemetry", _body(ts=NOW.isoformat(), seq=1, register_l=-5)),
    "shape_mismatch_event": Case(
        "shape_mismatch", "smoke_alarm", "event", _body(ts=NOW.isoformat(), seq=1, event="sos")
    ),
    "shape_mismatch_channel": Case("shape_mismatch", "call_button", "telemetry", _body(ts=NOW.isoformat(), seq=1)),
    "bad_topic": Case("bad_topic", "water_meter", "readings", _good(1)),
    "oversized": Case("oversized", "water_meter", "telemetry", b'{"pad": "' + b"x" * PAYLOAD_LIMIT + b'"}'),
    "batch_too_large": Case(
        "batch_too_large",
        "water_meter",
        "telemetry",
        json.dumps(
            {
                "ts": int(NOW.timestamp() * 1000),
                "seq": 1,
                "readings": [{"ts": int(NOW.timestamp() * 1000) - k * 1000, "register_l": 1} for k in range(1441)],
            },
            separators=(",", ":"),
        ).encode(),
    ),
    "non_finite": Case("non_finite", "water_meter", "telemetry", b'{"ts": 1, "seq": 1, "register_l": NaN}'),
    "too_old": Case(
        "timestamp_out_of_range",
        "water_meter",
        "telemetry",
        _body(ts=(NOW - timedelta(days=30)).isoformat(), seq=1, register_l=1.0),
    ),
    "too_new": Case(
        "timestamp_out_of_range",
        "water_meter",
        "telemetry",
        _body(ts=(NOW + timedelta(days=3)).isoformat(), seq=1, register_l=1.0),
    ),
    "rate_limited": Case("rate_limited", "water_meter", "telemetry", b"", repeat=40),
}


@dataclass
class Harness:
    topic_root: str
    database_url: str
    service: IngestService
    committed: list[Accepted]

    def topic(self, device_id: str, channel: str) -> str:
        return f"{self.topic_root}/dev/{device_id}/{channel}"

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def harness(mqtt_url: str, database_url: str) -> Iterator[Harness]:
    topic_root = f"test/{uuid.uuid4().hex[:8]}/care/v1"
    devices = {f"bad-{name}": case.device_type for name, case in CASES.items()}
    devices |= {
        "dup-meter": "water_meter",
        "late-meter": "water_meter",
        "skew-button": "call_button",
        "poison-meter": "water_meter",
        "bystander-meter": "water_meter",
    }
    provision(database_url, "hh-bad", devices)
    committed: list[Accepted] = []
    config = IngestConfig(
        client_id=f"test-bad-{uuid.uuid4().hex[:6]}",
        policy=DecodePolicy(topic_root=topic_root, max_payload_bytes=PAYLOAD_LIMIT),
        flush_ms=20,
        device_rate_per_s=1.0,
        device_rate_burst=20,
    )
    service = IngestService(
        config=config,
        mqtt_url=mqtt_url,
        database_url=database_url,
        on_committed=committed.extend,
        registry=CollectorRegistry(),
    )
    service.start()
    harness = Harness(topic_root, database_url, service, committed)
    messages: list[tuple[str, bytes]] = []
    for name, case in CASES.items():
        device_id = f"bad-{name}"
        if name == "rate_limited":  # a flood: more than the burst of 20 at once
            messages += [(harness.topic(device_id, "telemetry"), _good(100 + k)) for k in range(case.repeat)]
            continue
        messages.append((harness.topic(device_id, case.channel), case.payload))
        if case.reason != "shape_mismatch":
            messages.append((harness.topic(device_id, "telemetry"), _good(2)))  # the next good message
    publish_raw(mqtt_url, messages)
    wait_until(lambda: len(harness.query("SELECT 1 FROM rejects")) >= len(CASES) + 19, timeout=30)
    try:
        yield harness
    finally:
        service.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_rejected_with_its_reason(harness: Harness, name: str) -> None:
    case = CASES[name]
    device_id = f"bad-{name}"
    rows = harness.query(
        "SELECT reason, detail, payload_size FROM rejects WHERE topic LIKE %s",
        f"{harness.topic_root}/dev/{device_id}/%",
    )
    reasons = {row[0] for row in rows}
    assert reasons == {case.reason}, rows
    assert all(row[1] for row in rows)  # a human-readable detail
    if name == "rate_limited":
        assert len(rows) == case.repeat - 20  # the burst passes, the flood beyond it is refused
    else:
        assert len(rows) == 1
        assert rows[0][2] == len(case.payload)
    metric = harness.service.metrics.rejected.labels(case.reason)._value.get()
    assert metric >= 1
    if case.reason not in {"shape_mismatch"}:
        # The good message right after the bad one was stored: a bad message costs nothing else.
        stored = harness.query("SELECT seq FROM message_receipts WHERE device_id = %s AND seq = 2", device_id)
        assert name == "rate_limited" or stored == [(2,)]


def test_duplicates_and_replays_are_stored_once(harness: Harness, mqtt_url: str) -> None:
    topic = harness.topic("dup-meter", "telemetry")
    message = (topic, _body(ts=NOW.isoformat(), seq=41, register_l=77.5))
    before = harness.service.metrics.duplicates._value.get()
    publish_raw(mqtt_url, [message, message, message])  # redelivered twice in a row
    wait_until(lambda: harness.query("SELECT 1 FROM message_receipts WHERE device_id = 'dup-meter'"))
    publish_raw(mqtt_url, [message])  # replayed later, after the first was committed
    wait_until(lambda: harness.service.metrics.duplicates._value.get() >= before + 3)
    assert harness.query("SELECT seq FROM message_receipts WHERE device_id = 'dup-meter'") == [(41,)]
    assert harness.query("SELECT register_l FROM readings WHERE device_id = 'dup-meter'") == [(77.5,)]
    assert sum(1 for item in harness.committed if item.device.device_id == "dup-meter") == 1


def test_late_out_of_order_batch_is_stored_in_device_time_order(harness: Harness, mqtt_url: str) -> None:
    # A meter uploads 30 hours late, listing its interval readings out of order; a live reading from
    # after them was already stored. Stored order is device time, and the receive time is kept.
    base = NOW - timedelta(hours=30)
    live = (harness.topic("late-meter", "telemetry"), _body(ts=NOW.isoformat(), seq=9, register_l=500.0))
    order = [3, 0, 2, 1]
    batch = _body(
        ts=NOW.isoformat(),
        seq=10,
        readings=[{"ts": (base + timedelta(minutes=15 * k)).isoformat(), "register_l": 100.0 + k} for k in order],
    )
    publish_raw(mqtt_url, [live, (harness.topic("late-meter", "telemetry"), batch)])
    wait_until(lambda: len(harness.query("SELECT 1 FROM readings WHERE device_id = 'late-meter'")) == 5)
    rows = harness.query("SELECT ts, register_l, received_at FROM readings WHERE device_id = 'late-meter' ORDER BY ts")
    assert [row[1] for row in rows] == [100.0, 101.0, 102.0, 103.0, 500.0]
    assert all(isinstance(row[2], datetime) and row[2] > row[0] for row in rows[:4])
    late = next(item for item in harness.committed if item.device.device_id == "late-meter" and item.message.seq == 10)
    assert [r.ts for r in late.records] == sorted(r.ts for r in late.records)  # detectors get device-time order


def test_wrong_device_clock_is_flagged_and_receive_time_kept(harness: Harness, mqtt_url: str) -> None:
    skewed = NOW - timedelta(hours=2)  # within max_past, beyond the 5-minute tolerance
    publish_raw(
        mqtt_url,
        [
            (harness.topic("skew-button", "event"), _body(ts=skewed.isoformat(), seq=1, event="service_request")),
            (harness.topic("skew-button", "event"), _body(ts=datetime.now(UTC).isoformat(), seq=2, event="cancel")),
        ],
    )
    wait_until(lambda: len(harness.query("SELECT 1 FROM message_receipts WHERE device_id = 'skew-button'")) == 2)
    rows = harness.query(
        "SELECT seq, clock_skewed, received_at - ts FROM message_receipts WHERE device_id = 'skew-button' ORDER BY seq"
    )
    assert [(row[0], row[1]) for row in rows] == [(1, True), (2, False)]
    assert rows[0][2] > timedelta(hours=1, minutes=59)
    assert harness.service.metrics.clock_skewed._value.get() >= 1


def test_a_message_postgresql_refuses_does_not_hold_up_the_others(
    harness: Harness, mqtt_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The decoder refuses everything we know PostgreSQL cannot store; simulate one it missed.
    real_store = ingest.writer.store_batch

    def store_refusing_poison(conn: psycopg.Connection, accepted: list[Accepted], rejected: list[object]) -> object:
        if any(item.device.device_id == "poison-meter" for item in accepted):
            raise errors.DataError("simulated: value out of range")
        return real_store(conn, accepted, rejected)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest.writer, "store_batch", store_refusing_poison)
    publish_raw(
        mqtt_url,
        [
            (harness.topic("poison-meter", "telemetry"), _good(1)),
            (harness.topic("bystander-meter", "telemetry"), _good(1)),
        ],
    )
    wait_until(lambda: harness.query("SELECT 1 FROM message_receipts WHERE device_id = 'bystander-meter'"))
    rejects = wait_until(
        lambda: harness.query("SELECT reason, detail FROM rejects WHERE device_id = 'poison-meter'"), timeout=10
    )
    assert rejects[0][0] == "invalid_value"
    assert str(rejects[0][1]).startswith("PostgreSQL refused")
    assert harness.query("SELECT 1 FROM message_receipts WHERE device_id = 'poison-meter'") == []
