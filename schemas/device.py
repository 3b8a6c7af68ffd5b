"""Device protocol v1: the JSON payloads devices publish (see ``docs/protocol.md``).

Topic: ``{root}/dev/{device_id}/{channel}`` with ``root`` defaulting to ``care/v1``. Payload: one UTF-8
JSON object of at most ``MAX_PAYLOAD_BYTES``. ``ts`` is RFC 3339 with an offset or integer epoch
milliseconds; ``seq`` is the device's own message counter (``0..2**32-1``, wraps).

Models are strict about types (a string is never silently a number) and forbid unknown fields, so a
device that drifts from the protocol is rejected with a reason rather than half-understood.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from schemas.kinds import CallEventKind, SmokeEventKind

MAX_PAYLOAD_BYTES = 16 * 1024
MAX_BATCH_READINGS = 1440
SEQ_MODULUS = 2**32
DEVICE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Integer epoch milliseconds outside this range are surely not milliseconds (seconds, microseconds).
_MIN_EPOCH_MS = 0
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _parse_timestamp(value: Any) -> datetime:
    """Accept RFC 3339 with an explicit offset or integer epoch milliseconds; return aware UTC."""
    if isinstance(value, bool):
        raise TypeError("timestamp must be an RFC 3339 string or integer epoch milliseconds")
    if isinstance(value, int):
        if not _MIN_EPOCH_MS <= value <= _MAX_EPOCH_MS:
            raise ValueError("epoch milliseconds out of range")
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    if isinstance(value, str):
        if len(value) > 40 or "T" not in value.upper():
            raise ValueError("timestamp must be RFC 3339, e.g. 2026-01-01T08:00:00+08:00")
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("timestamp must be RFC 3339, e.g. 2026-01-01T08:00:00+08:00") from exc
        if parsed.tzinfo is None:
            raise ValueError("timestamp needs an offset (Z or +08:00)")
        return parsed.astimezone(UTC)
    raise TypeError("timestamp must be an RFC 3339 string or integer epoch milliseconds")


Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_timestamp),
    Field(
        json_schema_extra={
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "minimum": _MIN_EPOCH_MS, "maximum": _MAX_EPOCH_MS},
            ]
        }
    ),
]
Seq = Annotated[StrictInt, Field(ge=0, lt=SEQ_MODULUS)]
Litres = Annotated[StrictFloat | StrictInt, Field(ge=0, le=1e12, allow_inf_nan=False)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: Timestamp
    seq: Seq


class IntervalReading(BaseModel):
    """One stored interval reading inside a batch upload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: Timestamp
    register_l: Litres


class MeterReading(_Message):
    """Water meter ``telemetry``: one live reading of the cumulative register."""

    register_l: Litres


class MeterBatch(_Message):
    """Water meter ``telemetry``: stored interval readings uploaded together, possibly hours late."""

    readings: Annotated[list[IntervalReading], Field(min_length=1, max_length=MAX_BATCH_READINGS)]


class SmokeEvent(_Message):
    """Smoke alarm ``event`` (EN 14604 / GB 20517 event kinds)."""

    event: SmokeEventKind


CheckinId = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


class CallEvent(_Message):
    """One-touch call device (为老服务一键通) ``event``; ``checkin_ok`` carries the ``checkin_id`` it answers."""

    event: CallEventKind
    note: Annotated[StrictStr, Field(max_length=500)] | None = None
    checkin_id: CheckinId | None = None

    @model_validator(mode="after")
    def _checkin_id_with_checkin_ok(self) -> CallEvent:
        if (self.event is CallEventKind.CHECKIN_OK) != (self.checkin_id is not None):
            raise ValueError("checkin_id is required with checkin_ok, and only with it")
        return self


class DeviceStatus(_Message):
    """``status`` from any device: retained, and the device's MQTT Last Will with ``online: false``."""

    online: StrictBool
    battery_pct: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    rssi_dbm: Annotated[StrictInt, Field(ge=-200, le=50)] | None = None
    fw: Annotated[StrictStr, Field(max_length=64)] | None = None


DeviceMessage = MeterReading | MeterBatch | SmokeEvent | CallEvent | DeviceStatus

# Which payload models a device type may publish on each channel (the registry says the type).
ChannelName = Literal["telemetry", "event", "status"]


class DeviceCommand(BaseModel):
    """A downlink command carewatch publishes (QoS 1) on ``{root}/dev/{device_id}/cmd``.

    ``checkin``: the call button beeps and blinks until ``expires``; a press answers with the event
    ``checkin_ok`` carrying the same ``checkin_id``. Devices ignore commands they do not know, and
    commands whose ``expires`` has passed (a command held in the broker while the device was offline).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: datetime
    cmd: Literal["checkin"]
    checkin_id: CheckinId
    expires: datetime
