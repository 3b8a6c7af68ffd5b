"""One local day of many meters' readings screened and, where nothing can fire, applied at once.

:mod:`detectors.meter_fleet` stacks an engine call's meter uploads into rows and cuts them into local
days; this module takes one such day for a chunk of meters (a row each): :class:`DayRows` holds the
readings and, as columns, what each meter's state says about them; :func:`screen_day` runs the screens
of :mod:`detectors.meter_batch` on the 2-D arrays (backstop, routine, the three flow rules, the
standing-flow notice, excess use, the series rules) and commits the rows where nothing can fire: the
state on_reading would leave, bit for bit (``np.cumsum`` along the row for every running sum, 0.0 for
a left-out term; rows of a day have equal length, so nothing is padded). The routine's limits for the
day are computed for every meter that needs them in one call
(:func:`detectors.routine_fleet.quiet_limits_many`) and primed into each meter's cache.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import numpy as np

from detectors.context import DAY_S, SLOTS_PER_DAY, HouseholdView
from detectors.daily import MAX_COVERED_INTERVAL_S
from detectors.flow import FlowLogic, standing_lph
from detectors.meter import MeterLogic
from detectors.meter_batch import clock_seconds
from detectors.presence import backstop_window_s
from detectors.routine_fleet import Limits, quiet_limits_many

NAN = math.nan


class FleetMeter:
    """One meter's upload while the fleet path holds it (meter_fleet fills it in, a day at a time here)."""

    __slots__ = ("applied", "bounds", "days", "logic", "offset", "r", "received", "row", "t", "view")

    def __init__(
        self, logic: MeterLogic, view: HouseholdView, t: list[float], r: list[float], offset: float, received: datetime
    ) -> None:
        self.logic, self.view, self.t, self.r, self.offset = logic, view, t, r, offset
        self.received = received  # the newest receive time of all the readings
        self.applied = 0
        self.row = 0
        self.bounds: list[int] = []
        self.days: list[int] = []


