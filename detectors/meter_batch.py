"""A water meter's batch of readings applied in bulk: the per-reading path, vectorised where nothing fires.

NB-IoT meters upload a day of stored readings at once, and on nearly every reading of such a batch no
rule fires: the meter's state just moves on. :func:`apply_prefix` *screens* the batch with numpy and
applies its longest *uneventful* prefix in bulk; the engine then feeds the rest, from the first reading
where anything could happen, through :meth:`MeterLogic.on_reading` as before (and may screen again).

Contract: the state after the bulk prefix is bit-identical to the state after applying
:meth:`MeterLogic.on_reading` to the same readings one by one, and those readings raise no finding.
``tests/detectors/test_meter_batch.py`` proves it differentially (two engines, path on and off). How:

- The same arithmetic. Every quantity is the same IEEE float64 operation in the same order (numpy's
  elementwise ufuncs round like Python's operators, and its float ``//`` and ``%`` follow Python's);
  running sums use ``np.cumsum`` (a sequential accumulate), never ``np.sum`` (pairwise) or Python
  3.12's compensated ``sum()``. State gets Python floats and ints back, never numpy scalars.
- Exact screens, not bounds. For every reading the firing condition of every rule (backstop, routine,
  running / overnight / all-day flow, standing-flow notice, excess) is evaluated from the state as it
  would be after that reading; so are the series rules (a reset, a glitch or an implausible jump ends
  the prefix) and the local day (a day going backwards, possible in a DST change at midnight, ends it).
  Each state change that only an event makes (a rule firing, ``fired_*``, recurring-flow history) is
  left to the per-reading path by ending the prefix at that reading. The one change that comes without
  an event is followed here: after the backstop fired, the meter's next use clears its latch (and ends
  the routine's silence for the stretch already raised), so a meter stays on this path while its
  resident is away or lying on the floor, and after.
- Per local day, in order. Readings are applied one local day (segment) at a time: the ledger closes
  days with its own ``roll_to``, and the routine's limits and the excess percentile for the new day are
  computed from the updated ledger, as on the per-reading path. The day's standing flow changes at the
  first short interval of a new day (``FlowLogic.note_interval``), so it is a per-reading array.
- Local day and slot from a UTC offset proven constant over the batch (``HouseholdView.steady_offset``);
  across a DST change they come from the view reading by reading.
- What is not worth screening is not bulk-applied at all: a program (step-point) rule configured or
  its latch still fired, an away period touching the batch's span, the meter's first reading. Quiet
  windows only hold back findings, and the bulk path raises none, so they do not matter here.

Device health is the engine's: every reading calls ``DeviceHealth.heard``, which for a device that is
online only keeps the latest receive time, so the engine calls it once with the prefix's latest.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import datetime, time
from operator import attrgetter

import numpy as np

from detectors.config import DetectorSuiteConfig
from detectors.context import DAY_S, SLOT_S, SLOTS_PER_DAY, HouseholdView
from detectors.daily import MAX_COVERED_INTERVAL_S
from detectors.flow import standing_lph
from detectors.meter import MeterLogic
from detectors.presence import backstop_window_s
from schemas.records import MeterSample, Record

# Below this many readings the screen costs more than the per-reading path saves (bench/detect_scale.py).
BATCH_MIN = 16

_ts = attrgetter("ts")
_register = attrgetter("register_l")
_timestamp = datetime.timestamp
F64 = np.ndarray


def apply_prefix(logic: MeterLogic, records: Sequence[Record], view: HouseholdView) -> int:
    """Apply the longest uneventful prefix of one meter's ``records`` (device-time order) in bulk and
    return its length (0: nothing applied)."""
    cfg = logic.cfg
    last_t = logic.last_t
    if last_t is None or uses_program_rule(cfg) or logic.bulk_blocked():
        return 0
    n = len(records)
    if set(map(type, records)) != {MeterSample}:  # a status report ends the prefix
        n = next(i for i, rec in enumerate(records) if type(rec) is not MeterSample)
        records = records[:n]
    ts: list[float] = list(map(_timestamp, map(_ts, records)))
    # Readings at or before the newest applied one (sorted first) only count as late.
    lo = bisect_right(ts, last_t)
    if lo:
        logic.late_inside += bisect_left(ts, last_t)
        if lo == n:
            return n
    t = np.array(ts[lo:])
    r = np.array(list(map(_register, records[lo:])), dtype=np.float64)
    # A reading at the same device time as the one before it is ignored on the per-reading path.
    orig: np.ndarray | None = None
    if len(t) > 1:
        keep = np.empty(len(t), bool)
        keep[0] = True
        np.not_equal(t[1:], t[:-1], out=keep[1:])
        if not keep.all():
            orig = np.flatnonzero(keep)
            t, r = t[keep], r[keep]
    done = _apply(logic, view, t, r)
    if orig is not None:
        done = int(orig[done]) if done < len(orig) else n - lo
    return lo + done


def uses_program_rule(cfg: DetectorSuiteConfig) -> bool:
    return any(rule.enabled and not rule.personal for rule in cfg.flat_rules)


def _first(mask: np.ndarray) -> int:
    """Index of the first True, or len(mask)."""
    i = int(mask.argmax())
    return i if mask[i] else len(mask)


def _seq(start: float, values: np.ndarray) -> float:
    """``start + v0 + v1 + ...`` added left to right, as a Python loop would (bit for bit)."""
    if not len(values):
        return start
    acc = np.empty(len(values) + 1)
    acc[0] = start
    acc[1:] = values
    return float(np.cumsum(acc)[-1])


def _apply(logic: MeterLogic, view: HouseholdView, t: F64, r: F64) -> int:
    """Bulk-apply the uneventful prefix of strictly increasing readings after ``logic.last_t``."""
    cfg = logic.cfg
    m = len(t)
    if not view.away_clear(float(t[0]), float(t[-1])):
        return 0
    t0 = np.empty(m)
    t0[0] = logic.last_t
    t0[1:] = t[:-1]
    before = np.empty(m)
    before[0] = logic.last_r
    before[1:] = r[:-1]
    dt = t - t0
    d = r - before
    # MeterLogic._interval_litres: outside the plausible band is a series boundary (per reading).
    plausible = (-cfg.reset_tolerance_l <= d) & (d <= cfg.max_plausible_lpm * np.maximum(dt, 60.0) / 60.0)
    m = _first(~plausible)
    if m == 0:
        return 0
    if m < len(t):
        t, t0, dt, r, d = t[:m], t0[:m], dt[:m], r[:m], d[:m]
    litres = np.maximum(d, 0.0)
    x = t - 1e-3  # the slot of a reading is the one containing the end of its interval
    offset = view.steady_offset(float(x[0]), float(t[-1]))
    if offset is not None:
        slots = (((x + offset) % DAY_S) // SLOT_S).astype(np.int64)
        first, last = view.day_index(float(t[0])), view.day_index(float(t[-1]))
        days = None if first == last else ((t + offset) // DAY_S).astype(np.int64)
    else:  # a DST change inside: the view's own answers, reading by reading
        slots = np.array([view.slot(v) for v in x.tolist()], np.int64)
        days = np.array([view.day_index(v) for v in t.tolist()], np.int64)
        back = days[1:] < days[:-1]
        m = _first(back) + 1
        first = int(days[0])
    if days is None:
        return _segment(logic, view, first, t, t0, dt, r, litres, slots)
    # One local day at a time (the ledger closes days, the next day's limits come from them).
    cuts = [0, *(np.flatnonzero(days[1:m] != days[: m - 1]) + 1).tolist(), m]
    done = 0
    for a, b in itertools.pairwise(cuts):
        s = slice(a, b)
        took = _segment(logic, view, int(days[a]), t[s], t0[s], dt[s], r[s], litres[s], slots[s])
        done += took
        if took < b - a:
            break
    return done


class _Day:
    """One local day's readings and what the screen found about them (shared with the commit)."""

    __slots__ = (
        "cleared", "day", "dt", "flow_l", "flowing", "high", "last", "litres", "m", "new_day", "q", "r", "s_new",
        "s_old", "short", "slots", "t", "t0", "totals", "used",
    )  # fmt: skip

    def __init__(self, day: int, t: F64, t0: F64, dt: F64, r: F64, litres: F64, slots: F64, total: float) -> None:
        self.day, self.t, self.t0, self.dt, self.r, self.litres, self.slots = day, t, t0, dt, r, litres, slots
        self.m = len(t)
        # The day's running total after each reading (index 0: before the first), summed in order.
        self.totals: F64 = np.cumsum(np.concatenate(([total], litres)))
        # Filled in by the screens (_use, _flow) for the commit.
        self.short = self.used = litres
        self.flow_l = self.q = litres
        self.last = slots
        self.new_day = self.m
        # The reading whose use clears fired flat rules (0: none fired; m: none in this segment).
        self.cleared = 0
        self.s_old = self.s_new = 0.0
        self.flowing: np.ndarray | None = None
        self.high: np.ndarray | None = None


