"""Continuous flow: water in every interval for a long stretch (a leak, a tap left running, a fall in
the shower).

Three rules over the meter's reading intervals, all in device time:

- *Running water*: a rate of at least ``high_rate_lpm`` in every interval for ``high_rate_min``
  minutes. Nobody showers or fills a basin for an hour; a tap left running or a person who fell in the
  shower looks exactly like this. HIGH severity.
- *Overnight flow*: water in every interval through the local night window (01:00–05:00 by default),
  the "minimum night flow" test of leak detection: the shorter, night-time stretch. NORMAL.
- *All-day flow*: water in every interval for ``day_stretch_h`` hours (24 h, Shenzhen's rule: water in
  every 30-minute slot over 24 hours is a suspected leak). NORMAL.

"Every interval" needs intervals short enough to mean something: an interval longer than
``max_interval_min`` (a gap, a daily upload with coarse readings) breaks the stretch rather than
bridging it. Each rule fires once per stretch (per night for the night rule) and re-arms when an
interval without flow ends the stretch.

Learned from the home itself (real meters showed why: in 200 Karratha homes the fixed rules raised
~46 water alerts per home-month, nearly all standing leaks and garden irrigation):

- *Standing flow*: the lowest interval rate of each of the last ``standing_days`` days. When every
  one of them flowed, the smallest is the home's floor (a leaking cistern): reported once as a LOW
  maintenance notice, and subtracted before every other rule, including "was water used" for the
  inactivity detectors, so a leak neither hides a fall nor raises a nightly alert.
- *Recurring flows*: a night with flow throughout, or an hour of high flow starting at about the same
  time of day (±3 h), seen on ``routine_days`` of the last ``routine_window_d`` days is the home's
  routine (an irrigation timer), not an alert. The first occurrences are still reported.
- Thresholds are rates (L/h, L/min), so 15-minute and hourly meters are judged alike.

Presence: the first measured interval without flow after a continuous-flow finding (someone turned the
tap off) emits a PRESENCE finding (``signal: flow_stopped``) that answers the alert's check-in.
"""

from __future__ import annotations

import math
from typing import Any

from detectors.config import DetectorSuiteConfig, FlowConfig
from detectors.context import DAY_S, HouseholdView, iso, to_dt
from detectors.events import finding, presence
from schemas import evidence as ev
from schemas.evidence import Evidence
from schemas.findings import Finding, PresenceSignal
from schemas.kinds import AlertKind, Severity
from schemas.records import DeviceInfo


def _seconds(clock: Any) -> float:
    return float(clock.hour * 3600 + clock.minute * 60 + clock.second)


def standing_lph(min_hist: tuple[float, ...], fc: FlowConfig) -> float:
    """The home's standing flow from the last days' lowest interval rates (0.0: none)."""
    if len(min_hist) < fc.standing_days or min(min_hist) < fc.standing_min_lph:
        return 0.0
    return min(min_hist)


