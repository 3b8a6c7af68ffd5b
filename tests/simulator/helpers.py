"""Shared helpers for the simulator tests: a small fixed fleet and payload validation by device type."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from schemas.device import CallEvent, DeviceStatus, MeterBatch, MeterReading, SmokeEvent
from schemas.kinds import DeviceType
from simulator import Fleet

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 08:00 in Shanghai

_ADAPTERS: dict[tuple[DeviceType, str], TypeAdapter[Any]] = {
    (DeviceType.WATER_METER, "telemetry"): TypeAdapter(MeterReading | MeterBatch),
    (DeviceType.SMOKE_ALARM, "event"): TypeAdapter(SmokeEvent),
    (DeviceType.CALL_BUTTON, "event"): TypeAdapter(CallEvent),
}
_STATUS: TypeAdapter[DeviceStatus] = TypeAdapter(DeviceStatus)


def small_fleet(homes: int = 12, seed: int = 11) -> Fleet:
    return Fleet.generate(homes=homes, seed=seed, start=START, id_prefix="t")


def validate(device_type: DeviceType, channel: str, payload: bytes) -> Any:
    """Validate ``payload`` against the protocol model for this device type and channel."""
    adapter = _STATUS if channel == "status" else _ADAPTERS.get((device_type, channel))
    if adapter is None:
        raise ValueError(f"a {device_type} does not publish on {channel}")
    return adapter.validate_json(payload)
