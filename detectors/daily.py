"""The day ledger of one meter: 28 days of 30-minute usage bits and daily totals, and excessive use.

The personal baseline is kept in the most compact form that still answers the routine detector's
question ("on comparable days, how long did a quiet gap starting at this time of day last?"): per local
day one 48-bit mask (bit *s* set when water was used in 30-minute slot *s*), a validity bit, and the
day's total litres. 28 days cost 28 × 6 bytes of masks plus 28 × 4 bytes of float32 totals, kept in
two ``bytes`` objects (no over-allocation, a 33-byte header each: about 0.35 KiB per meter), rebuilt
as days close (a rolling window, no decay constants to tune).

Attribution. A reading interval's water is put in the slot that contains the *end* of the interval.
For intervals longer than a slot (hourly meters, gaps) that can only move use later and leave earlier
slots empty, which makes historic gaps look longer, never shorter, so the routine deadline errs late
(fewer false alarms), never early. A day counts as valid only when readings covered at least
``MIN_COVERAGE_S`` of it and no away/hospital period touched it: a day with the meter offline is not a
day without water, and a day away is not the resident's routine.

Excessive use is judged here because it needs the same totals: today's running total above the
absolute bound (``daily_max_l``, 2 m³ in the Jing'an program) or above ``relative_factor`` times the
resident's own 90th-percentile day (and at least ``relative_min_l``) raises EXCESSIVE_USE once a day.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from detectors.config import DetectorSuiteConfig
from detectors.context import DAY_S, HouseholdView, to_dt
from detectors.events import finding
from schemas import evidence as ev
from schemas.findings import Finding
from schemas.kinds import AlertKind
from schemas.records import DeviceInfo

MIN_COVERAGE_S = 20 * 3600
# Interval longer than this do not count towards a day's coverage (the resolution is too coarse).
MAX_COVERED_INTERVAL_S = 3 * 3600
# A day's usage mask, little-endian: 48 slots in 6 bytes.
MASK_BYTES = 6


class DayLedger:
    """Rolling per-day usage masks and totals; ``newest`` is the local day of the last closed entry."""

    __slots__ = (
        "_p90",
        "_p90_stale",
        "bits",
        "cfg",
        "covered",
        "device",
        "excess_day",
        "newest",
        "today",
        "today_bits",
        "today_total",
        "totals",
        "valid",
    )

    def __init__(self, device: DeviceInfo, cfg: DetectorSuiteConfig, state: dict[str, Any] | None = None) -> None:
        self.device = device
        self.cfg = cfg
        s = state or {}
        # Oldest first: MASK_BYTES per day, and each day's total as float32.
        self.bits = b"".join(int(x).to_bytes(MASK_BYTES, "little") for x in s.get("bits", []))
        self.totals = array("f", s.get("totals", [])).tobytes()
        # Bit i set when entry i (oldest first) is a valid day.
        self.valid: int = s.get("valid", 0)
        self.newest: int | None = s.get("newest")
        self.today: int | None = s.get("today")
        self.today_bits: int = s.get("tbits", 0)
        self.covered: float = s.get("cov", 0.0)
        self.today_total: float = s.get("ttotal", 0.0)
        self.excess_day: int | None = s.get("xday")
        # Derived, not snapshotted: the usual high day, recomputed after a day closes.
        self._p90: float | None = None
        self._p90_stale = True

    # Accumulation --------------------------------------------------------------------------------
    def roll_to(self, day: int, view: HouseholdView) -> None:
        """Close every day before ``day`` (days never seen become invalid entries)."""
        if self.today is None:
            self.today = day
            return
        while self.today < day:
            ok = self.covered >= MIN_COVERAGE_S
            if ok and view.has_away:
                start = view.day_start(self.today)
                ok = view.away_reason(start) is None and view.away_reason(start + DAY_S - 1) is None
                ok = ok and view.away_floor(start + DAY_S) <= start
            self._push(self.today_bits, self.today_total, ok)
            self.today += 1
            self.today_bits, self.today_total, self.covered = 0, 0.0, 0.0

    def _push(self, bits: int, total: float, ok: bool) -> None:
        keep = self.cfg.routine.history_days
        n = self.days + 1
        self.valid |= int(ok) << (n - 1)
        drop = max(n - keep, 0)
        # One new bytes object each (slice and append together): this runs for every meter every day.
        self.bits = self.bits[drop * MASK_BYTES :] + bits.to_bytes(MASK_BYTES, "little")
        self.totals = self.totals[drop * 4 :] + array("f", [total]).tobytes()
        self.valid >>= drop
        self.newest = self.today
        self._p90_stale = True

    @property
    def days(self) -> int:
        """Closed days held (at most ``history_days``)."""
        return len(self.bits) // MASK_BYTES

    def add(self, t0: float, t: float, day: int, litres: float, used: bool, view: HouseholdView) -> None:
        """The interval (t0, t] (``day`` is t's local day) used ``litres``; ``used`` if above the floor."""
        if day != self.today:
            self.roll_to(day, view)
        if t - t0 <= MAX_COVERED_INTERVAL_S:
            self.covered += min(t - t0, t - view.day_start(day))
        if used:
            self.today_bits |= 1 << view.slot(t - 1e-3)
        self.today_total += litres

    # Queries ---------------------------------------------------------------------------------------
    def matrix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(usage bool[n, 48], valid bool[n], day index int[n]) for the closed days, oldest first."""
        n = self.days
        if n == 0 or self.newest is None:
            return np.zeros((0, 48), bool), np.zeros(0, bool), np.zeros(0, np.int64)
        raw = np.frombuffer(self.bits, dtype=np.uint8).reshape(n, MASK_BYTES)
        usage = np.unpackbits(raw, axis=1, bitorder="little").view(bool)
        valid = ((self.valid >> np.arange(n)) & 1).astype(bool)
        days = np.arange(self.newest - n + 1, self.newest + 1)
        return usage, valid, days

    def check_excess(self, t: float, now: float, view: HouseholdView) -> list[Finding]:
        cfg = self.cfg.excess
        if not cfg.enabled or self.today is None or self.excess_day == self.today:
            return []
        limit = view.settings.daily_max_l if view.settings.daily_max_l is not None else cfg.daily_max_l
        if self.today_total <= min(limit, cfg.relative_min_l):
            return []  # below both bounds, whatever the usual high day (spares the percentile)
        reason: ev.ExcessOverLimit | ev.ExcessOverUsual | None = None
        p90 = self.usual_high()
        total, by = self.today_total, to_dt(t)
        # The program's absolute bound is for homes where it is exceptional; a home whose own usual
        # high day is above it (a garden, a large family) is judged against its own history instead.
        if total > limit and (p90 is None or p90 < limit):
            reason = ev.ExcessOverLimit(litres=total, at=by, limit_l=limit)
        elif p90 is not None and total > max(cfg.relative_min_l, cfg.relative_factor * p90):
            reason = ev.ExcessOverUsual(litres=total, at=by, factor=total / max(p90, 1.0), usual_high_l=p90)
        if reason is None:
            return []
        self.excess_day = self.today
        start = view.day_start(self.today)
        return [
            finding(
                self.device, AlertKind.EXCESSIVE_USE, at=start, detected_at=now, detector="excessive_use",
                evidence=view.evidence(t, reason),
                details={"litres_today": round(self.today_total, 1), "limit_l": limit},
            )
        ]  # fmt: skip

    def usual_high(self) -> float | None:
        """90th percentile of the valid daily totals (cached until the next day closes)."""
        if self._p90_stale:
            totals = np.frombuffer(self.totals, dtype=np.float32)
            valid = ((self.valid >> np.arange(len(totals))) & 1).astype(bool)
            usual = totals[valid]
            enough = len(usual) >= self.cfg.excess.min_history_days
            self._p90 = float(np.percentile(usual, 90)) if enough else None
            self._p90_stale = False
        return self._p90

    def snapshot(self) -> dict[str, Any]:
        return {
            "bits": [
                int.from_bytes(self.bits[i : i + MASK_BYTES], "little") for i in range(0, len(self.bits), MASK_BYTES)
            ],
            "totals": [round(x, 1) for x in array("f", self.totals).tolist()],
            "valid": self.valid,
            "newest": self.newest,
            "today": self.today,
            "tbits": self.today_bits,
            "cov": self.covered,
            "ttotal": round(self.today_total, 3),
            "xday": self.excess_day,
        }

    def nbytes(self) -> int:
        """Approximate in-memory size of the ledger's buffers (for the memory budget)."""
        return len(self.bits) + len(self.totals) + 33 * 2 + 8 * 11
