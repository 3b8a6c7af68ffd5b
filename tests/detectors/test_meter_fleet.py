"""Many meters in one call (detectors/meter_fleet.py) is exactly the per-reading path, meter by meter.

test_meter_batch.py proves the bulk path with one meter per engine; here every call carries the uploads
of many meters at once (different zones, batch shapes, incidents, households with settings, a smoke
alarm beside some of them), so the fleet path stacks them into shared arrays. Two engines, bulk path on
and off, are compared after every call: findings, snapshots, raw state (floats bit for bit), timers.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from detectors import Engine, HouseholdSettings, meter_fleet
from detectors.testing import PROFILES, Resident
from schemas.kinds import DeviceType
from schemas.records import DeviceEvent, DeviceInfo, MeterSample, Record, StatusReport
from tests.detectors.test_meter_batch import BUTTON, METER, SMOKE, SUITE, WARM_D, _state, day_of, scenario, uploads

# Every scenario moved to start here (they start near their zone's DST change; from here each zone still
# changes inside the scenario: London 31 March, New York 10 March, Santiago and Lord Howe 7 April), so the
# calls of one hour carry what the meters sent in that hour and processing time runs forward for all.
START = datetime(2024, 3, 2, 7, tzinfo=UTC)


def fleet_calls(seeds: range) -> tuple[list[DeviceInfo], dict[str, HouseholdSettings], list[list[Record]]]:
    """The scenarios' uploads, one household per seed, merged into a call per hour of receipt (shuffled
    within each call), as the live runner's rounds take them."""
    devices: list[DeviceInfo] = []
    settings: dict[str, HouseholdSettings] = {}
    per_meter: list[list[list[Record]]] = []
    for seed in seeds:
        _, home, batches = scenario(seed)
        household = f"h{seed}"
        delta = START - batches[0][0].ts
        # The scenario's meter m1, call button c1 and smoke alarm s1, as this household's.
        ids = {d.device_id: f"{d.device_id[0]}{seed}" for d in (METER, BUTTON, SMOKE)}
        devices += [replace(d, device_id=ids[d.device_id], household_id=household) for d in (METER, BUTTON, SMOKE)]
        if seed % 3:  # most registered as what they mostly are, daily-upload meters; the rest as 15-minute
            devices[-3] = replace(devices[-3], expected_interval_s=86400)
        settings[household] = replace(
            home, away=tuple(replace(p, start=p.start + delta, end=p.end + delta) for p in home.away)
        )
        per_meter.append(
            [
                [
                    replace(
                        r,
                        device_id=ids[r.device_id],
                        household_id=household,
                        ts=r.ts + delta,
                        received_at=r.received_at + delta,
                    )
                    for r in b
                ]
                for b in batches
            ]
        )
    # A second meter in the first household, reading what the first reads, and now and then losing its
    # connection (its Last Will names the household's devices heard lately: an order that matters).
    first, home = devices[0].device_id, devices[0].household_id
    devices.append(DeviceInfo(f"{first}b", DeviceType.WATER_METER, home, 900))
    per_meter.append(
        [[replace(r, device_id=f"{first}b") for r in b if isinstance(r, MeterSample)] for b in per_meter[0]]
    )
    hours: dict[int, list[Record]] = {}
    for m, batches in enumerate(per_meter):
        for k, upload in enumerate(batches):
            if not upload:
                continue
            at = max(r.received_at for r in upload)
            call = hours.setdefault(int((at - START).total_seconds() // 3600), [])
            call.extend(upload)
            if m == 0 and k % 4 == 1:  # at the first meter's upload time, the second meter's Last Will
                call.append(StatusReport(f"{first}b", home, DeviceType.WATER_METER, at, k, False, at))
    rng = random.Random(len(seeds))
    calls: list[list[Record]] = []
    for hour in sorted(hours):
        call = hours[hour]
        at = max(r.received_at for r in call)
        if hour >= WARM_D * 24 and hour % 23 == 0:  # a smoke alarm's test press beside two of the meters
            for household in ("h1", "h2"):
                call.append(DeviceEvent(f"s-{household}", household, DeviceType.SMOKE_ALARM, at, hour, "test", at))
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
    detectors: set[str] = set()
    for call in calls:
        found = ref.process(call)
        assert fast.process(call) == found
        # The timers too (silence, the silence rule), at the call's latest receive time.
        now = max(r.received_at for r in call)
        ticked = ref.tick(now)
        assert fast.tick(now) == ticked
        detectors |= {f.detector for f in found + ticked}
        assert fast.next_timer() == ref.next_timer()
        assert _state(fast) == _state(ref)
        assert fast.snapshots() == ref.snapshots()
    assert fast.all_snapshots() == ref.all_snapshots()
    readings = sum(isinstance(r, MeterSample) for call in calls for r in call)
    # The fleet path carried most of the readings (the rest: hourly uploads below BATCH_MIN, and
    # days where something fires, which meter_batch and the per-reading path took).
    assert fast.fleet_readings > readings * 0.5, (fast.fleet_readings, readings)
    assert {"silence", "presence", "backstop:flat_12h", "routine"} <= detectors


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
