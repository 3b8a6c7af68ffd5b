"""The meter's bulk path (detectors/meter_batch.py) is exactly the per-reading path.

Differential: every scenario is fed to two engines, one with ``batch_path=False`` (the reference, every
reading through ``MeterLogic.on_reading``) and one with the bulk path, call by call with the same ticks
in between. After every call the findings (all fields), every snapshot, the raw in-memory state (floats
compared bit for bit: snapshots round some of them) and the next timer must be equal. Each test also
asserts that the bulk path actually ran (``Engine.batch_readings``), or it would prove nothing.

Scenarios: seeded random residents (the three profiles) on 15-minute and hourly grids, uploaded in
batches of 1..200 readings (and hourly uploads of four), in a fixed-offset zone and in DST zones around
their changes (including one that changes at midnight), with falls, taps left running, standing leaks,
excess use, register resets and glitches, late and duplicated readings, away periods and quiet windows;
plus hand-built cases that pin down one event inside a batch each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
import pytest

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, Period, QuietWindow
from detectors.meter_batch import BATCH_MIN
from detectors.testing import PROFILES, Resident, hours_to_dt, meter_samples
from schemas.findings import AlertClosure, Finding, FindingAction
from schemas.kinds import AlertKind, DeviceType
from schemas.records import DeviceEvent, DeviceInfo, MeterSample, Record, StatusReport

SUITE = DetectorSuiteConfig()
_REARMING = (AlertKind.INACTIVITY, AlertKind.ROUTINE_MISSED)
METER = DeviceInfo("m1", DeviceType.WATER_METER, "h1", 900)
WARM_D = 28


def _raw(obj: Any) -> Any:
    """An object's slots, recursively, floats as their exact bit pattern (caches left out)."""
    if isinstance(obj, float):
        return ("f", obj.hex()) if math.isfinite(obj) else ("f", repr(obj))
    if isinstance(obj, tuple | list):
        return [_raw(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _raw(v) for k, v in obj.items()}
    slots = getattr(type(obj), "__slots__", None)
    if slots is None or isinstance(obj, DeviceInfo | DetectorSuiteConfig):
        return obj
    return {s: _raw(getattr(obj, s)) for s in slots if not s.startswith("_") and s not in ("cfg", "device")}


def _state(engine: Engine) -> dict[str, Any]:
    return {
        key: (_raw(engine._health[key]), _raw(engine._logic[key]))  # the test looks inside
        for key in sorted(engine._logic)
    }


class Pair:
    """A reference engine and a bulk-path engine, fed identically and compared after every call."""

    def __init__(
        self, cfg: DetectorSuiteConfig = SUITE, settings: HouseholdSettings | None = None, *devices: DeviceInfo
    ) -> None:
        self.ref = Engine(cfg, batch_path=False)
        self.fast = Engine(cfg)
        for e in (self.ref, self.fast):
            for device in devices or (METER,):
                e.upsert_device(device)
            if settings is not None:
                e.set_household(METER.household_id, settings)
        self.findings: list[Finding] = []
        self.readings = 0

    def feed(self, batch: Sequence[Record]) -> None:
        now = max(r.received_at for r in batch)
        timer = self.ref.next_timer()
        assert timer == self.fast.next_timer()
        while timer is not None and timer < now:
            self.check(self.ref.tick(timer), self.fast.tick(timer))
            timer = self.ref.next_timer()
        self.check(self.ref.process(batch), self.fast.process(batch))
        self.readings += len(batch)

    def close(self, closure: AlertClosure) -> None:
        """A resolved alert reaches both engines between calls, as the live runner applies it."""
        self.ref.alert_closed(closure)
        self.fast.alert_closed(closure)
        self.check([], [])

    def check(self, expected: list[Finding], got: list[Finding]) -> None:
        assert got == expected
        assert _state(self.fast) == _state(self.ref)
        assert self.fast.snapshots() == self.ref.snapshots()
        assert self.fast.next_timer() == self.ref.next_timer()
        self.findings.extend(expected)

    def finish(self) -> None:
        assert self.fast.all_snapshots() == self.ref.all_snapshots()
        assert self.ref.batch_readings == 0

    def kinds(self) -> set[str]:
        return {f.detector for f in self.findings}


def uploads(samples: list[MeterSample], sizes: Sequence[int]) -> list[list[MeterSample]]:
    """Cut readings into uploads of the given sizes (cycled), each received when its last reading was."""
    out: list[list[MeterSample]] = []
    i, k = 0, 0
    while i < len(samples):
        chunk = samples[i : i + sizes[k % len(sizes)]]
        received = chunk[-1].ts + timedelta(minutes=1)
        out.append([replace(s, received_at=received) for s in chunk])
        i += len(chunk)
        k += 1
    return out


def shifted(samples: list[MeterSample], start: datetime) -> list[MeterSample]:
    delta = start - samples[0].ts
    return [replace(s, ts=s.ts + delta, received_at=s.received_at + delta) for s in samples]


# Randomised scenarios ------------------------------------------------------------------------------------
ZONES = ("Asia/Shanghai", "Europe/London", "America/New_York", "America/Santiago", "Australia/Lord_Howe")
# DST changes to land inside the scenario (UTC): London spring/autumn, New York spring, Santiago at
# local midnight (the local day repeats an hour), Lord Howe's half-hour change.
DST_STARTS = {
    "Asia/Shanghai": datetime(2024, 1, 1, tzinfo=UTC),
    "Europe/London": datetime(2024, 3, 2, tzinfo=UTC),
    "America/New_York": datetime(2024, 10, 5, tzinfo=UTC),
    "America/Santiago": datetime(2024, 3, 9, tzinfo=UTC),
    "Australia/Lord_Howe": datetime(2024, 3, 9, tzinfo=UTC),
}


BUTTON = DeviceInfo("c1", DeviceType.CALL_BUTTON, "h1", 3600)
SMOKE = DeviceInfo("s1", DeviceType.SMOKE_ALARM, "h1", 6 * 3600)
# Signs of life the household's other devices send (each resets the meter's quiet clock).
SIGNS = ((BUTTON, "sos"), (BUTTON, "cancel"), (BUTTON, "service_request"), (BUTTON, "checkin_ok"), (SMOKE, "test"))


def lose(samples: list[MeterSample], rng: np.random.Generator) -> list[MeterSample]:
    """Transmissions lost as NB-IoT meters lose them: runs of 4-25 h, never back-filled (the register
    carries the total when they resume), about one in twenty of the time."""
    out, i = [], 0
    while i < len(samples):
        if rng.random() < 0.05 * 15 / 900:  # per reading: ~1 run per 8 days at 14.5 h each
            end = samples[i].ts + timedelta(hours=float(rng.uniform(4, 25)))
            while i < len(samples) and samples[i].ts < end:
                i += 1
            continue
        out.append(samples[i])
        i += 1
    return out


def scenario(seed: int) -> tuple[DetectorSuiteConfig, HouseholdSettings, list[list[Record]]]:
    rng = np.random.default_rng(seed)
    names = list(PROFILES)
    profile = PROFILES[names[seed % 3]]
    zone = ZONES[int(rng.integers(len(ZONES)))]
    days = WARM_D + int(rng.integers(3, 9))
    uses = Resident("h1", "m1", profile, seed).uses(days + 1)
    incident = int(rng.integers(7))
    t_inc = WARM_D * 24 + float(rng.uniform(0, (days - WARM_D - 1) * 24))
    if incident == 0:  # a fall: no water from then on
        uses = [u for u in uses if u[0] < t_inc]
    flow = None
    if incident == 1:  # a tap left running
        flow = (t_inc, t_inc + float(rng.uniform(0.5, 3)), float(rng.uniform(3, 8)))
    elif incident == 2:  # a standing leak from the start
        flow = (0.0, days * 24.0, float(rng.uniform(0.02, 0.2)))
    elif incident == 3:  # excess use (a burst pipe)
        flow = (t_inc, t_inc + 6, 10.0)
    step = 15 if rng.random() < 0.7 else 60
    samples = list(meter_samples("m1", "h1", uses, 0, days * 24.0, step_min=step, flow=flow))
    if incident == 4:  # a register reset (meter swap) and a one-reading glitch
        i = int(rng.integers(WARM_D * 24 * 60 // step, len(samples) - 5))
        samples = samples[:i] + [replace(s, register_l=s.register_l - 900.0) for s in samples[i:]]
        g = i + int(rng.integers(1, 4))
        samples[g] = replace(samples[g], register_l=samples[g].register_l + 50_000.0)
    samples = shifted(samples, DST_STARTS[zone] + timedelta(hours=float(rng.uniform(0, 24))))
    away: tuple[Period, ...] = ()
    if incident == 5:  # an away period, possibly inside a batch
        a = samples[int(rng.integers(WARM_D * 24 * 60 // step, len(samples) - 2))].ts
        away = (Period(a, a + timedelta(hours=float(rng.uniform(2, 40))), str(rng.choice(["away", "hospital"]))),)
    quiet = (QuietWindow(time(22), time(7)),) if rng.random() < 0.3 else ()
    # The check-in era's additions draw from their own generator: the draws above stay as they were.
    more = np.random.default_rng(10_000 + seed)
    lead = float(more.choice([0.0, 0.0, 1200.0, 1800.0, 5400.0]))
    if not away and more.random() < 0.25:  # the "away" answer: until the first sign of life, at most 72 h
        a = samples[int(more.integers(WARM_D * 24 * 60 // step, len(samples) - 2))].ts
        away = (Period(a, a + timedelta(hours=float(more.uniform(6, 72))), "away", until_use=True),)
    settings = HouseholdSettings(timezone=zone, away=away, quiet=quiet, checkin_lead_s=lead)
    cfg = SUITE
    if rng.random() < 0.15:
        cfg = replace(cfg, excess=replace(cfg.excess, daily_max_l=float(rng.uniform(150, 400))))
    # Uploads: warm-up by day, then random batch sizes, hourly uploads of four, or whole days.
    per_day = 24 * 60 // step
    warm, rest = samples[: WARM_D * per_day], samples[WARM_D * per_day :]
    batches: list[list[Record]] = list(uploads(warm, [per_day]))
    shape = int(rng.integers(3))
    sizes = [int(x) for x in rng.integers(1, 201, 50)] if shape == 0 else [4] if shape == 1 else [per_day]
    if more.random() < 0.5:
        rest = lose(rest, more)
    later: list[list[Record]] = list(uploads(rest, sizes))
    if incident == 6 and len(later) > 2:  # late readings and duplicates: part of one batch again, later
        k = int(rng.integers(len(later) - 1))
        again = later[k][: int(rng.integers(1, len(later[k]) + 1))]
        received = later[k + 1][-1].received_at
        later[k + 1] = [*later[k + 1], *(replace(s, received_at=received) for s in again)]
        later[k + 1].reverse()  # committed out of order: the engine sorts per device
    if more.random() < 0.6:
        with_signs(later, more)
    return cfg, settings, batches + later


def with_signs(later: list[list[Record]], rng: np.random.Generator) -> None:
    """Presses and smoke tests, inside uploads (at a device time among their readings) and on their own
    between them (in the order received: the highest upload first, so the indexes stay valid)."""
    for k in sorted(rng.choice(len(later), size=min(len(later), int(rng.integers(1, 6))), replace=False))[::-1]:
        device, kind = SIGNS[int(rng.integers(len(SIGNS)))]
        upload = later[k]
        when = upload[int(rng.integers(len(upload)))].ts + timedelta(minutes=float(rng.uniform(0, 20)))
        sign = DeviceEvent(device.device_id, "h1", device.device_type, when, int(k), kind, when)
        if kind == "checkin_ok":
            sign = replace(sign, checkin_id=f"ck{k}")
        if rng.random() < 0.5:
            later[k] = [*upload, replace(sign, received_at=max(r.received_at for r in upload))]
        else:
            later.insert(k + 1, [replace(sign, ts=upload[-1].received_at, received_at=upload[-1].received_at)])


SEEDS = range(48)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_scenarios_match_the_per_reading_path(seed: int) -> None:
    cfg, settings, batches = scenario(seed)
    pair = Pair(cfg, settings, METER, BUTTON, SMOKE)
    closes = np.random.default_rng(20_000 + seed)
    for batch in batches:
        seen = len(pair.findings)
        pair.feed(batch)
        # Alerts resolved now and then (the resident answered the check-in): their latches end.
        for f in pair.findings[seen:]:
            if f.action is FindingAction.RAISE and f.kind in _REARMING and closes.random() < 0.5:
                pair.close(AlertClosure("h1", f.kind, f.device_id, f.detected_at + timedelta(minutes=20)))
    pair.finish()
    # The warm-up alone is 28 daily uploads: the bulk path must have carried most of them.
    assert pair.fast.batch_readings > pair.readings // 2


def test_the_random_scenarios_raise_findings_and_mostly_ran_in_bulk() -> None:
    """The scenarios above are not trivially quiet, and the bulk path carried most of their readings."""
    detectors: set[str] = set()
    readings = bulk = 0
    for seed in SEEDS:
        cfg, settings, batches = scenario(seed)
        engine = Engine(cfg)
        for device in (METER, BUTTON, SMOKE):
            engine.upsert_device(device)
        engine.set_household(METER.household_id, settings)
        for batch in batches:
            found = engine.tick(max(r.received_at for r in batch)) + engine.process(batch)
            detectors |= {f.detector for f in found if f.action is not FindingAction.PRESENCE}
            # Presence by what showed it, and the quiet stretches a sign of life began.
            detectors |= {f"presence:{f.details['signal']}" for f in found if f.action is FindingAction.PRESENCE}
            detectors |= {f"{f.detector}+sign" for f in found if "sign_of_life" in f.details}
            readings += sum(isinstance(r, MeterSample) for r in batch)
        bulk += engine.batch_readings
    assert {"backstop:flat_12h", "routine", "flow_running", "flow_standing", "excessive_use"} <= detectors
    assert {"flow_overnight", "flow_all_day", "health_offline", "silence"} <= detectors
    assert {"presence:water", "presence:press", "presence:smoke", "presence:flow_stopped"} <= detectors
    assert {"backstop:flat_12h+sign", "silence+sign"} <= detectors, detectors
    assert bulk / readings > 0.8


# Hand-built: one event inside a batch each -----------------------------------------------------------------
def day_of(uses: list[tuple[float, float]], days: int, **kw: Any) -> list[MeterSample]:
    return list(meter_samples("m1", "h1", uses, 0, days * 24.0, **kw))


def regular(days: int) -> list[tuple[float, float]]:
    return Resident("h1", "m1", PROFILES["regular"], 7).uses(days + 1)


def run(samples: list[MeterSample], sizes: Sequence[int], cfg: DetectorSuiteConfig = SUITE, **kw: Any) -> Pair:
    pair = Pair(cfg, HouseholdSettings(**kw) if kw else None)
    for batch in uploads(samples, sizes):
        pair.feed(batch)
    pair.finish()
    return pair


@pytest.mark.parametrize("size", [1, 2, 15, 16, 17, 48, 96, 97, 200])
def test_uneventful_days_go_in_bulk_for_every_batch_size(size: int) -> None:
    pair = run(day_of(regular(WARM_D + 2), WARM_D + 2), [size])
    # Each upload follows a silence (the meter went offline): its first reading brings it back one by
    # one, so an upload needs BATCH_MIN more readings to go in bulk.
    if size > BATCH_MIN:
        assert pair.fast.batch_readings > pair.readings * 0.9
    else:
        assert pair.fast.batch_readings == 0


def test_a_fall_fires_the_backstop_and_the_routine_inside_a_daily_batch() -> None:
    fall_h = (WARM_D + 1) * 24 + 9.0
    uses = [u for u in regular(WARM_D + 3) if u[0] < fall_h]
    pair = run(day_of(uses, WARM_D + 3), [96])
    assert {"backstop:flat_12h", "routine"} <= pair.kinds()
    assert pair.fast.batch_readings > pair.readings * 0.8


def test_after_the_backstop_fired_the_days_without_water_and_the_first_use_go_in_bulk() -> None:
    # A fall after the evening wash: the routine fires at 08:15, the backstop at 09:30 (its latch waits
    # for the next use). Two and a half days on the floor, then water again (found, or home from an
    # unannounced trip): the quiet days go in bulk, latch and all; the first use is news (presence).
    # (A daily-upload meter, registered as one: between uploads it is not silent.)
    fall_h = (WARM_D + 1) * 24 + 22.0
    uses = [u for u in regular(WARM_D + 5) if not fall_h <= u[0] < fall_h + 60]
    pair = Pair(SUITE, None, replace(METER, expected_interval_s=86400))
    for batch in uploads(day_of(uses, WARM_D + 5), [96]):
        pair.feed(batch)
    pair.finish()
    fell = hours_to_dt(fall_h)
    later = [f for f in pair.findings if f.detected_at > fell and f.detector != "health_offline"]
    assert [f.detector for f in later if f.action is FindingAction.RAISE] == ["routine", "backstop:flat_12h"]
    # The first use after them is a sign of life (presence), emitted by the per-reading path.
    [back] = [f.at for f in later if f.action is FindingAction.PRESENCE and f.at > fell]
    assert back >= hours_to_dt(fall_h + 60)
    # Per reading: the readings where the two fired and the one where water resumed (presence), each
    # followed by the bulk path's next tries.
    assert pair.readings - pair.fast.batch_readings < 40


def test_an_inactivity_alert_resolved_while_still_quiet_counts_twelve_hours_again_in_bulk() -> None:
    # The backstop fires for a fall at 22:00 (its daily upload arrives at midnight); a caregiver resolves
    # the alert an hour later (wrongly: nobody answered the door) and nobody uses water for days: 12 h
    # after the resolution the backstop raises again, on the bulk path as on the per-reading path.
    fall_h = (WARM_D + 1) * 24 + 22.0
    uses = [u for u in regular(WARM_D + 5) if not fall_h <= u[0] < fall_h + 60]
    pair = Pair()
    closed: datetime | None = None
    for batch in uploads(day_of(uses, WARM_D + 5), [96]):
        pair.feed(batch)
        fired = [f for f in pair.findings if f.detector == "backstop:flat_12h" and f.at > hours_to_dt(fall_h - 2)]
        if fired and closed is None:
            closed = fired[0].detected_at + timedelta(hours=1)
            pair.close(AlertClosure("h1", AlertKind.INACTIVITY, "m1", closed))
    pair.finish()
    assert closed is not None
    backstop = [f for f in pair.findings if f.detector == "backstop:flat_12h" and f.at > hours_to_dt(fall_h - 2)]
    assert len(backstop) == 2
    assert backstop[0].at < hours_to_dt(fall_h)  # the last use before the fall
    assert backstop[1].at == closed  # twelve more hours without water from the resolution
    assert backstop[1].detected_at >= closed + timedelta(hours=12)  # (with the next daily upload)
    # The routine said its piece once for the stretch; the resolution does not wake it again.
    assert [f.detector for f in pair.findings if f.detector == "routine" and f.at >= closed] == []
    assert pair.fast.batch_readings > pair.readings * 0.8


def test_hourly_batches_crossing_local_midnight() -> None:
    # 24 readings a batch, starting at 13:00: every batch crosses midnight (the ledger closes a day).
    samples = day_of(regular(WARM_D + 4), WARM_D + 4)[52:]
    pair = run(samples, [96])
    assert pair.fast.batch_readings > pair.readings * 0.9
    hourly = day_of(regular(WARM_D + 4), WARM_D + 4, step_min=60)[13:]
    assert run(hourly, [24]).fast.batch_readings > len(hourly) * 0.9


@pytest.mark.parametrize("zone", ["Europe/London", "America/Santiago", "Australia/Lord_Howe"])
def test_daily_batches_across_dst_changes(zone: str) -> None:
    samples = shifted(day_of(regular(WARM_D + 6), WARM_D + 6), DST_STARTS[zone])
    pair = run(samples, [96], timezone=zone)
    assert pair.fast.batch_readings > pair.readings * 0.9


def test_a_tap_left_running_and_excess_use_inside_batches() -> None:
    start = (WARM_D + 1) * 24 + 10.0
    pair = run(day_of(regular(WARM_D + 3), WARM_D + 3, flow=(start, start + 5.0, 8.0)), [96])
    assert {"flow_running", "excessive_use"} <= pair.kinds()
    assert pair.fast.batch_readings > pair.readings * 0.8


def test_a_standing_leak_learned_mid_batch() -> None:
    pair = run(day_of(regular(WARM_D + 2), WARM_D + 2, flow=(0.0, 1e6, 0.1)), [40])
    assert {"flow_standing", "flow_overnight", "flow_all_day"} <= pair.kinds()
    assert pair.fast.batch_readings > pair.readings * 0.5


def test_register_reset_and_glitch_inside_a_batch() -> None:
    samples = day_of(regular(WARM_D + 3), WARM_D + 3)
    i = (WARM_D + 1) * 96 + 40
    samples = samples[:i] + [replace(s, register_l=s.register_l - 900.0) for s in samples[i:]]
    samples[i + 30] = replace(samples[i + 30], register_l=samples[i + 30].register_l + 9e4)
    pair = run(samples, [96])
    assert pair.ref.all_snapshots()["dev:m1"]["logic"]["resets"] == 2
    assert pair.fast.batch_readings > pair.readings * 0.9


def test_late_and_duplicate_readings_inside_a_batch() -> None:
    samples = day_of(regular(WARM_D + 3), WARM_D + 3)
    batches = uploads(samples, [96])
    extra = [replace(s, received_at=batches[-2][-1].received_at) for s in batches[-3][40:60]]
    batches[-2] = extra + batches[-2] + batches[-2][10:12]
    pair = Pair()
    for batch in batches:
        pair.feed(batch)
    pair.finish()
    assert pair.ref.all_snapshots()["dev:m1"]["logic"]["late"] == 20
    assert pair.fast.batch_readings > pair.readings * 0.9


def test_away_periods_touching_and_not_touching_batches() -> None:
    samples = day_of(regular(WARM_D + 6), WARM_D + 6)
    base = samples[(WARM_D + 1) * 96].ts
    away = (
        Period(base - timedelta(days=20), base - timedelta(days=19)),
        Period(base + timedelta(hours=30), base + timedelta(hours=50), "hospital"),
    )
    pair = run(samples, [96], timezone="Asia/Shanghai", away=away)
    assert pair.fast.batch_readings > pair.readings * 0.7


def test_a_program_rule_keeps_every_reading_on_the_per_reading_path() -> None:
    cfg = replace(SUITE, flat_rules=(replace(SUITE.flat_rules[0], personal=False),))
    pair = run(day_of(regular(WARM_D + 2), WARM_D + 2), [96], cfg)
    assert pair.fast.batch_readings == 0


def test_an_offline_meter_comes_back_on_its_first_reading_then_goes_in_bulk() -> None:
    samples = day_of(regular(WARM_D + 2), WARM_D + 2)
    pair = run(samples, [96])  # daily uploads: offline after 30 min of silence every day
    assert any(f.kind is AlertKind.DEVICE_OFFLINE and f.action.value == "annotate" for f in pair.findings)
    assert pair.fast.batch_readings > pair.readings * 0.9


def test_status_reports_and_an_all_late_upload_inside_batches() -> None:
    samples = day_of(regular(WARM_D + 3), WARM_D + 3)
    batches = uploads(samples, [96])
    report = StatusReport(
        "m1", "h1", DeviceType.WATER_METER, batches[-2][50].ts, 1, True, batches[-2][-1].received_at, 15
    )
    batches[-2] = [*batches[-2], report]
    # Yesterday's readings uploaded again, all of them late (each only counts as late).
    batches.append([replace(s, received_at=batches[-1][-1].received_at) for s in batches[-2][:-1]])
    pair = Pair()
    for batch in batches:
        pair.feed(batch)
    pair.finish()
    assert "health_battery" in pair.kinds()
    assert pair.ref.all_snapshots()["dev:m1"]["logic"]["late"] == 96
    assert pair.fast.batch_readings > pair.readings * 0.9