def _segment(
    logic: MeterLogic, view: HouseholdView, day: int, t: F64, t0: F64, dt: F64, r: F64, litres: F64, slots: F64
) -> int:
    """Screen and apply one local day's readings; the number applied (all unless something fires)."""
    ledger = logic.ledger
    if ledger.today is not None and day < ledger.today:
        return 0
    if day != ledger.today:
        # What DayLedger.add does first for this day's first reading; nothing the reading does before
        # that reads the ledger, so closing the days here (before the screen) changes nothing.
        ledger.roll_to(day, view)
    seg = _Day(day, t, t0, dt, r, litres, slots, ledger.today_total)
    stop = _use(logic, view, seg)
    stop = min(stop, _routine(logic, view, seg))
    if logic.cfg.flow.enabled:
        stop = min(stop, _flow(logic, view, seg))
    stop = min(stop, _excess(logic, view, seg))
    if stop:
        _commit(logic, view, seg, stop)
    return stop


def _use(logic: MeterLogic, view: HouseholdView, seg: _Day) -> int:
    """Standing flow, use and the backstop; the first reading where a flat rule fires (or m)."""
    cfg, flow, fc = logic.cfg, logic.flow, logic.cfg.flow
    t, t0, dt, m = seg.t, seg.t0, seg.dt, seg.m
    # Standing flow: the first short interval of a new local day moves yesterday's minimum rate into
    # the history (FlowLogic.note_interval), and the standing flow may change from that reading on.
    seg.short = short = ~(dt > fc.max_interval_min * 60)
    seg.new_day = m
    seg.s_old = seg.s_new = flow.standing_lph
    if seg.day != flow.min_day:
        seg.new_day = _first(short)
        if seg.new_day < m and flow.min_day is not None and math.isfinite(flow.min_rate):
            seg.s_new = standing_lph((*flow.min_hist, flow.min_rate)[-fc.standing_days :], fc)
    standing: float | F64 = seg.s_old
    if seg.s_new != seg.s_old:
        standing = np.full(m, seg.s_old)
        standing[seg.new_day :] = seg.s_new
    loss = standing * dt / 3600
    seg.used = used = seg.litres - loss >= cfg.use_min_l
    seg.flow_l = np.maximum(seg.litres - loss, 0.0)
    # The last use after each reading (MeterLogic.on_reading: last_use, use_t0).
    seg.last = last = np.maximum.accumulate(np.where(used, np.arange(m), -1))
    seen = last >= 0
    at = np.maximum(last, 0)
    floor = logic.quiet_floor(float(t[0]), view)
    last_use = logic.last_use if logic.last_use is not None else logic.series_start
    seg.q = np.maximum(np.where(seen, t[at], last_use), floor)
    use_t0 = np.where(seen, t0[at], logic.use_t0 if logic.use_t0 is not None else logic.series_start)
    # A fired rule (MeterLogic._clear_fired) is cleared by the next use, from that use's interval on.
    seg.cleared = _first(used) if logic.awaiting_use else 0
    # The first use after an inactivity-type finding is news (a PRESENCE; MeterLogic.stops_at_use).
    stop = _first(used) if logic.stops_at_use else m
    lead = view.settings.checkin_lead_s
    for base in cfg.flat_rules:  # personal rules only: program rules never reach the bulk path
        if base.enabled:
            rule = view.settings.flat_rule(base)
            latch = next((x for x in logic.fired if x.name == rule.name), None)
            rule_floor = max(floor, latch.at) if latch is not None else floor
            silent = 0
            if latch is not None and latch.reg is not None:  # fired: silent until cleared
                if seg.cleared == m:
                    continue
                silent, rule_floor = seg.cleared, max(floor, float(t0[seg.cleared]))
            start = np.maximum(np.maximum(use_t0, floor), rule_floor)
            window = rule.window_h * 3600
            fire = ~(t - start < (backstop_window_s(window, lead, dt) if lead > 0.0 else window)) & ~used
            fire[:silent] = False
            stop = min(stop, _first(fire))
    return stop


