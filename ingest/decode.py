"""Pure decoding of one MQTT message: ``decode(topic, payload, received_at, ...) -> Accepted | Rejected``.

The decoder is the trust boundary. It never raises for any input (property-tested with arbitrary bytes
and JSON); every refusal is a ``Rejected`` with a ``RejectReason`` and a human-readable detail, which the
writer stores in ``rejects`` next to the good messages of the same batch.

Order of checks, cheapest first: topic scheme, size, UTF-8, JSON, object, device registry, shape for the
device's type, field types and values, timestamp plausibility. A device clock that is off by more than
the tolerance is accepted but flagged (the receive time is always kept too).

Two paths, one verdict. ``decode_reference`` is the straightforward path above (``json.loads``, then
pydantic on the dict), which knows *why* a message is bad. ``decode`` first tries the hot path: the
payload model is chosen from the registry and a cheap byte sniff, and pydantic validates the raw bytes
(``model_validate_json``: parsed in Rust, no Python dict), which costs about half as much per message.
Anything the hot path does not accept goes through ``decode_reference`` for its reason, so the hot path
can only ever *accept*, and only what the reference accepts (property-tested: both agree on arbitrary
JSON). Payloads with ``\\u`` escapes skip the hot path, because the two JSON parsers differ on unpaired
surrogates.

Text that PostgreSQL cannot store (NUL, unpaired surrogates) is refused here, in accepted fields, and
replaced in reject details: a message must never make a whole batch fail to commit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas.device import (
    DEVICE_ID_PATTERN,
    MAX_BATCH_READINGS,
    MAX_PAYLOAD_BYTES,
    CallEvent,
    DeviceMessage,
    DeviceStatus,
    MeterBatch,
    MeterReading,
    SmokeEvent,
)
from schemas.intake import Accepted, Rejected
from schemas.kinds import CallEventKind, Channel, DeviceType, RejectReason, SmokeEventKind
from schemas.records import DeviceEvent, DeviceInfo, MeterSample, Record, StatusReport

DeviceLookup = Callable[[str], DeviceInfo | None]


@dataclass(frozen=True, slots=True)
class DecodePolicy:
    topic_root: str = "care/v1"
    max_past: timedelta = timedelta(days=14)
    max_future: timedelta = timedelta(days=1)
    clock_skew_tolerance: timedelta = timedelta(minutes=5)
    max_payload_bytes: int = MAX_PAYLOAD_BYTES


class _RefusalError(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# Topics repeat (one per device and channel), so parsing them is cached; bounded by clearing when full.
_TOPIC_CACHE: dict[tuple[str, str], tuple[str, Channel] | None] = {}
_TOPIC_CACHE_MAX = 200_000


def parse_topic(topic: str, topic_root: str) -> tuple[str, Channel] | None:
    """``{root}/dev/{device_id}/{channel}`` → (device_id, channel), or None if it does not match."""
    key = (topic, topic_root)
    try:
        return _TOPIC_CACHE[key]
    except KeyError:
        pass
    parsed = _parse_topic(topic, topic_root)
    if len(_TOPIC_CACHE) >= _TOPIC_CACHE_MAX:
        _TOPIC_CACHE.clear()
    _TOPIC_CACHE[key] = parsed
    return parsed


DOWNLINK_CHANNEL = "cmd"


def is_downlink(topic: str, topic_root: str) -> bool:
    """``{root}/dev/{device_id}/cmd``: a command carewatch sent to a device, not a device's message."""
    if not topic.endswith("/" + DOWNLINK_CHANNEL) or not topic.startswith(f"{topic_root}/dev/"):
        return False
    parts = topic[len(topic_root) + 5 :].split("/")
    return len(parts) == 2 and DEVICE_ID_PATTERN.fullmatch(parts[0]) is not None


def _parse_topic(topic: str, topic_root: str) -> tuple[str, Channel] | None:
    prefix = f"{topic_root}/dev/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 2 or not DEVICE_ID_PATTERN.fullmatch(parts[0]):
        return None
    try:
        return parts[0], Channel(parts[1])
    except ValueError:
        return None


def decode(
    topic: str,
    payload: bytes,
    received_at: datetime,
    lookup: DeviceLookup,
    policy: DecodePolicy,
) -> Accepted | Rejected:
    """Decode one message; never raises. Tries the hot path, falls back to ``decode_reference``."""
    try:
        accepted = _decode_fast(topic, payload, received_at, lookup, policy)
    except Exception:  # the reference path below gives the reason (or the same exception, contained)
        accepted = None
    if accepted is not None:
        return accepted
    return decode_reference(topic, payload, received_at, lookup, policy)


