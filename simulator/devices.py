"""The homes of a simulated fleet and the devices in each.

Every home has one water meter (``wm``), one or two smoke alarms (``sa1`` in the kitchen, ``sa2`` in
the bedroom for about 30 % of homes) and one one-touch call button (``cb``). Ids are
``{prefix}-{home:06d}`` for the household and ``{prefix}-{home:06d}-{slot}`` for devices, which match
the protocol's ``[A-Za-z0-9_-]{1,64}`` for any prefix of up to 40 such characters. A device's MQTT
client id is its device id, so a per-device-connection run looks to the broker like the real fleet.

Meters report in one of three modes, as deployed fleets do:
- ``live``: a reading every 15 minutes (NB-IoT/4G meters with mains or large batteries);
- ``nbiot_6h`` / ``nbiot_daily``: stored 15-minute readings uploaded in one batch every 6 or 24 hours,
  at a per-meter phase so uploads are staggered across the fleet rather than all at midnight.

``expected_interval_s`` is the longest normal gap between messages: the registry needs it to tell
"offline" from "quiet", so batched meters get their upload period, not their reading interval.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import StrEnum

from schemas.kinds import DeviceType
from schemas.records import DeviceInfo
from simulator.profiles import ResidentProfile, make_profile

READING_INTERVAL_S = 900
SMOKE_HEARTBEAT_S = 6 * 3600
BUTTON_HEARTBEAT_S = 3600
METER_STATUS_S = 24 * 3600
_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,40}")


class MeterMode(StrEnum):
    LIVE = "live"
    NBIOT_6H = "nbiot_6h"
    NBIOT_DAILY = "nbiot_daily"

    @property
    def upload_period_s(self) -> int:
        return {"live": READING_INTERVAL_S, "nbiot_6h": 6 * 3600, "nbiot_daily": 24 * 3600}[self.value]


@dataclass(frozen=True, slots=True)
class SimDevice:
    """One simulated device: what the registry must know, plus its schedule."""

    device_id: str
    device_type: DeviceType
    household_id: str
    expected_interval_s: int
    slot: str
    home: int
    # Global tie-break for messages at the same millisecond: publish order is (time, ordinal, seq).
    ordinal: int
    # Offset of this device's schedule inside its period, so the fleet does not report in lockstep.
    phase_s: int
    fw: str
    rssi_dbm: int
    battery_pct: float
    meter_mode: MeterMode | None = None

    @property
    def client_id(self) -> str:
        return self.device_id

    def topic(self, root: str, channel: str) -> str:
        return f"{root}/dev/{self.device_id}/{channel}"

    def info(self) -> DeviceInfo:
        """The registry entry carewatch needs before it accepts this device's messages."""
        return DeviceInfo(self.device_id, self.device_type, self.household_id, self.expected_interval_s)


@dataclass(frozen=True, slots=True)
class Home:
    """A household: its resident's profile and its devices (meter first, call button last)."""

    index: int
    household_id: str
    profile: ResidentProfile
    devices: tuple[SimDevice, ...]

    def device(self, slot: str) -> SimDevice | None:
        for device in self.devices:
            if device.slot == slot:
                return device
        return None

    @property
    def meter(self) -> SimDevice:
        return self.devices[0]


def check_prefix(prefix: str) -> str:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"id prefix must match [A-Za-z0-9_-]{{1,40}}: {prefix!r}")
    return prefix


def build_home(seed: int, index: int, prefix: str) -> Home:
    """Draw home ``index``: profile, devices, meter mode, phases, batteries."""
    rng = random.Random(f"{seed}/home/{index}")
    household_id = f"{prefix}-{index:06d}"
    mode = rng.choices(list(MeterMode), weights=[60, 25, 15])[0]
    slots = ["wm", "sa1", "sa2", "cb"] if rng.random() < 0.3 else ["wm", "sa1", "cb"]
    devices = []
    for n, slot in enumerate(slots):
        if slot == "wm":
            dtype, interval, fw = DeviceType.WATER_METER, mode.upload_period_s, rng.choice(["nb-2.1.4", "nb-2.2.0"])
        elif slot == "cb":
            dtype, interval, fw = DeviceType.CALL_BUTTON, BUTTON_HEARTBEAT_S, rng.choice(["ykt-1.8", "ykt-2.0"])
        else:
            dtype, interval, fw = DeviceType.SMOKE_ALARM, SMOKE_HEARTBEAT_S, rng.choice(["sa-3.0.1", "sa-3.1.0"])
        # A few alarms start near the low-battery threshold so low_battery events appear in short runs.
        battery = rng.uniform(6.0, 16.0) if rng.random() < 0.03 else rng.uniform(30.0, 100.0)
        devices.append(
            SimDevice(
                device_id=f"{household_id}-{slot}",
                device_type=dtype,
                household_id=household_id,
                expected_interval_s=interval,
                slot=slot,
                home=index,
                ordinal=index * 4 + n,
                phase_s=rng.randrange(interval),
                fw=fw,
                rssi_dbm=rng.randint(-110, -70),
                battery_pct=battery,
                meter_mode=mode if slot == "wm" else None,
            )
        )
    return Home(index, household_id, make_profile(seed, index), tuple(devices))