def _routine(logic: MeterLogic, view: HouseholdView, seg: _Day) -> int:
    """RoutineLogic.check on every reading: the first where the routine fires (or m)."""
    rc, routine = logic.cfg.routine, logic.routine
    if not rc.enabled or not view.settings.routine_enabled:
        return seg.m
    gap = seg.t - seg.q
    check = ~(gap < rc.min_gap_min * 60)
    check[: seg.cleared] = False  # a fired flat rule has raised this stretch already (MeterLogic: raised)
    if routine.fired_q is not None:
        check &= ~(seg.q <= routine.fired_q)
    first = _first(check)
    if first == seg.m:
        return first
    found = routine.limits(logic.ledger, seg.day, view)
    if found is None:
        return seg.m
    limit = np.frombuffer(found[0], "<u2")[SLOTS_PER_DAY + seg.slots] * 60.0
    return _first(check & ~((gap <= limit) | (limit > rc.max_gap_h * 3600)))


def _flow(logic: MeterLogic, view: HouseholdView, seg: _Day) -> int:
    """FlowLogic.on_interval on every reading: the first where a flow rule or notice fires (or m)."""
    flow, fc = logic.flow, logic.cfg.flow
    t, t0, dt, m = seg.t, seg.t0, seg.dt, seg.m
    stop = m
    fired_standing = flow.fired_standing
    for a, b, s in ((0, seg.new_day, seg.s_old), (seg.new_day, m, seg.s_new)):
        if a < b:
            if s <= 0.0:
                fired_standing = False
            elif not fired_standing:
                stop = a  # the standing-flow notice
                break
    seg.flowing = flowing = ~((dt > fc.max_interval_min * 60) | (seg.flow_l * 3600 / dt < fc.flow_min_lph))
    seg.high = high = flowing & (seg.flow_l / (dt / 60) >= fc.high_rate_lpm)
    if flow.stop_due:  # the first measured interval without flow after a flow finding: a PRESENCE
        stop = min(stop, _first(seg.short & ~flowing))
    # Every flow rule needs one stretch of flowing intervals at least this long (the night rule: from
    # before the night's start to after its end); shorter stretches only need their bookkeeping.
    # (A night counted at a reading after its end needs the stretch to span it; one counted at a
    # reading of the next day, from before its start to that reading.)
    day_start, prev_start = view.day_start(seg.day), view.day_start(seg.day - 1)
    night_end, night_start = day_start + clock_seconds(fc.night_end), day_start + clock_seconds(fc.night_start)
    prev_end, prev_night = night_end - DAY_S, prev_start + clock_seconds(fc.night_start)
    night_s = min(night_end - night_start, float(t[0]) - prev_night)
    shortest = min(fc.high_rate_min * 60, fc.day_stretch_h * 3600, night_s)
    if _longest_stretch(flowing, flow.run_start, t, t0) < shortest - 1.0:
        return stop
    run_start = _stretch_starts(flowing, flow.run_start, t0)
    high_start = _stretch_starts(high, flow.high_start, t0)
    span = t - high_start
    fire = high & (span >= fc.high_rate_min * 60) & (span > dt)
    if flow.fired_high is not None:
        fire &= high_start != flow.fired_high
    stop = min(stop, _first(fire))
    earlier = night_end > t  # the night that ended yesterday (FlowLogic._night)
    night = np.zeros(m, bool)
    if flow.fired_night != seg.day:
        night |= ~earlier & ~(run_start > night_start) & ~(t - night_end > DAY_S)
    if flow.fired_night != seg.day - 1:
        night |= earlier & ~(run_start > prev_night) & ~(t - prev_end > DAY_S)
    stop = min(stop, _first(flowing & night))
    fire = flowing & (t - run_start >= fc.day_stretch_h * 3600)
    if flow.fired_run is not None:
        fire &= run_start != flow.fired_run
    return min(stop, _first(fire))


