"""Many meters' uploads applied in bulk at once: :mod:`detectors.meter_batch` across the fleet.

A daily upload from 100,000 NB-IoT meters is 100,000 runs of meter_batch's screen, each ~80 numpy calls
on arrays of 96: the cost is numpy's per-call overhead, not arithmetic. Here the same screen runs on 2-D
arrays, one row per meter, for all meters of one engine call at once, one local day at a time:

- Only whole local days (segments) in which nothing can fire are applied. A meter whose segment might
  raise anything, or that this module does not take (see :func:`_prepare`), stops here, and the engine
  carries on with it from its first unapplied reading through meter_batch (which finds the exact
  reading) and the per-reading path. So this module only needs *whether* a segment is clean.
- The same operations as meter_batch, elementwise along rows; sequential sums are ``np.cumsum`` along
  the row, with 0.0 standing in for a left-out term (``x + 0.0 == x``). Rows are grouped by segment
  length, so no padding enters any sum. ``tests/detectors/test_meter_batch.py`` (one meter per engine)
  and ``tests/detectors/test_meter_fleet.py`` (many meters per call) prove the state bit-identical to
  the per-reading path.
- The routine's limits for the new day are computed for every meter that needs them in one call
  (:func:`detectors.routine_fleet.quiet_limits_many`) and primed into each meter's cache.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from itertools import islice
from operator import attrgetter, lt
from typing import NamedTuple

import numpy as np

from detectors.context import DAY_S, SLOT_S, SLOTS_PER_DAY, HouseholdView
from detectors.daily import MAX_COVERED_INTERVAL_S
from detectors.flow import FlowLogic, standing_lph
from detectors.meter import MeterLogic
from detectors.meter_batch import clock_seconds, uses_program_rule
from detectors.routine_fleet import Limits, quiet_limits_many
from schemas.records import Record

_ts = attrgetter("ts")
_timestamp = datetime.timestamp
NAN = math.nan
# Meters screened together: enough that numpy's per-call overhead vanishes, few enough that the ~25
# arrays of a chunk stay in the CPU cache (a day of 15-minute readings: ~0.8 KiB per array and meter).
CHUNK = 1024


class _Meter:
    """One meter's upload while the fleet path holds it."""

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


def apply_fleet(
    batches: Sequence[tuple[MeterLogic, list[Record], HouseholdView]], busy: set[str]
) -> list[tuple[int, datetime | None]]:
    """For each meter's records: how many, from the first in device-time order, were applied in bulk
    (whole uneventful local days; 0 when none), and the newest receive time of the records when all were
    applied (None otherwise). A list committed out of order is sorted in place. Meters of the ``busy``
    households, and of households where a meter sent anything but readings, are left to the engine's
    device-by-device order."""
    if not batches or uses_program_rule(batches[0][0].cfg):
        return [(0, None)] * len(batches)  # the program rule's step points are kept reading by reading
    seen: _Grids = {}
    prepared = [_prepare(logic, recs, view, seen) for logic, recs, view in batches]
    busy = busy | {
        logic.device.household_id for (logic, _, _), meter in zip(batches, prepared, strict=True) if meter is _MIXED
    }
    meters = [m if isinstance(m, _Meter) and m.logic.device.household_id not in busy else None for m in prepared]
    by_length: dict[int, list[_Meter]] = {}
    for meter in meters:
        if meter is not None:
            by_length.setdefault(len(meter.t), []).append(meter)
    groups = [_split_days(group) for group in by_length.values()]
    active = [(g, meter) for g, group in enumerate(groups) for meter in group.meters]
    k = 0
    while active:
        buckets: dict[tuple[int, int, int], list[_Meter]] = {}
        for g, meter in active:
            if k + 1 < len(meter.bounds):
                buckets.setdefault((g, meter.bounds[k], meter.bounds[k + 1]), []).append(meter)
        active = []
        for (g, a, b), bucket in buckets.items():
            stacked = groups[g]
            for c in range(0, len(bucket), CHUNK):
                chunk = bucket[c : c + CHUNK]
                rows = np.array([meter.row for meter in chunk])
                days = [meter.days[k] for meter in chunk]
                segment = _Rows(
                    chunk, days, stacked.t[rows, a:b], stacked.r[rows, a:b], stacked.slots[rows, a:b].astype(np.int64)
                )
                for meter, clean in zip(chunk, _segment(segment), strict=True):
                    if clean:
                        meter.applied = b
                        active.append((g, meter))
        k += 1
    return [
        (0, None) if meter is None else (meter.applied, meter.received if meter.applied == len(meter.t) else None)
        for meter in meters
    ]


def _prepare(logic: MeterLogic, records: list[Record], view: HouseholdView, seen: _Grids) -> _Meter | object | None:
    """The meter's readings as floats; _MIXED for records other than readings; None where meter_batch's
    own checks are needed: its first reading, a program rule's latch, an away period or a DST change in the
    span."""
    # Comprehensions, not map(attrgetter): on slotted records they cost half as much.
    try:
        r = [rec.register_l for rec in records]  # type: ignore[union-attr]
    except AttributeError:  # a status report or an event
        return _MIXED
    if logic.last_t is None or (logic.fired and logic.bulk_blocked()):
        return None
    t = _seconds(records, seen)
    if t is None:
        # Committed out of order (or a reading twice): in device-time order, as the engine would sort
        # them; duplicates stay out of this path (the per-reading path ignores the second).
        records.sort(key=_ts)
        t = _seconds(records, seen)
        r = [rec.register_l for rec in records]  # type: ignore[union-attr]
    if t is None or not view.away_clear(t[0], t[-1]):
        return None
    offset = view.steady_offset(t[0] - 1e-3, t[-1])
    if offset is None:
        return None
    # Read now, while the records are in the CPU cache (the engine needs it for the device's health).
    return _Meter(logic, view, t, r, offset, max([rec.received_at for rec in records]))


