"""Planning one local day of one home: every device's scheduled items for that day.

Called by ``engine.HomeRun`` when simulated time enters a new Shanghai calendar day. It draws the
resident's day (``profiles.plan_day``), turns it into fixture events (``water.day_events``), drops what
an incident prevents (a fall, a trip away), adds incident flows (tap left running, leak), and then:

- meter: the register at every 15-minute sample instant (numpy, ``water.usage_at``), resets where a
  meter was swapped or its battery replaced, uploads for batched meters, a daily status;
- smoke alarms: heartbeats, a rare ``test`` press, ``low_battery`` chirps at night once the battery
  drifts below 15 %, a routine battery swap some days later, and (kitchen alarm) a cooking false alarm
  followed by ``hush`` and ``alarm_cleared``;
- call button: heartbeats, ``service_request``s with a note (meals, cleaning, bathing, medicine),
  rare accidental presses (``sos`` then ``cancel`` within seconds).

Each routine event that carewatch should react to carries its ``TruthRecord``; the engine records it
when (and only if) the item is published inside the run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from schemas.kinds import AlertKind
from simulator import seeds
from simulator.devices import Home
from simulator.profiles import DayPlan, away_reason, plan_day
from simulator.scenarios import TruthRecord
from simulator.timefmt import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, local_day_start
from simulator.water import Fixture, WaterEvent, day_events, event_arrays, usage_at

if TYPE_CHECKING:
    from simulator.engine import DeviceRun

_SAMPLE_S = 900
_LOW_BATTERY = 15.0
# Everyday service requests through the one-touch device (为老服务一键通).
SERVICE_NOTES = (
    "助餐 meal delivery",
    "助洁 home cleaning",
    "助浴 bathing help",
    "配药 medicine pick-up",
    "维修 repair",
)


@dataclass(slots=True)
class DayContext:
    """What ``schedule_day`` needs across days: the home, its device runs and running totals."""

    seed: int
    home: Home
    devices: dict[str, DeviceRun]
    # True cumulative litres through the meter at the start of the next day to plan.
    register_l: float
    suppressed: list[tuple[int, int]]
    flows: list[tuple[int, int, float]]
    resets: list[int]
    truth: list[TruthRecord]
    start_ms: int
    end_ms: int
    # Litres to subtract from the true total: what the register showed before its last reset.
    offset_l: float = 0.0
    low_since: dict[str, int] = field(default_factory=dict)
    last_away: int = -1

    def idle(self, t_ms: int) -> bool:
        return any(s <= t_ms < e for s, e in self.suppressed)


def schedule_day(ctx: DayContext, day: int) -> None:
    """Push every item of ``day`` onto the devices' heaps (see the module docstring)."""
    home = ctx.home
    day_start = local_day_start(day)
    rng = seeds.rng(ctx.seed, seeds.DAY, home.index, day)
    plan = plan_day(home.profile, ctx.seed, home.index, day, rng)
    if not plan.at_home:
        _record_away(ctx, day, day_start)
    events = day_events(home.profile, plan, rng)
    if ctx.suppressed:
        events = [e for e in events if not ctx.idle(day_start + e.start_s * 1000)]
    _schedule_meter(ctx, day_start, events, rng)
    for slot in ("sa1", "sa2"):
        if slot in ctx.devices:
            _schedule_smoke(ctx, slot, day, day_start, plan, events, rng)
    _schedule_button(ctx, day_start, plan, rng)


def _every(day_start: int, phase_s: int, interval_s: int) -> range:
    first = day_start + (phase_s * 1000 - day_start) % (interval_s * 1000)
    return range(first, day_start + DAY_MS, interval_s * 1000)