def _decode_fast(
    topic: str, payload: bytes, received_at: datetime, lookup: DeviceLookup, policy: DecodePolicy
) -> Accepted | None:
    """Accept a well-formed message cheaply, or return None (or raise) to let the reference decide."""
    parsed = parse_topic(topic, policy.topic_root)
    if parsed is None or len(payload) > policy.max_payload_bytes or b"\\u" in payload:
        return None
    device = lookup(parsed[0])
    if device is None:
        return None
    channel = parsed[1]
    model = _fast_model(device.device_type, channel, payload)
    if model is None:
        return None
    try:
        message: DeviceMessage = model.model_validate_json(payload)  # type: ignore[assignment]
    except ValidationError:
        return None
    _check_text(message)
    clock_skewed = _check_time(message, received_at, policy)
    return Accepted(device, channel, message, received_at, clock_skewed, _records(device, message, received_at))


def _fast_model(device_type: DeviceType, channel: Channel, payload: bytes) -> type[BaseModel] | None:
    if channel is Channel.STATUS:
        return DeviceStatus
    if device_type is DeviceType.WATER_METER and channel is Channel.TELEMETRY:
        # A wrong guess only fails validation, and the reference path then decides.
        return MeterBatch if b'"readings"' in payload else MeterReading
    if channel is Channel.EVENT and device_type in _EVENT_MODELS:
        return _EVENT_MODELS[device_type][0]
    return None


def decode_reference(
    topic: str,
    payload: bytes,
    received_at: datetime,
    lookup: DeviceLookup,
    policy: DecodePolicy,
) -> Accepted | Rejected:
    """The reference decoder: every check in order, with the precise reason for a refusal."""
    device_id: str | None = None
    try:
        parsed = parse_topic(topic, policy.topic_root)
        if parsed is None:
            raise _RefusalError(
                RejectReason.BAD_TOPIC, f"topic does not match {policy.topic_root}/dev/{{id}}/{{channel}}"
            )
        device_id, channel = parsed
        body = _parse_json_object(payload, policy.max_payload_bytes)
        device = lookup(device_id)
        if device is None:
            raise _RefusalError(RejectReason.UNKNOWN_DEVICE, f"device {device_id} is not registered")
        model = _model_for(device.device_type, channel, body)
        message = _validate(model, body)
        _check_text(message)
        clock_skewed = _check_time(message, received_at, policy)
        return Accepted(
            device=device,
            channel=channel,
            message=message,
            received_at=received_at,
            clock_skewed=clock_skewed,
            records=_records(device, message, received_at),
        )
    except _RefusalError as refusal:
        return Rejected(refusal.reason, storable_text(refusal.detail), topic, payload, received_at, device_id)
    except Exception as exc:
        return Rejected(
            RejectReason.INVALID_VALUE,
            f"unexpected decoder error: {type(exc).__name__}",
            topic,
            payload,
            received_at,
            device_id,
        )


def _reject_constant(name: str) -> Any:
    raise _RefusalError(RejectReason.NON_FINITE, f"non-finite number {name} is not allowed")