def _excess(logic: MeterLogic, view: HouseholdView, seg: _Day) -> int:
    """DayLedger.check_excess on the running total after every reading: the first that fires (or m)."""
    ex, ledger = logic.cfg.excess, logic.ledger
    totals = seg.totals
    if not ex.enabled or ledger.excess_day == ledger.today:
        return seg.m
    limit = view.settings.daily_max_l if view.settings.daily_max_l is not None else ex.daily_max_l
    if totals[-1] <= min(limit, ex.relative_min_l):
        return seg.m  # below both bounds all day so far (the total never falls)
    running = totals[1:]
    p90 = ledger.usual_high()
    fire = np.zeros(seg.m, bool)
    if p90 is None or p90 < limit:
        fire |= running > limit
    if p90 is not None:
        fire |= running > max(ex.relative_min_l, ex.relative_factor * p90)
    return _first(fire)


def _commit(logic: MeterLogic, view: HouseholdView, seg: _Day, c: int) -> None:
    """Apply the segment's first ``c`` readings: the state on_reading would leave, bit for bit."""
    ledger, flow, routine = logic.ledger, logic.flow, logic.routine
    t, t0, dt = seg.t, seg.t0, seg.dt
    logic.last_t, logic.last_r = float(t[c - 1]), float(seg.r[c - 1])
    logic.series_n += c
    j = int(seg.last[c - 1])
    if j >= 0:
        logic.last_use, logic.use_r, logic.use_t0 = float(t[j]), float(seg.r[j]), float(t0[j])
    if routine.fired_q is not None and seg.q[c - 1] > routine.fired_q:
        routine.fired_q = None  # water resumed: a new quiet stretch
    if logic.awaiting_use and seg.cleared < c:
        logic.clear_fired(float(t0[seg.cleared]))
    # Ledger: coverage and total summed in reading order, use bits of the used readings' slots.
    covered = ~(dt[:c] > MAX_COVERED_INTERVAL_S)
    part = np.minimum(dt[:c], t[:c] - view.day_start(seg.day))
    ledger.covered = _seq(ledger.covered, part[covered])
    ledger.today_total = float(seg.totals[c])
    if j >= 0:
        ledger.today_bits |= int(np.bitwise_or.reduce(np.left_shift(1, seg.slots[:c][seg.used[:c]])))
    # Flow: the day's lowest interval rate, then the running stretches.
    shorts = np.flatnonzero(seg.short[:c])
    if len(shorts) and seg.new_day < c:
        k = seg.new_day
        flow.note_interval(float(t0[k]), float(t[k]), seg.day, float(seg.litres[k]))
        shorts = shorts[1:]
    if len(shorts):
        rates = seg.litres[shorts] * 3600 / dt[shorts]
        flow.min_rate = min(flow.min_rate, float(rates.min()))
    if seg.flowing is not None and seg.high is not None:
        for a, b, s in ((0, min(seg.new_day, c), seg.s_old), (seg.new_day, c, seg.s_new)):
            if a < b and s <= 0.0:
                flow.fired_standing = False  # (above zero it is already set, or it would have fired)
        flow.run_start, flow.run_litres = _stretch(seg.flowing[:c], flow.run_start, flow.run_litres, seg)
        flow.high_start, flow.high_litres = _stretch(seg.high[:c], flow.high_start, flow.high_litres, seg)


