"""Record builders for detector tests: compact, explicit times, UTC only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from schemas.kinds import DeviceType
from schemas.records import DeviceEvent, DeviceInfo, MeterSample, StatusReport

HH = "hh1"
METER = DeviceInfo("m1", DeviceType.WATER_METER, HH, 900)
SMOKE = DeviceInfo("s1", DeviceType.SMOKE_ALARM, HH, 3600)
BUTTON = DeviceInfo("c1", DeviceType.CALL_BUTTON, HH, 3600)
# Monday 2024-03-04 00:00 in Shanghai (UTC+8) is 2024-03-03 16:00 UTC.
T0 = datetime(2024, 3, 3, 16, 0, tzinfo=UTC)


def at(hours: float = 0.0, *, day: int = 0) -> datetime:
    """Shanghai local time ``hours`` after midnight on day ``day`` (day 0 = Monday 2024-03-04)."""
    return T0 + timedelta(days=day, hours=hours)


def sample(ts: datetime, register: float, *, received: datetime | None = None, device: str = "m1") -> MeterSample:
    return MeterSample(device, HH, ts, register, received or ts)


def event(
    kind: str, ts: datetime, *, device: DeviceInfo = BUTTON, received: datetime | None = None, seq: int = 1
) -> DeviceEvent:
    return DeviceEvent(device.device_id, HH, device.device_type, ts, seq, kind, received or ts)


def status(
    ts: datetime,
    device: DeviceInfo,
    *,
    online: bool = True,
    battery_pct: int | None = None,
    rssi_dbm: int | None = None,
) -> StatusReport:
    return StatusReport(device.device_id, HH, device.device_type, ts, 1, online, ts, battery_pct, rssi_dbm)


def readings(
    start: datetime,
    end: datetime,
    use: Iterable[tuple[datetime, float]] = (),
    *,
    register: float = 100.0,
    step_min: int = 15,
    received: datetime | None = None,
) -> Iterator[MeterSample]:
    """15-minute register readings from ``start`` to ``end`` inclusive; ``use`` adds litres at times."""
    uses = sorted(use)
    ts = start
    while ts <= end:
        while uses and uses[0][0] <= ts:
            register += uses.pop(0)[1]
        yield sample(ts, register, received=received)
        ts += timedelta(minutes=step_min)