def _schedule_meter(ctx: DayContext, day_start: int, events: list[WaterEvent], rng: random.Random) -> None:
    run = ctx.devices["wm"]
    meter = run.device
    day_end = day_start + DAY_MS
    # Routine battery swap on an electronic register: it restarts from zero (about once in 4 years).
    if rng.random() < 1 / 1500:
        at = day_start + int(rng.uniform(9, 17) * HOUR_MS)
        ctx.resets.append(at)
        run.push(at, "status_back", _truth(ctx, "battery_swap", at, at, None, meter.device_id))
    for s, e, rate in ctx.flows:
        lo, hi = max(s, day_start), min(e, day_end)
        if lo < hi:
            events.append(
                WaterEvent((lo - day_start) // 1000, max(1, (hi - lo) // 1000), rate * (hi - lo), Fixture.TOILET)
            )
    starts, durations, litres = event_arrays(events)
    samples = np.arange(meter.phase_s % _SAMPLE_S, 86_400, _SAMPLE_S, dtype=np.float64)
    resets = sorted(r for r in ctx.resets if day_start <= r < day_end)
    reset_s = np.array([(r - day_start) / 1000 for r in resets], dtype=np.float64)
    usage = usage_at(np.concatenate([samples, reset_s]), starts, durations, litres)
    true_total = ctx.register_l + usage[: samples.size]
    offsets = np.full(samples.size, ctx.offset_l)
    for i, at_s in enumerate(reset_s):
        ctx.offset_l = ctx.register_l + float(usage[samples.size + i])
        offsets[samples >= at_s] = ctx.offset_l
    shown = true_total - offsets
    ctx.register_l += float(litres.sum())
    run.readings = run.readings[run.cursor :] + [
        (day_start + int(at_s) * 1000, value) for at_s, value in zip(samples.tolist(), shown.tolist(), strict=True)
    ]
    run.cursor = 0
    if meter.meter_mode is not None and meter.meter_mode != "live":
        for t in _every(day_start, meter.phase_s, meter.meter_mode.upload_period_s):
            # NB-IoT uploads land a little after the last stored reading.
            run.push(t + 30 * SECOND_MS, "upload")
    for t in _every(day_start, meter.phase_s, 86_400):
        run.push(t + 45 * SECOND_MS, "status")


def _schedule_smoke(
    ctx: DayContext, slot: str, day: int, day_start: int, plan: DayPlan, events: list[WaterEvent], rng: random.Random
) -> None:
    run = ctx.devices[slot]
    device = run.device
    for t in _every(day_start, device.phase_s, device.expected_interval_s):
        run.push(t, "status")
    run.battery -= rng.uniform(0.005, 0.03)
    if run.battery < _LOW_BATTERY:
        since = ctx.low_since.setdefault(slot, day)
        chirp = day_start + int(rng.uniform(2, 4) * HOUR_MS)
        first = (
            _truth(ctx, "low_battery", chirp, chirp, AlertKind.MAINTENANCE, device.device_id) if since == day else None
        )
        run.push(chirp, "smoke_low_battery", (None, first))
        # A volunteer or the resident replaces the battery a few days after the chirping starts.
        if day - since >= 2 + int(seeds.unit(ctx.seed, seeds.SWAP, device.ordinal) * 6):
            at = day_start + int(rng.uniform(9, 17) * HOUR_MS)
            run.push(at, "status_back", _truth(ctx, "battery_swap", at, at, None, device.device_id))
            run.battery = 100.0
            del ctx.low_since[slot]
    if rng.random() < 1 / 30 and plan.at_home:
        at = day_start + int(rng.uniform(9, 17) * HOUR_MS)
        if plan.home_at((at - day_start) // 1000) and not ctx.idle(at):
            run.push(at, "smoke_test", (None, _truth(ctx, "smoke_test", at, at, None, device.device_id)))
    if slot != "sa1":
        return
    last_meal = -(10**9)
    for event in events:
        if event.fixture is not Fixture.COOKING or event.start_s - last_meal < 3600:
            continue
        last_meal = event.start_s
        if rng.random() < 0.01:
            alarm = day_start + event.start_s * 1000 + int(rng.uniform(3, 15) * MINUTE_MS)
            hush = alarm + int(rng.uniform(10, 60) * SECOND_MS)
            cleared = hush + int(rng.uniform(2, 6) * MINUTE_MS)
            truth = _truth(ctx, "cooking_false_alarm", alarm, cleared, AlertKind.SMOKE, device.device_id)
            run.push(alarm, "smoke_alarm", (None, truth))
            run.push(hush, "smoke_hush")
            run.push(cleared, "smoke_alarm_cleared")


def _schedule_button(ctx: DayContext, day_start: int, plan: DayPlan, rng: random.Random) -> None:
    run = ctx.devices["cb"]
    device = run.device
    for t in _every(day_start, device.phase_s, device.expected_interval_s):
        run.push(t, "status")
    # Recharged on its base, never flat, and never down to carewatch's 20 % battery notice.
    run.battery = max(run.battery - rng.uniform(0.02, 0.08), 25.0)
    if not plan.at_home:
        return
    awake = (plan.wake_s + 1800, plan.bed_s - 1800)
    if rng.random() < 0.15:
        at = day_start + int(rng.uniform(*awake)) * 1000
        if plan.home_at((at - day_start) // 1000) and not ctx.idle(at):
            note = rng.choice(SERVICE_NOTES)
            truth = _truth(ctx, "service_request", at, at, AlertKind.SERVICE_REQUEST, device.device_id, note=note)
            run.push(at, "call_service_request", (note, truth))
    if rng.random() < 0.02:
        at = day_start + int(rng.uniform(*awake)) * 1000
        if plan.home_at((at - day_start) // 1000) and not ctx.idle(at):
            cancel = at + int(rng.uniform(5, 25) * SECOND_MS)
            # The press is an sos like any other (carewatch cannot know yet); the cancel only annotates it.
            truth = _truth(ctx, "accidental_press", at, cancel, AlertKind.SOS, device.device_id)
            run.push(at, "call_sos", (None, truth))
            run.push(cancel, "call_cancel")


def _record_away(ctx: DayContext, day: int, day_start: int) -> None:
    """One truth record per absence (consecutive days merged); such days are announced by the family."""
    reason = away_reason(ctx.home.profile, ctx.seed, ctx.home.index, day) or "away"
    start, end = max(day_start, ctx.start_ms), min(day_start + DAY_MS, ctx.end_ms)
    if start >= end:
        return
    last = ctx.truth[ctx.last_away] if ctx.last_away >= 0 else None
    if last is not None and last.kind == reason and last.end_ms == start:
        ctx.truth[ctx.last_away] = TruthRecord(
            "routine", reason, last.household_id, last.start_ms, end, None, None, {"announced": True}
        )
        return
    ctx.truth.append(TruthRecord("routine", reason, ctx.home.household_id, start, end, None, None, {"announced": True}))
    ctx.last_away = len(ctx.truth) - 1


def _truth(
    ctx: DayContext, kind: str, start: int, end: int, alert: AlertKind | None, device_id: str, note: str | None = None
) -> TruthRecord:
    detail: dict[str, object] = {"note": note} if note else {}
    return TruthRecord("routine", kind, ctx.home.household_id, start, end, alert, device_id, detail)