_MIXED = object()
# Device times already converted in this call, by (first, last, count): (datetimes, epoch seconds, in order).
_Grids = dict[tuple[datetime, datetime, int], tuple[list[datetime], list[float], bool]]


def _seconds(records: list[Record], seen: _Grids) -> list[float] | None:
    """The readings' device times as epoch seconds (None unless strictly increasing).

    A fleet's meters read on the same clock (every 15 minutes on the quarter hour), so most uploads of
    a call carry the same device times. Converting a datetime costs ~0.2 us and comparing two ~0.07 us,
    so an upload whose times equal one already converted reuses its seconds (equal instants: equal
    timestamps, exactly)."""
    times = [rec.ts for rec in records]
    key = (times[0], times[-1], len(times))
    known = seen.get(key)
    if known is not None and times == known[0]:
        return known[1] if known[2] else None
    t = list(map(_timestamp, times))
    ordered = all(map(lt, t, islice(t, 1, None)))
    if known is None:
        seen[key] = (times, t, ordered)
    return t if ordered else None


class _Group(NamedTuple):
    """Uploads of equal length stacked, a row per meter."""

    t: np.ndarray  # device times, epoch seconds
    r: np.ndarray  # registers, litres
    slots: np.ndarray  # local 30-minute slot of each interval's end (int8)
    meters: list[_Meter]  # the meters whose readings follow their last applied one, with their segments


def _split_days(group: list[_Meter]) -> _Group:
    """Stack readings of equal count; keep meters whose readings start after the last applied one,
    with their local-day segments (bounds and day numbers)."""
    # A clock: one list of seconds (meters reading on the same quarter hours share one, see _seconds)
    # in one UTC offset. Local days and slots are worked out once per clock, not per meter.
    clocks: dict[tuple[int, float], int] = {}
    first: list[_Meter] = []
    which: list[int] = []
    for meter in group:
        c = clocks.setdefault((id(meter.t), meter.offset), len(first))
        if c == len(first):
            first.append(meter)
        which.append(c)
    t_c = np.array([meter.t for meter in first], dtype=np.float64)
    offset_c = _col([meter.offset for meter in first])
    days_c = ((t_c + offset_c) // DAY_S).astype(np.int64)
    slots_c = (((t_c - 1e-3 + offset_c) % DAY_S) // SLOT_S).astype(np.int8)
    n = t_c.shape[1]
    segments: list[tuple[list[int], list[int]]] = []
    for c in range(len(first)):
        inner = (np.flatnonzero(days_c[c, 1:] != days_c[c, :-1]) + 1).tolist()
        segments.append(([0, *inner, n], [int(days_c[c, 0]), *(int(days_c[c, i]) for i in inner)]))
    index = np.array(which)
    t = t_c[index]
    r = np.array([meter.r for meter in group], dtype=np.float64)
    # Within a clock the seconds strictly increase (_seconds); the first must follow the meter's last.
    follows = (t[:, 0] > np.array([meter.logic.last_t for meter in group])).tolist()
    kept: list[_Meter] = []
    for row, (meter, good, c) in enumerate(zip(group, follows, which, strict=True)):
        if good:
            meter.row = row
            meter.bounds, meter.days = segments[c]
            kept.append(meter)
    return _Group(t, r, slots_c[index], kept)


def _col(values: Sequence[float]) -> np.ndarray:
    return np.array(values, dtype=np.float64)[:, None]


def _day_starts(meters: list[_Meter], days: list[int], before: int) -> list[float]:
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


class _Rows:
    """One local day's readings of several meters (a row each) and what the screens found about them:
    meter_batch's ``_Day`` with a row per meter and per-meter scalars as columns."""

    __slots__ = (
        "cfg", "cleared", "days", "dt", "flow_l", "hist", "last", "litres", "m", "meters", "new_day", "ok", "q", "r",
        "s_cand", "s_new", "s_old", "short", "slots", "starts", "stretches", "t", "t0", "totals", "used", "waiting",
    )  # fmt: skip

    def __init__(self, meters: list[_Meter], days: list[int], t: np.ndarray, r: np.ndarray, slots: np.ndarray) -> None:
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


def _segment(rows: _Rows) -> list[bool]:
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


def _use(rows: _Rows) -> None:
    """Use and the backstop (meter_batch._use): rows where a flat rule may fire are not ok."""
    t, m = rows.t, rows.m
    floor = [
        max(meter.logic.series_start, meter.view.away_floor(first)) if meter.view.has_away else meter.logic.series_start
        for meter, first in zip(rows.meters, t[:, 0].tolist(), strict=True)
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
            fire = ~(t - begun < _col(window)) & (np.arange(m) >= np.array(silent)[:, None])
            rows.ok &= ~fire.any(axis=1)


def _routine(rows: _Rows) -> None:
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


def _flow(rows: _Rows) -> None:
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


def _excess(rows: _Rows) -> None:
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


def _commit(rows: _Rows) -> None:
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


def _flow_state(rows: _Rows, keep: np.ndarray, meters: list[_Meter]) -> _FlowState:
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