class FlowLogic:
    """Run lengths of flowing intervals for one meter."""

    __slots__ = (
        "cfg",
        "device",
        "fired_high",
        "fired_night",
        "fired_run",
        "fired_standing",
        "high_litres",
        "high_start",
        "highs",
        "min_day",
        "min_hist",
        "min_rate",
        "nights",
        "run_litres",
        "run_start",
        "standing_lph",
        "stop_due",
    )

    def __init__(self, device: DeviceInfo, cfg: DetectorSuiteConfig, state: dict[str, Any] | None = None) -> None:
        self.device = device
        self.cfg = cfg
        s = state or {}
        self.run_start: float | None = s.get("run")
        self.run_litres: float = s.get("runl", 0.0)
        self.high_start: float | None = s.get("high")
        self.high_litres: float = s.get("highl", 0.0)
        self.fired_run: float | None = s.get("frun")
        self.fired_high: float | None = s.get("fhigh")
        self.fired_night: int | None = s.get("fnight")
        # Standing flow: today's lowest interval rate (L/h) and the last days' lowest rates.
        self.min_day: int | None = s.get("mday")
        self.min_rate: float = math.inf if s.get("mrate") is None else float(s["mrate"])
        # Tuples, rebuilt when they change (at most daily): the empty one is shared, a list is not.
        self.min_hist: tuple[float, ...] = tuple(float(x) for x in s.get("mhist", []))
        self.fired_standing: bool = bool(s.get("fstand", False))
        # Recent nights with flow throughout, and recent hour-long high flows as [day, local second].
        self.nights: tuple[int, ...] = tuple(int(x) for x in s.get("nights", []))
        self.highs: tuple[tuple[int, int], ...] = tuple((int(a), int(b)) for a, b in s.get("highs", []))
        self.standing_lph = standing_lph(self.min_hist, cfg.flow)
        # A continuous-flow finding was raised: the first interval without flow is news (PRESENCE).
        self.stop_due: bool = bool(s.get("fstop", False))

    def note_interval(self, t0: float, t: float, day: int, litres: float) -> None:
        """Track the lowest interval rate per local day (called for every measured interval; ``day`` is
        ``t``'s local day)."""
        fc = self.cfg.flow
        if t - t0 > fc.max_interval_min * 60:
            return
        if day != self.min_day:
            if self.min_day is not None and math.isfinite(self.min_rate):
                self.min_hist = (*self.min_hist, self.min_rate)[-fc.standing_days :]
                self.standing_lph = standing_lph(self.min_hist, fc)
            self.min_day, self.min_rate = day, math.inf
        self.min_rate = min(self.min_rate, litres * 3600 / (t - t0))

    def boundary(self) -> None:
        """A register series boundary: the interval is unknown, so every stretch ends here."""
        self.run_start = self.high_start = None
        self.run_litres = self.high_litres = 0.0

    def on_interval(self, t0: float, t: float, litres: float, now: float, view: HouseholdView) -> list[Finding]:
        fc = self.cfg.flow
        if not fc.enabled:
            return []
        dt = t - t0
        out: list[Finding] = self._standing_notice(t, now, view)
        litres = max(litres - self.standing_lph * dt / 3600, 0.0)
        if dt > fc.max_interval_min * 60 or litres * 3600 / dt < fc.flow_min_lph:
            self.boundary()
            if self.stop_due and dt <= fc.max_interval_min * 60:  # a gap proves nothing
                self.stop_due = False
                text = view.evidence(now, ev.FlowStopped(at=to_dt(t)))
                out.append(presence(self.device, AlertKind.CONTINUOUS_FLOW, PresenceSignal.FLOW_STOPPED, t, now, text))
            return out
        if self.run_start is None:
            self.run_start, self.run_litres = t0, 0.0
        self.run_litres += litres
        if litres / (dt / 60) >= fc.high_rate_lpm:
            if self.high_start is None:
                self.high_start, self.high_litres = t0, 0.0
            self.high_litres += litres
        else:
            self.high_start, self.high_litres = None, 0.0
        if self.high_start is not None and self.fired_high != self.high_start:
            span = t - self.high_start
            if span >= fc.high_rate_min * 60 and t - self.high_start > dt:
                self.fired_high = self.high_start
            # At least two readings: one hourly reading of 180 L cannot tell an hour of running water
            # from twenty minutes of a garden sprinkler.
            two = t - self.high_start > dt
            if span >= fc.high_rate_min * 60 and two and not self._recurring_high(self.high_start, view):
                rate = self.high_litres / (span / 60)
                running = ev.WaterRunning(
                    rate_lpm=rate, since=to_dt(self.high_start), running_s=span, litres=self.high_litres
                )
                out.append(
                    self._finding(self.high_start, now, Severity.HIGH, "flow_running", view.evidence(t, running))
                )
        out.extend(self._night(self.run_start, t, now, view))
        span = t - self.run_start
        if span >= fc.day_stretch_h * 3600 and self.fired_run != self.run_start:
            self.fired_run = self.run_start
            all_day = ev.WaterAllDay(
                running_s=span, since=to_dt(self.run_start), litres=self.run_litres,
                rate_lph=self.run_litres / span * 3600,
            )  # fmt: skip
            out.append(self._finding(self.run_start, now, Severity.NORMAL, "flow_all_day", view.evidence(t, all_day)))
        return out

    def _night(self, run_start: float, t: float, now: float, view: HouseholdView) -> list[Finding]:
        fc = self.cfg.flow
        day = view.day_index(t)
        night_end = view.day_start(day) + _seconds(fc.night_end)
        if night_end > t:
            day -= 1
            night_end -= DAY_S
        night_start = view.day_start(day) + _seconds(fc.night_start)
        if self.fired_night == day or run_start > night_start or t - night_end > DAY_S:
            return []
        self.fired_night = day
        usual = [d for d in self.nights if day - fc.routine_window_d <= d < day]
        self.nights = (*usual, day)
        if len(usual) >= fc.routine_days:
            return []  # the home's own routine (an irrigation timer), not a leak or a person in trouble
        text = ev.WaterOvernight(night_start=fc.night_start, night_end=fc.night_end, since=to_dt(run_start))
        return [self._finding(run_start, now, Severity.NORMAL, "flow_overnight", view.evidence(t, text))]

    def _recurring_high(self, start: float, view: HouseholdView) -> bool:
        """Record an hour-long high flow; True if one started within ±3 h of this time of day on
        ``routine_days`` of the last ``routine_window_d`` days (a garden timer)."""
        fc = self.cfg.flow
        day = view.day_index(start)
        second = int(start - view.day_start(day))
        recent = [h for h in self.highs if day - fc.routine_window_d <= h[0] <= day]
        similar = {
            h[0] for h in recent if h[0] < day and min(abs(h[1] - second), DAY_S - abs(h[1] - second)) <= 3 * 3600
        }
        self.highs = (*recent, (day, second))[-2 * fc.routine_window_d :]
        return len(similar) >= fc.routine_days

    def _standing_notice(self, t: float, now: float, view: HouseholdView) -> list[Finding]:
        if self.standing_lph <= 0.0:
            self.fired_standing = False
            return []
        if self.fired_standing:
            return []
        self.fired_standing = True
        days = self.cfg.flow.standing_days
        return [
            finding(
                self.device, AlertKind.MAINTENANCE, at=t, detected_at=now, detector="flow_standing",
                severity=Severity.LOW,
                evidence=view.evidence(
                    t,
                    ev.StandingFlow(days=days, rate_lph=self.standing_lph, litres_per_day=self.standing_lph * 24),
                ),
                details={"standing_lph": round(self.standing_lph, 2)},
            )
        ]  # fmt: skip

    def _finding(self, start: float, now: float, severity: Severity, detector: str, text: Evidence) -> Finding:
        self.stop_due = True
        return finding(
            self.device, AlertKind.CONTINUOUS_FLOW, at=start, detected_at=now, detector=detector,
            severity=severity, evidence=text, details={"flowing_since": iso(start)},
        )  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        return {
            "run": self.run_start,
            "runl": round(self.run_litres, 3),
            "high": self.high_start,
            "highl": round(self.high_litres, 3),
            "frun": self.fired_run,
            "fhigh": self.fired_high,
            "fnight": self.fired_night,
            "mday": self.min_day,
            "mrate": self.min_rate if math.isfinite(self.min_rate) else None,
            "mhist": list(self.min_hist),
            "fstand": self.fired_standing,
            "nights": list(self.nights),
            "highs": [list(h) for h in self.highs],
            "fstop": self.stop_due,
        }