def _col(values: Sequence[float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)[:, None]


def _day_starts(meters: list[FleetMeter], days: list[int], before: int) -> list[float]:
    """``view.day_start(day - before)`` per meter: it depends on the zone and the day only, and a
    fleet's meters share a handful of zones and days, so each is computed once."""
    known: dict[tuple[str, int], float] = {}
    out = []
    for meter, day in zip(meters, days, strict=True):
        key = (meter.view.settings.timezone, day - before)
        found = known.get(key)
        if found is None:
            found = known[key] = meter.view.day_start(day - before)
        out.append(found)
    return out


def _first_true(mask: np.ndarray) -> np.ndarray:
    """Per row, the index of the first True (the row's length where none)."""
    found = mask.argmax(axis=1)
    first: np.ndarray = np.where(mask[np.arange(len(mask)), found], found, mask.shape[1])
    return first


class DayRows:
    """One local day's readings of several meters (a row each) and what the screens found about them:
    meter_batch's ``_Day`` with a row per meter and per-meter scalars as columns."""

    __slots__ = (
        "cfg", "cleared", "days", "dt", "flow_l", "hist", "last", "litres", "m", "meters", "new_day", "ok", "q", "r",
        "s_cand", "s_new", "s_old", "short", "slots", "starts", "stretches", "t", "t0", "totals", "used", "waiting",
    )  # fmt: skip

    def __init__(
        self, meters: list[FleetMeter], days: list[int], t: np.ndarray, r: np.ndarray, slots: np.ndarray
    ) -> None:
        self.meters, self.days, self.t, self.r, self.slots = meters, days, t, r, slots
        self.cfg = cfg = meters[0].logic.cfg
        fc = cfg.flow
        self.m = m = t.shape[1]
        self.ok = np.ones(len(meters), bool)
        last_t, last_r, total, s_old, changed = self._carry_in()
        self.starts = _day_starts(meters, days, 0)
        self.t0 = t0 = np.empty_like(t)
        t0[:, 0] = last_t
        t0[:, 1:] = t[:, :-1]
        before = np.empty_like(r)
        before[:, 0] = last_r
        before[:, 1:] = r[:, :-1]
        self.dt = dt = t - t0
        d = r - before
        # MeterLogic._interval_litres: a series boundary is for the per-reading path.
        limit = cfg.max_plausible_lpm * np.maximum(dt, 60.0) / 60.0
        self.ok &= ((-cfg.reset_tolerance_l <= d) & (d <= limit)).all(axis=1)
        self.litres = litres = np.maximum(d, 0.0)
        self.totals = np.cumsum(np.concatenate((_col(total), litres), axis=1), axis=1)
        # Standing flow: the first short interval of a new local day may change it (meter_batch._use).
        self.short = ~(dt > fc.max_interval_min * 60)
        self.new_day = np.where(np.array(changed), _first_true(self.short), m)
        self.s_old = _col(s_old)
        self.s_new = np.where((self.new_day < m)[:, None], _col(self.s_cand), self.s_old)
        standing = np.where(np.arange(m) >= self.new_day[:, None], self.s_new, self.s_old)
        net = litres - standing * dt / 3600
        self.used = net >= cfg.use_min_l
        self.flow_l = np.maximum(net, 0.0)
        self.last = self.q = litres
        self.stretches: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # Meters whose backstop has fired and waits for a use, and the reading whose use clears it
        # (meter_batch._use; 0 for the others, m where none comes in this segment).
        self.waiting = [bool(meter.logic.fired) and meter.logic.awaiting_use for meter in meters]
        self.cleared = np.where(np.array(self.waiting), _first_true(self.used), 0) if any(self.waiting) else None

    def _carry_in(self) -> tuple[list[float | None], list[float], list[float], list[float], list[bool]]:
        """Per meter, what meter_batch._segment and _use read, after the ledger has closed its days:
        (last time, last register, today's total, standing flow, whether the flow's day changes).
        Keeps, per meter, the standing-flow history and rate after the new day's first short interval
        (``hist`` None where the history does not change)."""
        fc = self.cfg.flow
        last_t, last_r, total, s_old, s_cand = ([] for _ in range(5))
        changed: list[bool] = []
        self.hist: list[tuple[float, ...] | None] = []
        for i, (meter, day) in enumerate(zip(self.meters, self.days, strict=True)):
            logic, view = meter.logic, meter.view
            ledger, flow = logic.ledger, logic.flow
            if ledger.today is not None and day < ledger.today:
                self.ok[i] = False
            elif day != ledger.today:
                ledger.roll_to(day, view)
            last_t.append(logic.last_t)
            last_r.append(logic.last_r)
            total.append(ledger.today_total)
            s_old.append(flow.standing_lph)
            changed.append(day != flow.min_day)
            if day != flow.min_day and flow.min_day is not None and math.isfinite(flow.min_rate):
                hist = (*flow.min_hist, flow.min_rate)[-fc.standing_days :]
                self.hist.append(hist)
                s_cand.append(standing_lph(hist, fc))
            else:
                self.hist.append(None)
                s_cand.append(flow.standing_lph)
        self.s_cand = s_cand
        return last_t, last_r, total, s_old, changed


def screen_day(rows: DayRows) -> list[bool]:
    """Screen one local day's readings of every meter (a row each) and apply the rows where nothing
    can fire; True for those."""
    _use(rows)
    _routine(rows)
    if rows.cfg.flow.enabled:
        _flow(rows)
    _excess(rows)
    if rows.ok.any():
        _commit(rows)
    return rows.ok.tolist()


def _use(rows: DayRows) -> None:
    """Use and the backstop (meter_batch._use): rows where a flat rule may fire are not ok."""
    t, m = rows.t, rows.m
    floor = [
        meter.logic.quiet_floor(first, meter.view) for meter, first in zip(rows.meters, t[:, 0].tolist(), strict=True)
    ]
    rows.last = last = np.maximum.accumulate(np.where(rows.used, np.arange(m), -1), axis=1)
    seen = last >= 0
    at = np.maximum(last, 0)
    floor_c = _col(floor)
    series = [meter.logic.series_start for meter in rows.meters]
    last_use = [
        x if x is not None else s for x, s in zip((mt.logic.last_use for mt in rows.meters), series, strict=True)
    ]
    use_t0 = [x if x is not None else s for x, s in zip((mt.logic.use_t0 for mt in rows.meters), series, strict=True)]
    rows.q = np.maximum(np.where(seen, np.take_along_axis(t, at, axis=1), _col(last_use)), floor_c)
    use_start = np.where(seen, np.take_along_axis(rows.t0, at, axis=1), _col(use_t0))
    # A fired rule is silent until the use that clears it, and counts from that use's interval on.
    cleared = rows.cleared
    clear_t0 = None if cleared is None else np.take_along_axis(rows.t0, np.minimum(cleared, m - 1)[:, None], axis=1)
    # The first use after an inactivity-type finding is news (a PRESENCE; MeterLogic.stops_at_use).
    due = [meter.logic.stops_at_use for meter in rows.meters]
    if any(due):
        rows.ok &= ~(np.array(due) & rows.used.any(axis=1))
    leads = [meter.view.settings.checkin_lead_s for meter in rows.meters]
    lead = _col(leads) if any(x > 0.0 for x in leads) else None
    for base in rows.cfg.flat_rules:  # personal rules only: program rules never reach the bulk path
        if base.enabled:
            window, rule_floor, silent = [], [], []
            for i, (meter, f) in enumerate(zip(rows.meters, floor, strict=True)):
                rule = meter.view.settings.flat_rule(base)
                window.append(rule.window_h * 3600)
                fired = meter.logic.fired
                latch = next((x for x in fired if x.name == rule.name), None) if fired else None
                if latch is not None and latch.reg is not None and cleared is not None and clear_t0 is not None:
                    rule_floor.append(max(f, float(clear_t0[i, 0])))
                    silent.append(int(cleared[i]))
                else:
                    rule_floor.append(max(f, latch.at) if latch is not None else f)
                    silent.append(0)
            begun = np.maximum(np.maximum(use_start, floor_c), _col(rule_floor))
            limit = _col(window) if lead is None else backstop_window_s(_col(window), lead, rows.dt)
            fire = ~(t - begun < limit) & ~rows.used & (np.arange(m) >= np.array(silent)[:, None])
            rows.ok &= ~fire.any(axis=1)


def _routine(rows: DayRows) -> None:
    """RoutineLogic.check on every reading (meter_batch._routine): rows where the routine may fire are
    not ok."""
    rc, ms, days = rows.cfg.routine, rows.meters, rows.days
    if not rc.enabled:
        return
    gap = rows.t - rows.q
    fired_q = _col([_nan(meter.logic.routine.fired_q) for meter in ms])
    enabled = np.array([meter.view.settings.routine_enabled for meter in ms])[:, None]
    check = ~(gap < rc.min_gap_min * 60) & ~(rows.q <= fired_q) & enabled
    if rows.cleared is not None:  # a fired flat rule has raised the stretch (MeterLogic: raised)
        check &= np.arange(rows.m) >= rows.cleared[:, None]
    asking = np.flatnonzero(check.any(axis=1) & rows.ok).tolist()
    if not asking:
        return
    # The day's limits: cached, or for every meter that needs them in one numpy pass (then cached).
    found: list[Limits] = []
    pending: list[int] = []
    for j, i in enumerate(asking):
        logic = ms[i].logic
        if logic.routine.stale(logic.ledger, days[i]):
            pending.append(j)
            found.append(None)
        else:
            found.append(logic.routine.limits(logic.ledger, days[i], ms[i].view))
    if pending:
        items = [(ms[asking[j]].logic.ledger, days[asking[j]], ms[asking[j]].view) for j in pending]
        for j, computed in zip(pending, quiet_limits_many(items, rows.cfg), strict=True):
            logic = ms[asking[j]].logic
            logic.routine.prime(logic.ledger, computed)
            found[j] = computed
    have = [i for i, limits in zip(asking, found, strict=True) if limits is not None]
    if have:
        # Each packed as two uint16 rows of 48 slots: the second row holds the limits in minutes.
        packed = b"".join([limits[0] for limits in found if limits is not None])
        minutes = np.frombuffer(packed, "<u2").reshape(len(have), 2 * SLOTS_PER_DAY)[:, SLOTS_PER_DAY:]
        limit = np.take_along_axis(minutes, rows.slots[have], axis=1) * 60.0
        fire = check[have] & ~((gap[have] <= limit) | (limit > rc.max_gap_h * 3600))
        rows.ok[have] &= ~fire.any(axis=1)


def _flow(rows: DayRows) -> None:
    """FlowLogic.on_interval on every reading (meter_batch._flow): rows where a flow rule or the
    standing-flow notice may fire are not ok; keeps the stretches for the commit."""
    fc, t, t0, dt, m, days = rows.cfg.flow, rows.t, rows.t0, rows.dt, rows.m, rows.days
    flows = [meter.logic.flow for meter in rows.meters]
    standing = np.array([flow.fired_standing for flow in flows])
    s_old, s_new = rows.s_old[:, 0], rows.s_new[:, 0]
    first, second = rows.new_day > 0, rows.new_day < m
    fires = first & (s_old > 0.0) & ~standing
    standing &= ~(first & (s_old <= 0.0))
    fires |= second & (s_new > 0.0) & ~standing
    standing &= ~(second & (s_new <= 0.0))
    flowing = ~((dt > fc.max_interval_min * 60) | (rows.flow_l * 3600 / dt < fc.flow_min_lph))
    high = flowing & (rows.flow_l / (dt / 60) >= fc.high_rate_lpm)
    rows.stretches = (flowing, high, standing)
    # The first measured interval without flow after a flow finding is news (a PRESENCE): not here.
    stop_due = [flow.stop_due for flow in flows]
    if any(stop_due):
        fires |= np.array(stop_due) & (rows.short & ~flowing).any(axis=1)
    night_end_s, night_start_s = clock_seconds(fc.night_end), clock_seconds(fc.night_start)
    day_start, prev_start = _col(rows.starts), _col(_day_starts(rows.meters, days, 1))
    night_end, night_start = day_start + night_end_s, day_start + night_start_s
    prev_end, prev_night = night_end - DAY_S, prev_start + night_start_s
    night_s = np.minimum(night_end - night_start, t[:, :1] - (prev_start + night_start_s))[:, 0]
    shortest = np.minimum(min(fc.high_rate_min * 60, fc.day_stretch_h * 3600), night_s)
    run_start = _stretch_starts(flowing, _col([_nan(f.run_start) for f in flows]), t0)
    longest = np.where(flowing, t - run_start, 0.0).max(axis=1)
    # meter_batch._flow: without a stretch this long no flow rule can fire.
    long_enough = ~(longest < shortest - 1.0)
    if long_enough.any():
        high_start = _stretch_starts(high, _col([_nan(f.high_start) for f in flows]), t0)
        span = t - high_start
        fire = (
            high
            & (span >= fc.high_rate_min * 60)
            & (span > dt)
            & (high_start != _col([_nan(f.fired_high) for f in flows]))
        )
        earlier = night_end > t
        today = np.array([f.fired_night != day for f, day in zip(flows, days, strict=True)])[:, None]
        yesterday = np.array([f.fired_night != day - 1 for f, day in zip(flows, days, strict=True)])[:, None]
        night = (today & ~earlier & ~(run_start > night_start) & ~(t - night_end > DAY_S)) | (
            yesterday & earlier & ~(run_start > prev_night) & ~(t - prev_end > DAY_S)
        )
        fire |= flowing & night
        fired_run = _col([_nan(f.fired_run) for f in flows])
        fire |= flowing & (t - run_start >= fc.day_stretch_h * 3600) & (run_start != fired_run)
        fires |= long_enough & fire.any(axis=1)
    rows.ok &= ~fires


def _excess(rows: DayRows) -> None:
    """DayLedger.check_excess on the running totals (meter_batch._excess): rows where it may fire are
    not ok."""
    ex, totals = rows.cfg.excess, rows.totals
    if not ex.enabled:
        return
    for i, (meter, final, good) in enumerate(zip(rows.meters, totals[:, -1].tolist(), rows.ok.tolist(), strict=True)):
        ledger, settings = meter.logic.ledger, meter.view.settings
        limit = settings.daily_max_l if settings.daily_max_l is not None else ex.daily_max_l
        if not good or ledger.excess_day == ledger.today or final <= min(limit, ex.relative_min_l):
            continue  # below both bounds all day so far (the total never falls)
        running = totals[i, 1:]
        p90 = ledger.usual_high()
        fire = np.zeros(len(running), bool)
        if p90 is None or p90 < limit:
            fire |= running > limit
        if p90 is not None:
            fire |= running > max(ex.relative_min_l, ex.relative_factor * p90)
        rows.ok[i] = not fire.any()


def _stretch_starts(member: np.ndarray, start: np.ndarray, t0: np.ndarray) -> np.ndarray:
    """meter_batch._stretch_starts per row; ``start`` is the carried stretch start (NaN: none)."""
    m = member.shape[1]
    broken = np.maximum.accumulate(np.where(member, -1, np.arange(m)), axis=1)
    carried = np.where(np.isnan(start), t0[:, :1], start)
    return np.where(broken >= 0, np.take_along_axis(t0, np.minimum(broken + 1, m - 1), axis=1), carried)


def _stretch(
    member: np.ndarray, carried: list[float | None], carried_l: list[float], t0: np.ndarray, add: np.ndarray
) -> tuple[list[float], list[float]]:
    """meter_batch._stretch per row: (start, litres) after the row's readings; NaN start: none."""
    start, litres = _col([_nan(x) for x in carried]), _col(carried_l)
    m = member.shape[1]
    idx = np.arange(m)
    outside = ~member
    any_out = outside.any(axis=1)
    last_out = np.where(any_out, m - 1 - outside[:, ::-1].argmax(axis=1), -1)
    begin = np.where(any_out | np.isnan(start[:, 0]), 0.0, litres[:, 0])[:, None]
    terms = np.where(idx > last_out[:, None], add, 0.0)
    sums = np.cumsum(np.concatenate((begin, terms), axis=1), axis=1)[:, -1]
    after = np.take_along_axis(t0, np.minimum(last_out + 1, m - 1)[:, None], axis=1)[:, 0]
    ended = any_out & (last_out == m - 1)
    new_start = np.where(any_out, np.where(ended, NAN, after), np.where(np.isnan(start[:, 0]), t0[:, 0], start[:, 0]))
    return new_start.tolist(), np.where(ended, 0.0, sums).tolist()


def _commit(rows: DayRows) -> None:
    """Apply every reading of the ok rows: the state on_reading would leave, bit for bit
    (meter_batch._commit with every reading applied)."""
    keep = np.flatnonzero(rows.ok)
    picked = keep.tolist()
    meters = [rows.meters[i] for i in picked]
    t, t0, dt, r = rows.t[keep], rows.t0[keep], rows.dt[keep], rows.r[keep]
    m = rows.m
    j = rows.last[keep, -1]
    at = np.maximum(j, 0)[:, None]
    use_t = np.take_along_axis(t, at, axis=1)[:, 0].tolist()
    use_r = np.take_along_axis(r, at, axis=1)[:, 0].tolist()
    use_t0 = np.take_along_axis(t0, at, axis=1)[:, 0].tolist()
    # Ledger: coverage summed in reading order (0.0 for the intervals that do not count).
    part = np.where(dt > MAX_COVERED_INTERVAL_S, 0.0, np.minimum(dt, t - _col([rows.starts[i] for i in picked])))
    covered = np.cumsum(np.concatenate((_col([mt.logic.ledger.covered for mt in meters]), part), axis=1), axis=1)
    bits = np.bitwise_or.reduce(np.where(rows.used[keep], np.left_shift(1, rows.slots[keep]), 0), axis=1).tolist()
    flow_state = _flow_state(rows, keep, meters)
    last_t, last_r = t[:, -1].tolist(), r[:, -1].tolist()
    q_end, total_end, covered_end = rows.q[keep, -1].tolist(), rows.totals[keep, -1].tolist(), covered[:, -1].tolist()
    has_use = (j >= 0).tolist()
    days = [rows.days[k] for k in picked]
    if rows.cleared is not None:
        clear_at = np.take_along_axis(t0, np.minimum(rows.cleared[keep], m - 1)[:, None], axis=1)[:, 0].tolist()
        for meter, k, use_start, cleared in zip(meters, picked, clear_at, rows.cleared[keep].tolist(), strict=True):
            if rows.waiting[k] and cleared < m:
                meter.logic.clear_fired(use_start)
    for i, meter in enumerate(meters):
        logic = meter.logic
        ledger, routine = logic.ledger, logic.routine
        logic.last_t, logic.last_r = last_t[i], last_r[i]
        logic.series_n += m
        if has_use[i]:
            logic.last_use, logic.use_r, logic.use_t0 = use_t[i], use_r[i], use_t0[i]
            ledger.today_bits |= bits[i]
        if routine.fired_q is not None and q_end[i] > routine.fired_q:
            routine.fired_q = None  # water resumed: a new quiet stretch
        ledger.covered = covered_end[i]
        ledger.today_total = total_end[i]
    _set_flows([meter.logic.flow for meter in meters], days, m, flow_state)


class _FlowState(NamedTuple):
    """Per kept row, what the commit writes into FlowLogic (lists, one entry per row)."""

    new_day: list[int]
    hist: list[tuple[float, ...] | None]
    standing: list[float]
    k_rate: list[float]
    lowest: list[float]
    fired_standing: list[bool]
    runs: tuple[list[float], list[float]] | None
    highs: tuple[list[float], list[float]] | None


def _flow_state(rows: DayRows, keep: np.ndarray, meters: list[FleetMeter]) -> _FlowState:
    """The flow part of meter_batch._commit for the kept rows."""
    t0, dt, litres, m = rows.t0[keep], rows.dt[keep], rows.litres[keep], rows.m
    # Flow: the new day's first short interval goes through note_interval, the rest into the minimum.
    short, new_day = rows.short[keep], rows.new_day[keep]
    flows = [meter.logic.flow for meter in meters]
    rates = np.where(short & (np.arange(m) != new_day[:, None]), litres * 3600 / dt, math.inf)
    lowest = rates.min(axis=1).tolist()
    first_short = np.minimum(new_day, m - 1)[:, None]
    # FlowLogic.note_interval's rate, the same operations on the same doubles.
    k_rate = np.take_along_axis(litres, first_short, axis=1) * 3600 / np.take_along_axis(dt, first_short, axis=1)
    picked = keep.tolist()
    runs = highs = None
    fired_standing: list[bool] = []
    if rows.stretches is not None:
        flowing, high, standing = (x[keep] for x in rows.stretches)
        flow_l = rows.flow_l[keep]
        runs = _stretch(flowing, [f.run_start for f in flows], [f.run_litres for f in flows], t0, flow_l)
        highs = _stretch(high, [f.high_start for f in flows], [f.high_litres for f in flows], t0, flow_l)
        fired_standing = standing.tolist()
    hist, s_after = [rows.hist[i] for i in picked], [rows.s_cand[i] for i in picked]
    return _FlowState(new_day.tolist(), hist, s_after, k_rate[:, 0].tolist(), lowest, fired_standing, runs, highs)


def _set_flows(flows: list[FlowLogic], days: list[int], m: int, state: _FlowState) -> None:
    for flow, day, new_day, hist, standing, k_rate, lowest in zip(
        flows, days, state.new_day, state.hist, state.standing, state.k_rate, state.lowest, strict=True
    ):
        if new_day < m:
            # FlowLogic.note_interval for the new day's first short interval (new_day < m: a new day).
            if hist is not None:
                flow.min_hist, flow.standing_lph = hist, standing
            flow.min_day, flow.min_rate = day, k_rate
        flow.min_rate = min(flow.min_rate, lowest)
    if state.runs is not None and state.highs is not None:
        for flow, fired, run_start, run_litres, high_start, high_litres in zip(
            flows, state.fired_standing, *state.runs, *state.highs, strict=True
        ):
            flow.fired_standing = fired
            flow.run_start, flow.run_litres = _none(run_start), run_litres
            flow.high_start, flow.high_litres = _none(high_start), high_litres


def _nan(value: float | None) -> float:
    return NAN if value is None else value


def _none(value: float) -> float | None:
    return None if math.isnan(value) else value
