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
"""

from __future__ import annotations

from typing import Any

from detectors.config import DetectorSuiteConfig
from detectors.context import DAY_S, HouseholdView, hours, iso
from detectors.events import finding
from schemas.findings import Finding
from schemas.kinds import AlertKind, Severity
from schemas.records import DeviceInfo


def _seconds(clock: Any) -> float:
    return float(clock.hour * 3600 + clock.minute * 60 + clock.second)


class FlowLogic:
    """Run lengths of flowing intervals for one meter."""

    __slots__ = (
        "cfg",
        "device",
        "fired_high",
        "fired_night",
        "fired_run",
        "high_litres",
        "high_start",
        "run_litres",
        "run_start",
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

    def boundary(self) -> None:
        """A register series boundary: the interval is unknown, so every stretch ends here."""
        self.run_start = self.high_start = None
        self.run_litres = self.high_litres = 0.0

    def on_interval(self, t0: float, t: float, litres: float, now: float, view: HouseholdView) -> list[Finding]:
        fc = self.cfg.flow
        if not fc.enabled:
            return []
        dt = t - t0
        if dt > fc.max_interval_min * 60 or litres <= 0:
            self.boundary()
            return []
        if self.run_start is None:
            self.run_start, self.run_litres = t0, 0.0
        self.run_litres += litres
        if litres / (dt / 60) >= fc.high_rate_lpm:
            if self.high_start is None:
                self.high_start, self.high_litres = t0, 0.0
            self.high_litres += litres
        else:
            self.high_start, self.high_litres = None, 0.0
        out: list[Finding] = []
        if self.high_start is not None and self.fired_high != self.high_start:
            span = t - self.high_start
            if span >= fc.high_rate_min * 60:
                self.fired_high = self.high_start
                rate = self.high_litres / (span / 60)
                out.append(
                    self._finding(
                        self.high_start, now, Severity.HIGH, "flow_running",
                        f"water running at {rate:.1f} L/min since {view.fmt(self.high_start, t)} ({hours(span)}, "
                        f"{self.high_litres:.0f} L): a tap left running, or a fall in the shower; call the resident",
                    )
                )  # fmt: skip
        out.extend(self._night(self.run_start, t, now, view))
        span = t - self.run_start
        if span >= fc.day_stretch_h * 3600 and self.fired_run != self.run_start:
            self.fired_run = self.run_start
            out.append(
                self._finding(
                    self.run_start, now, Severity.NORMAL, "flow_all_day",
                    f"water used in every interval for {hours(span)} since {view.fmt(self.run_start, t)} "
                    f"({self.run_litres:.0f} L, {self.run_litres / span * 3600:.1f} L/h): a leak or a tap left running",
                )
            )  # fmt: skip
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
        return [
            self._finding(
                run_start, now, Severity.NORMAL, "flow_overnight",
                f"water used in every interval through the night ({fc.night_start:%H:%M}–{fc.night_end:%H:%M}), "
                f"flowing since {view.fmt(run_start, t)}: a leak, or someone up and in trouble",
            )
        ]  # fmt: skip

    def _finding(self, start: float, now: float, severity: Severity, detector: str, text: str) -> Finding:
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
        }