def _parse_json_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    if len(payload) > max_bytes:
        raise _RefusalError(RejectReason.OVERSIZED, f"payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _RefusalError(RejectReason.NOT_UTF8, f"payload is not UTF-8 (byte {exc.start})") from exc
    try:
        body = json.loads(text, parse_constant=_reject_constant)
    except _RefusalError:
        raise
    except (ValueError, RecursionError) as exc:
        raise _RefusalError(RejectReason.INVALID_JSON, f"invalid JSON: {str(exc)[:120]}") from exc
    if not isinstance(body, dict):
        raise _RefusalError(RejectReason.NOT_OBJECT, f"payload is a JSON {type(body).__name__}, not an object")
    return body


def _model_for(device_type: DeviceType, channel: Channel, body: dict[str, Any]) -> type[BaseModel]:
    if channel is Channel.STATUS:
        return DeviceStatus
    if device_type is DeviceType.WATER_METER and channel is Channel.TELEMETRY:
        return MeterBatch if "readings" in body else MeterReading
    if channel is Channel.EVENT and device_type in _EVENT_MODELS:
        event = body.get("event")
        for other_type, (_, kinds) in _EVENT_MODELS.items():
            if other_type is not device_type and isinstance(event, str) and event in kinds:
                raise _RefusalError(
                    RejectReason.SHAPE_MISMATCH,
                    f"event {event!r} is a {other_type.value} event, not a {device_type.value} one",
                )
        return _EVENT_MODELS[device_type][0]
    raise _RefusalError(RejectReason.SHAPE_MISMATCH, f"a {device_type.value} does not publish on {channel.value}")


_EVENT_MODELS: dict[DeviceType, tuple[type[BaseModel], frozenset[str]]] = {
    DeviceType.SMOKE_ALARM: (SmokeEvent, frozenset(SmokeEventKind)),
    DeviceType.CALL_BUTTON: (CallEvent, frozenset(CallEventKind)),
}

_TYPE_ERRORS = ("_type", "_parsing", "is_instance_of", "model_type", "dict_type", "list_type")


def _validate(model: type[BaseModel], body: dict[str, Any]) -> DeviceMessage:
    try:
        return model.model_validate(body)  # type: ignore[return-value]
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        kind = error["type"]
        detail = f"{where}: {error['msg']}"
        if kind == "missing":
            reason = RejectReason.MISSING_FIELD
        elif kind == "extra_forbidden":
            reason = RejectReason.SHAPE_MISMATCH
        elif kind == "too_long" and error["loc"][:1] == ("readings",):
            reason = RejectReason.BATCH_TOO_LARGE
            detail = f"batch exceeds {MAX_BATCH_READINGS} readings"
        elif kind == "finite_number" or _has_non_finite(body):
            reason = RejectReason.NON_FINITE
        elif kind.endswith(_TYPE_ERRORS) or kind in {"bool_type", "int_type", "string_type", "float_type"}:
            reason = RejectReason.WRONG_TYPE
        else:
            reason = RejectReason.INVALID_VALUE
        raise _RefusalError(reason, detail[:300]) from exc


def storable_text(text: str) -> str:
    """``text`` as PostgreSQL can store it: no NUL, no unpaired surrogates (replaced, not dropped)."""
    if text.isascii() and "\x00" not in text:  # the common case, cheaply
        return text
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _check_text(message: DeviceMessage) -> None:
    """Free-text fields must be storable: a NUL or an unpaired surrogate would fail the whole COPY."""
    if type(message) is CallEvent:
        field, value = "note", message.note
    elif type(message) is DeviceStatus:
        field, value = "fw", message.fw
    else:
        return
    if value is not None and storable_text(value) != value:
        raise _RefusalError(RejectReason.INVALID_VALUE, f"{field}: contains NUL or an unpaired surrogate")


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def _check_time(message: DeviceMessage, received_at: datetime, policy: DecodePolicy) -> bool:
    earliest = received_at - policy.max_past
    latest = received_at + policy.max_future
    stamps = [message.ts]
    if type(message) is MeterBatch:
        stamps.extend(reading.ts for reading in message.readings)
    for stamp in stamps:
        if not earliest <= stamp <= latest:
            raise _RefusalError(
                RejectReason.TIMESTAMP_OUT_OF_RANGE,
                f"device time {stamp.isoformat()} is implausible for receive time {received_at.isoformat()}",
            )
    return abs(message.ts - received_at) > policy.clock_skew_tolerance


def _records(device: DeviceInfo, message: DeviceMessage, received_at: datetime) -> tuple[Record, ...]:
    # Dispatch on the exact class: the message models are leaves, and ``isinstance`` against a pydantic
    # model goes through its metaclass's ABC check (~0.8 us a call, several calls per message).
    device_id, household_id = device.device_id, device.household_id
    if type(message) is MeterReading:
        return (MeterSample(device_id, household_id, message.ts, float(message.register_l), received_at),)
    if type(message) is MeterBatch:
        # Stored in device-time order whatever order the meter listed them in.
        ordered = sorted(message.readings, key=lambda reading: reading.ts)
        return tuple(MeterSample(device_id, household_id, r.ts, float(r.register_l), received_at) for r in ordered)
    if type(message) is SmokeEvent or type(message) is CallEvent:
        note = checkin_id = None
        if type(message) is CallEvent:
            note, checkin_id = message.note, message.checkin_id
        return (
            DeviceEvent(
                device_id,
                household_id,
                device.device_type,
                message.ts,
                message.seq,
                message.event.value,
                received_at,
                note,
                checkin_id,
            ),
        )
    if type(message) is not DeviceStatus:
        raise TypeError(f"no records for message type {type(message).__name__}")
    return (
        StatusReport(
            device_id,
            household_id,
            device.device_type,
            message.ts,
            message.seq,
            message.online,
            received_at,
            message.battery_pct,
            message.rssi_dbm,
            message.fw,
        ),
    )
