"""The decoder is the trust boundary: property tests with arbitrary bytes and JSON, and the hot path
(``decode``) agreeing with the reference path (``decode_reference``) on everything it accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.decode import DecodePolicy, decode, decode_reference, storable_text
from schemas.device import MAX_BATCH_READINGS, MAX_PAYLOAD_BYTES
from schemas.intake import Accepted, Rejected
from schemas.kinds import DeviceType, RejectReason
from schemas.records import DeviceInfo

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
POLICY = DecodePolicy()
DEVICES = {
    "meter": DeviceInfo("meter", DeviceType.WATER_METER, "hh", 900),
    "smoke": DeviceInfo("smoke", DeviceType.SMOKE_ALARM, "hh", 900),
    "button": DeviceInfo("button", DeviceType.CALL_BUTTON, "hh", 900),
}
TOPICS = [f"care/v1/dev/{device}/{channel}" for device in DEVICES for channel in ("telemetry", "event", "status")]
TOPICS += ["care/v1/dev/ghost/telemetry", "care/v1/dev/meter/other", "elsewhere/x"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
timestamps = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**45),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.just((NOW - timedelta(minutes=3)).isoformat()),
    st.just(int(NOW.timestamp() * 1000)),
    st.text(max_size=30),
)
# Objects shaped like device messages, so that validation (not just JSON parsing) is exercised.
shaped = st.fixed_dictionaries(
    {"ts": timestamps, "seq": st.one_of(st.integers(min_value=-5, max_value=2**33), json_values)},
    optional={
        "register_l": st.one_of(st.floats(), st.integers(), json_values),
        "readings": st.lists(st.fixed_dictionaries({"ts": timestamps, "register_l": st.floats()}), max_size=3),
        "event": st.sampled_from(["alarm", "sos", "cancel", "hush", "boom"]),
        "online": st.one_of(st.booleans(), json_values),
        "fw": st.text(max_size=10),
        "note": st.text(max_size=10),
        "extra": json_values,
    },
)


def _both(topic: str, payload: bytes) -> tuple[Accepted | Rejected, Accepted | Rejected]:
    return (
        decode(topic, payload, NOW, DEVICES.get, POLICY),
        decode_reference(topic, payload, NOW, DEVICES.get, POLICY),
    )


@given(st.sampled_from(TOPICS), st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_raise(topic: str, payload: bytes) -> None:
    fast, reference = _both(topic, payload)
    assert isinstance(fast, Accepted | Rejected)
    assert type(fast) is type(reference)


@given(st.sampled_from(TOPICS), json_values)
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_never_raises(topic: str, value: object) -> None:
    fast, _ = _both(topic, json.dumps(value).encode())
    assert isinstance(fast, Accepted | Rejected)


@given(st.sampled_from(TOPICS), shaped, st.booleans())
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hot_path_agrees_with_reference(topic: str, body: dict[str, object], ascii_only: bool) -> None:
    payload = json.dumps(body, ensure_ascii=ascii_only, allow_nan=True).encode()
    fast, reference = _both(topic, payload)
    assert type(fast) is type(reference)
    if isinstance(fast, Accepted) and isinstance(reference, Accepted):
        assert fast.message == reference.message
        assert fast.records == reference.records
        assert fast.clock_skewed == reference.clock_skewed
    else:
        assert isinstance(fast, Rejected)
        assert isinstance(reference, Rejected)
        assert fast.reason == reference.reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ('{"ts": 1772352000000, "seq": 1, "online": true, "fw": "1.0\\u0000"}', RejectReason.INVALID_VALUE),
        ('{"ts": 1772352000000, "seq": 1, "online": true, "fw": "\\ud800"}', RejectReason.INVALID_VALUE),
    ],
)
def test_text_postgresql_cannot_store_is_refused(payload: str, reason: RejectReason) -> None:
    fast, reference = _both("care/v1/dev/smoke/status", payload.encode())
    assert isinstance(fast, Rejected)
    assert fast.reason is reason
    assert isinstance(reference, Rejected)
    assert reference.reason is reason


def test_reject_details_are_storable() -> None:
    rejected = decode("care/v1/dev/meter/telemetry", b'{"\\u0000x": 1}', NOW, DEVICES.get, POLICY)
    assert isinstance(rejected, Rejected)
    assert storable_text(rejected.detail) == rejected.detail
    assert storable_text("a\x00b\ud800") == "a\\u0000b?"


def _batch(readings: int) -> bytes:
    stamp = int(NOW.timestamp() * 1000)
    items = [{"ts": stamp - k * 60_000, "register_l": 1} for k in range(readings)]
    return json.dumps({"ts": stamp, "seq": 1, "readings": items}, separators=(",", ":")).encode()


def test_batch_over_1440_readings_cannot_fit_the_protocol_payload_limit() -> None:
    # The protocol allows 1,440 readings per batch and 16 KiB per payload; even the most compact
    # reading ({"ts":<epoch ms>,"register_l":1}) takes 35 bytes, so about 460 fit. At 16 KiB a
    # batch over 1,440 is refused as oversized before its length is looked at (docs/ingest.md).
    payload = _batch(MAX_BATCH_READINGS + 1)
    assert len(payload) > MAX_PAYLOAD_BYTES
    outcome = decode("care/v1/dev/meter/telemetry", payload, NOW, DEVICES.get, POLICY)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is RejectReason.OVERSIZED
    raised = DecodePolicy(max_payload_bytes=256 * 1024)
    outcome = decode("care/v1/dev/meter/telemetry", payload, NOW, DEVICES.get, raised)
    assert isinstance(outcome, Rejected)
    assert outcome.reason is RejectReason.BATCH_TOO_LARGE
    accepted = decode("care/v1/dev/meter/telemetry", _batch(MAX_BATCH_READINGS), NOW, DEVICES.get, raised)
    assert isinstance(accepted, Accepted)
    assert len(accepted.records) == MAX_BATCH_READINGS
