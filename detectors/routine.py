"""Personal routine: "expected activity missing", from the resident's own last 28 days.

Question asked. The resident last used water at ``q`` and has been quiet since. On the comparable days
of the past four weeks, how long did a quiet gap starting at that time of day last? If today's gap is
already longer than on all (or all but ``allowed_exceptions``) of them, plus a margin, the usual
activity is missing: ROUTINE_MISSED. For the classic case (last use 21:10, usually first water by
07:30 on weekdays) that is "usual first use of the day is late"; the same computation covers any other
regular period (lunch, the evening wash) without naming it.

Computation (numpy, once per quiet stretch). From the ledger's usage masks build, for every pair of
consecutive history days, a 96-slot row (day *d* then day *d+1*); cumulative sums tell for every slot
*k* whether that history row was still quiet from the slot after ``q`` up to *k*. A history row is
*comparable* at *k* when its day type (weekday/weekend) matches the day type of the day *k* falls on,
so a resident who sleeps late at weekends is compared with weekends. The first *k* where at most
``allowed_exceptions`` comparable rows were still quiet (with at least ``min_days_per_type`` rows) is
the latest usual resumption. The margin is learned from the same rows: at least ``min_margin_min``,
and ``margin_factor`` times the spread between the median and the latest usual resumption, so an
irregular resident gets more slack. With ``pool_day_types`` (default) the limits are also computed
from all valid days and the longer of the two is used: rare stretches (a skipped meal, an afternoon
out) are then known from ~27 days instead of 19 weekdays or 7 weekend days. If the limit exceeds
``max_gap_h`` the routine stays quiet and leaves the stretch to the 12 h backstop (12 h by default, since
its false alarms cost a check-in rather than a volunteer's trip; see ``docs/detectors.md`` for the
measured trade-off).

The deadline is checked on readings (device time): only a reading proves that the gap is still
quiet. Once fired, the detector stays silent until water is used again (a new quiet stretch), and it
never fires for a stretch the backstop or program rule has already raised.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors.config import DetectorSuiteConfig, RoutineConfig
from detectors.context import SLOT_S, SLOTS_PER_DAY, HouseholdView, iso, to_dt
from detectors.daily import DayLedger
from detectors.events import finding
from schemas import evidence as ev
from schemas.findings import Finding
from schemas.kinds import AlertKind
from schemas.records import DeviceInfo


def quiet_limits(
    ledger: DayLedger, day: int, view: HouseholdView, cfg: DetectorSuiteConfig
) -> tuple[bytes, int] | None:
    """Per 30-minute slot of local ``day``: the usual longest quiet and the alarm limit in whole minutes
    (read them with :func:`minutes`), and the number of comparable days; None while there are too few
    comparable days."""
    rc = cfg.routine
    usage, valid, days = ledger.matrix()
    if len(days) < 2:
        return None
    weekend = (days + 3) % 7 >= 5
    both = valid[:-1] & valid[1:]
    comparable = both & (weekend[1:] == view.is_weekend(day))
    n = int(comparable.sum())
    if n < rc.min_days_per_type:
        return None
    # Quiet durations are per row, so they are computed once for every usable pair and the comparable
    # rows picked from them (a day's limits are computed for every meter: this is hot).
    dur = _quiet(np.concatenate([usage[:-1][both], usage[1:][both]], axis=1))
    own = dur[comparable[both]]
    if rc.pool_day_types:
        # Rare quiet stretches (a skipped meal, an afternoon out) are better known from all days; the
        # same-type limit still decides where it is longer (a weekend lie-in).
        pooled, mine = _limits(dur, rc), _limits(own, rc)
        usual, limit = np.maximum(pooled[0], mine[0]), np.maximum(pooled[1], mine[1])
    else:
        usual, limit = _limits(own, rc)
    # Cached per meter for the day, so kept compact: 96 little-endian uint16 of whole minutes in one
    # bytes object (durations are multiples of 15 min, so exact; "never" saturates at 65535 min). A
    # numpy array would cost its ~100 B header on top, and a float view of the sorted history would
    # keep the whole matrix (~7 KiB per meter) alive.
    packed = np.minimum(np.ceil(np.stack([usual, limit]) / 60.0), 65535.0)
    return packed.astype("<u2").tobytes(), n


def minutes(packed: bytes, row: int, slot: int) -> float:
    """Row 0 (usual longest quiet) or 1 (alarm limit) of :func:`quiet_limits` at ``slot``, in seconds."""
    i = 2 * (row * SLOTS_PER_DAY + slot)
    return float(packed[i] | packed[i + 1] << 8) * 60.0


def _quiet(rows: np.ndarray) -> np.ndarray:
    """Per history row (day d then day d+1, 96 slots) and slot of day d+1: how long it had been quiet at
    the end of that slot, rounded up to whole slots (history errs long); inf if never used."""
    # int8 (slot numbers fit): the running maximum over small integers is several times faster.
    last = np.maximum.accumulate(np.where(rows, _SLOTS2, _NONE), axis=1)[:, 48:]
    return np.where(last >= 0, (_SLOTS2[48:].astype(np.int64) - last + 1) * float(SLOT_S), np.inf)


_SLOTS2 = np.arange(2 * SLOTS_PER_DAY, dtype=np.int8)
_NONE = np.int8(-1)
_FLOAT_MIN = float(np.finfo(np.float64).min)


def _limits(dur: np.ndarray, rc: RoutineConfig) -> tuple[np.ndarray, np.ndarray]:
    """(usual longest quiet, alarm limit) per slot from history rows' quiet durations (:func:`_quiet`)."""
    n = len(dur)
    ordered = np.sort(dur, axis=0)
    usual = ordered[-(min(rc.allowed_exceptions, n - 1) + 1)]
    # The margin scales with the ordinary day-to-day spread (a quantile above the median), not with the
    # longest day: one afternoon out already sets ``usual`` and must not also double the margin.
    if rc.spread_quantile >= 1.0:
        upper = usual
    else:
        with np.errstate(invalid="ignore"):  # inf - inf between never-used rows: nan, no spread (below)
            upper = np.quantile(ordered, rc.spread_quantile, axis=0)
    # The median from the rows already sorted (what np.median computes, without sorting again).
    half = n // 2
    median = ordered[half] if n % 2 else (ordered[half - 1] + ordered[half]) / 2.0
    with np.errstate(invalid="ignore"):  # inf - inf where no comparable day ever used water: no spread
        spread = upper - median
    # What np.nan_to_num(spread, nan=0.0, posinf=0.0) does, in a fraction of its time.
    spread[~(spread < np.inf)] = 0.0
    spread[spread == -np.inf] = _FLOAT_MIN
    margin = np.maximum(rc.min_margin_min * 60.0, rc.margin_factor * spread)
    # Routines drift by an hour from day to day (a late lunch): the limit at a slot is the largest
    # usual quiet within ``tolerance_min`` either side, so a meal taken late is not a missed meal.
    # (Shifted maxima rather than numpy's sliding_window_view: that interns a fresh string per call,
    # and the churn grows CPython's interned-string table, ~1 MB the memory benchmark counted.)
    peak = usual + margin
    limit = peak.copy()
    for k in range(1, max(rc.tolerance_min // 30, 0) + 1):
        np.maximum(limit[k:], peak[:-k], out=limit[k:])
        np.maximum(limit[:-k], peak[k:], out=limit[:-k])
    return usual, limit


class RoutineLogic:
    """Per-meter routine state: whether the current quiet stretch fired; limits cached per day."""

    __slots__ = ("_for_newest", "_n", "_packed", "cfg", "device", "fired_q")

    def __init__(self, device: DeviceInfo, cfg: DetectorSuiteConfig, state: dict[str, Any] | None = None) -> None:
        self.device = device
        self.cfg = cfg
        self.fired_q: float | None = (state or {}).get("fired")
        # Derived from the ledger, so not part of the snapshot: the limits computed when the ledger's
        # newest closed day was ``_for_newest`` (the ledger's own int, so the key costs no memory;
        # its closed days change only when that changes). ``_packed`` is None for too few days.
        self._for_newest: int | None = None
        self._packed: bytes | None = None
        self._n = 0

    def limits(self, ledger: DayLedger, day: int, view: HouseholdView) -> tuple[bytes, int] | None:
        """The limits for ``day`` (None unless the history runs up to the day before)."""
        if ledger.newest is None or ledger.newest != day - 1:
            return None
        if self._for_newest != ledger.newest:
            self.prime(ledger, quiet_limits(ledger, day, view, self.cfg))
        return None if self._packed is None else (self._packed, self._n)

    def stale(self, ledger: DayLedger, day: int) -> bool:
        """Whether :meth:`limits` for ``day`` would compute them now (not cached, history up to date)."""
        return ledger.newest is not None and ledger.newest == day - 1 and self._for_newest != ledger.newest

    def prime(self, ledger: DayLedger, found: tuple[bytes, int] | None) -> None:
        """Cache limits computed elsewhere (fleet-wide) exactly as :meth:`limits` caches its own."""
        self._packed, self._n = found if found is not None else (None, 0)
        self._for_newest = ledger.newest

    def quiet_limit(self, ledger: DayLedger, t: float, view: HouseholdView) -> float | None:
        """How long a quiet stretch may last at ``t``'s time of day before it is unusual for this
        resident (None without a baseline)."""
        found = self.limits(ledger, view.day_index(t), view)
        return None if found is None else minutes(found[0], 1, view.slot(t - 1e-3))

    def check(
        self,
        ledger: DayLedger,
        t: float,
        now: float,
        q: float,
        litres: float,
        suppressed: str | None,
        view: HouseholdView,
        sign: ev.AfterSign | None = None,
    ) -> list[Finding]:
        """Evaluate the stretch quiet since ``q`` at reading time ``t`` (``litres`` used since ``q``);
        ``sign`` names a sign of life that began the stretch (a press), for the evidence."""
        if self.fired_q is not None:
            if q <= self.fired_q:
                return []  # this stretch already fired
            self.fired_q = None  # water resumed since: a new stretch
        rc = self.cfg.routine
        if not rc.enabled or not view.settings.routine_enabled or suppressed or t - q < rc.min_gap_min * 60:
            return []
        day = view.day_index(t)
        found = self.limits(ledger, day, view)
        if found is None:
            return []
        packed, n = found
        slot = view.slot(t - 1e-3)
        usual, limit = minutes(packed, 0, slot), minutes(packed, 1, slot)
        if t - q <= limit or limit > rc.max_gap_h * 3600:
            return []
        self.fired_q = q
        day_type = ev.DayType.WEEKENDS if view.is_weekend(day) else ev.DayType.WEEKDAYS
        evidence = view.evidence(
            t,
            ev.RoutineMissed(
                at=to_dt(t), day_type=day_type, usual_quiet_s=usual, comparable_days=n, since=to_dt(q),
                litres=litres, quiet_s=t - q, after_sign=sign,
            ),
        )  # fmt: skip
        return [
            finding(
                self.device, AlertKind.ROUTINE_MISSED, at=q, detected_at=now, detector="routine",
                evidence=evidence,
                details={
                    "quiet_since": iso(q), "usual_quiet_h": round(usual / 3600, 2),
                    "limit_h": round(limit / 3600, 2), "comparable_days": n, "litres": round(litres, 2),
                },
            )
        ]  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        return {"fired": self.fired_q}
