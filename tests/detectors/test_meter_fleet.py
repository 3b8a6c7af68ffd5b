"""Many meters in one call (detectors/meter_fleet.py) is exactly the per-reading path, meter by meter.

test_meter_batch.py proves the bulk path with one meter per engine; here every call carries the uploads
of many meters at once (different zones, batch shapes, incidents, households with settings, a smoke
alarm beside some of them), so the fleet path stacks them into shared arrays. Two engines, bulk path on
and off, are compared after every call: findings, snapshots, raw state (floats bit for bit), timers.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from detectors import Engine, HouseholdSettings, meter_fleet
from detectors.testing import PROFILES, Resident
from schemas.kinds import DeviceType
from schemas.records import DeviceEvent, DeviceInfo, MeterSample, Record, StatusReport
from tests.detectors.test_meter_batch import SUITE, WARM_D, _state, day_of, scenario, uploads


def fleet_calls(seeds: range) -> tuple[list[DeviceInfo], dict[str, HouseholdSettings], list[list[Record]]]:
    """The scenarios' uploads, one meter per seed, merged call by call (shuffled within each call)."""
    devices: list[DeviceInfo] = []
    settings: dict[str, HouseholdSettings] = {}
    per_meter: list[list[list[MeterSample]]] = []
    for seed in seeds:
        _, home, batches = scenario(seed)
        device, household = f"m{seed}", f"h{seed}"
        devices.append(DeviceInfo(device, DeviceType.WATER_METER, household, 900))
        settings[household] = home
        per_meter.append([[replace(s, device_id=device, household_id=household) for s in b] for b in batches])
    # A second meter in the first household, reading what the first reads, and now and then losing its
    # connection (its Last Will names the household's devices heard lately: an order that matters).
    first, home = devices[0].device_id, devices[0].household_id
    devices.append(DeviceInfo(f"{first}b", DeviceType.WATER_METER, home, 900))
    per_meter.append([[replace(s, device_id=f"{first}b") for s in b] for b in per_meter[0]])
    rng = random.Random(len(seeds))
    calls: list[list[Record]] = []
    for k in range(max(map(len, per_meter))):
        call: list[Record] = [s for batches in per_meter if k < len(batches) for s in batches[k]]
        at = max(r.received_at for r in call)
        if k >= WARM_D and k % 3 == 0:  # a smoke alarm's test press beside two of the meters
            for household in ("h1", "h2"):
                call.append(DeviceEvent(f"s-{household}", household, DeviceType.SMOKE_ALARM, at, k, "test", at))
        if k % 4 == 1 and k < len(per_meter[0]):  # at the first meter's upload time
            will = max(r.received_at for r in per_meter[0][k])
            call.append(StatusReport(f"{first}b", home, DeviceType.WATER_METER, will, k, False, will))
        rng.shuffle(call)
        calls.append(call)
    devices += [DeviceInfo(f"s-{h}", DeviceType.SMOKE_ALARM, h, 3600) for h in ("h1", "h2")]
    return devices, settings, calls


@pytest.mark.parametrize(("seeds", "chunk"), [(range(24), meter_fleet.CHUNK), (range(24, 48), 5)])
def test_many_meters_per_call_match_the_per_reading_path(
    seeds: range, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(meter_fleet, "CHUNK", chunk)  # 5: one call's meters screened in several chunks
    devices, settings, calls = fleet_calls(seeds)
    ref, fast = Engine(SUITE, batch_path=False), Engine(SUITE)
    for engine in (ref, fast):
        for device in devices:
            engine.upsert_device(device)
        for household, home in settings.items():
            engine.set_household(household, home)
    for call in calls:
        assert fast.process(call) == ref.process(call)
        assert _state(fast) == _state(ref)
        assert fast.snapshots() == ref.snapshots()
    assert fast.all_snapshots() == ref.all_snapshots()
    readings = sum(isinstance(r, MeterSample) for call in calls for r in call)
    # The fleet path carried most of the readings (the rest: hourly uploads below BATCH_MIN, and
    # days where something fires, which meter_batch and the per-reading path took).
    assert fast.fleet_readings > readings * 0.5, (fast.fleet_readings, readings)


def test_meters_whose_backstop_fired_stay_on_the_fleet_path_until_and_after_water_resumes() -> None:
    # Eight residents fall in the evening (the backstop fires next morning and waits for a use), lie
    # two and a half days, then use water again; daily uploads, all meters in every call.
    devices, per_meter = [], []
    for k in range(8):
        fall_h = (WARM_D + 1) * 24 + 19.0 + k * 0.5
        resident = Resident("h1", "m1", PROFILES["regular" if k % 2 else "weekend"], 100 + k)
        uses = [u for u in resident.uses(WARM_D + 6) if not fall_h <= u[0] < fall_h + 60]
        device = DeviceInfo(f"m{k}", DeviceType.WATER_METER, f"h{k}", 86400)  # daily uploads
        devices.append(device)
        samples = [
            replace(s, device_id=device.device_id, household_id=device.household_id) for s in day_of(uses, WARM_D + 5)
        ]
        per_meter.append(uploads(samples, [96]))
    ref, fast = Engine(SUITE, batch_path=False), Engine(SUITE)
    for engine in (ref, fast):
        for device in devices:
            engine.upsert_device(device)
    detectors: list[str] = []
    for day in range(len(per_meter[0])):
        call: list[Record] = [s for batches in per_meter for s in batches[day]]
        found = ref.process(call)
        assert fast.process(call) == found
        assert _state(fast) == _state(ref)
        assert fast.snapshots() == ref.snapshots()
        detectors += [f.detector for f in found]
    assert detectors.count("backstop:flat_12h") >= 8
    # Water resumed: one sign of life each, where the first use came (the per-reading path emits it).
    assert detectors.count("presence") >= 8
    # Off the fleet path: the days where the routine or the backstop fired, and the rest of the day
    # water resumed from its first use (meter_batch takes that: the first use ends the fleet day). The
    # quiet days on the floor stay on.
    readings = sum(map(len, (b for batches in per_meter for b in batches)))
    assert fast.fleet_readings > 0.85 * readings
    assert fast.batch_readings > 0.95 * readings  # (fleet_readings are counted in batch_readings too)
