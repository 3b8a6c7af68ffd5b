"""Values carewatch makes itself once a device message is accepted.

Frozen, slotted dataclasses: cheap on the hot path, immutable once made. Device time (``ts``) and
receive time (``received_at``) are both kept, always as timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.kinds import DeviceType


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the registry knows about a device: its type decides which payloads it may send."""

    device_id: str
    device_type: DeviceType
    household_id: str
    # How often the device is expected to be heard from (data or heartbeat), before grace.
    expected_interval_s: int


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One cumulative register reading of a water meter, at device time ``ts``."""

    device_id: str
    household_id: str
    ts: datetime
    register_l: float
    received_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A discrete event from a smoke alarm or a call button (``kind`` is the protocol's ``event``)."""

    device_id: str
    household_id: str
    device_type: DeviceType
    ts: datetime
    seq: int
    kind: str
    received_at: datetime
    note: str | None = None
    # ``checkin_ok`` only: the check-in the resident answered.
    checkin_id: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A device's ``status`` message (heartbeat, or its Last Will with ``online=False``)."""

    device_id: str
    household_id: str
    device_type: DeviceType
    ts: datetime
    seq: int
    online: bool
    received_at: datetime
    battery_pct: int | None = None
    rssi_dbm: int | None = None
    fw: str | None = None


Record = MeterSample | DeviceEvent | StatusReport