def _longest_stretch(member: np.ndarray, start: float | None, t: F64, t0: F64) -> float:
    """The longest time any reading is into its stretch of ``member`` readings (0.0 for none)."""
    out = np.flatnonzero(~member)
    carried = start if start is not None else float(t0[0])
    if not len(out):
        return float(t[-1]) - carried
    longest = float(t[-1] - t[out[-1]])
    if out[0] > 0:
        longest = max(longest, float(t0[out[0]]) - carried)
    if len(out) > 1:
        longest = max(longest, float((t0[out[1:]] - t[out[:-1]]).max()))
    return longest


def _stretch_starts(member: np.ndarray, start: float | None, t0: F64) -> F64:
    """For each reading of a stretch of ``member`` readings, when that stretch began (FlowLogic)."""
    m = len(member)
    broken = np.maximum.accumulate(np.where(member, -1, np.arange(m)))
    carried = start if start is not None else t0[0]
    return np.where(broken >= 0, t0[np.minimum(broken + 1, m - 1)], carried)


def _stretch(member: np.ndarray, start: float | None, litres: float, seg: _Day) -> tuple[float | None, float]:
    """(start, litres) of the stretch after the readings of ``member`` (its length is what is applied)."""
    c, t0, add = len(member), seg.t0, seg.flow_l
    out = np.flatnonzero(~member)
    if len(out):
        j = int(out[-1])
        if j == c - 1:
            return None, 0.0
        return float(t0[j + 1]), _seq(0.0, add[j + 1 : c])
    if start is None:
        return float(t0[0]), _seq(0.0, add[:c])
    return start, _seq(litres, add[:c])


def clock_seconds(clock: time) -> float:
    return float(clock.hour * 3600 + clock.minute * 60 + clock.second)
