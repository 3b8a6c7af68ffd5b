"""Frozen configuration of the detector suite, and per-household settings.

Two layers, both immutable values:

- :class:`DetectorSuiteConfig` is the fleet-wide tuning (one per deployment, built once by the
  composition root). Each detector has its own small frozen config so a backtest can override one
  threshold with :func:`dataclasses.replace` and replay history through otherwise identical code.
- :class:`HouseholdSettings` is what a care team sets for one home: the program thresholds it uses,
  "away" and "in hospital" periods (which suppress inactivity and routine findings, never emergencies),
  and quiet windows during which low-severity notices are held back until morning.

``HouseholdSettings.from_json`` reads the ``households.settings`` JSON column; unknown keys are an
error so that a typo in a threshold is noticed instead of silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any


@dataclass(frozen=True, slots=True)
class FlatRuleConfig:
    """A fixed-window inactivity rule.

    ``personal=False`` is the program rule exactly as the districts run it: less than ``min_litres``
    over ``window_h`` hours of device time. ``personal=True`` is the default suite's *backstop*: no
    single use (an interval adding at least ``use_min_l`` above the home's own standing flow) for
    ``window_h`` hours. The backstop never fires later than the program rule for a resident who
    stopped using water altogether (a fall), but ignores drips, a standing leak and small uses that
    keep the program rule's 10-litre window from closing, and it is never held back: the 12 h
    promise holds for every resident, regular or not.
    """

    name: str = "flat_12h"
    window_h: float = 12.0
    min_litres: float = 10.0
    enabled: bool = True
    personal: bool = False


@dataclass(frozen=True, slots=True)
class RoutineConfig:
    """Personal routine: a quiet gap the resident's own history says should have ended by now."""

    enabled: bool = True
    history_days: int = 28
    # Comparable history days (same day type) needed before the detector speaks at all.
    min_days_per_type: int = 6
    # How many comparable days may have had an equally long gap and still call today's unusual.
    allowed_exceptions: int = 0
    # Gaps shorter than this are never examined (saves work; nobody is late after 30 minutes).
    min_gap_min: int = 60
    # Margin added after the latest usual resumption: at least this, more for spread-out residents.
    min_margin_min: int = 60
    margin_factor: float = 1.0
    # The spread is measured from the median to this quantile of the comparable days' quiet (1.0: to
    # the longest, which lets a single outlier double the margin).
    spread_quantile: float = 1.0
    # Day-to-day drift of the routine: a slot's limit is the largest within this many minutes of it.
    tolerance_min: int = 60
    # Deadlines later than this after the last use are left to the backstop. Long limits (6-12 h) were
    # the routine's main false alarms when every alert paged a volunteer (issue 4: capped at 5.5 h).
    # Now an alert first checks in with the resident, so a false one costs a button press: uncapped
    # (12 h, the backstop's window), the regular residents' median time to page falls from 408 to 371 min
    # for +0.08 check-ins per home-month (real homes: +0.03); docs/detectors.md, bench/detect_eval.py.
    max_gap_h: float = 12.0
    # Also learn from all valid days (both day types) and use the longer limit of the two: rare
    # stretches (a skipped meal, an afternoon out) are known from 27 days instead of 19 or 7.
    pool_day_types: bool = True


@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Continuous flow: water in every interval for a long stretch (leak, tap left running, fall)."""

    enabled: bool = True
    day_stretch_h: float = 24.0
    # Flow in every interval of this local night window is reported when the window ends.
    night_start: time = time(1, 0)
    night_end: time = time(5, 0)
    # A high, steady rate (a tap or shower running) is urgent after a much shorter time.
    high_rate_lpm: float = 3.0
    high_rate_min: float = 60.0
    # Intervals longer than this cannot show "flow in every interval" and break a stretch.
    max_interval_min: float = 65.0
    # An interval "flows" when its rate above the home's standing flow is at least this (L/h): rate,
    # not litres, so 15-minute and hourly meters are judged alike.
    flow_min_lph: float = 2.0
    # Standing flow (a leak, a dripping cistern): the lowest interval rate of each of the last
    # ``standing_days`` days; when all are at least ``standing_min_lph`` the smallest is the home's floor.
    standing_min_lph: float = 1.0
    # It is reported once as a LOW maintenance notice and subtracted before every other water rule.
    standing_days: int = 3
    # Nightly or hourly-long flows that recur at the same time (an irrigation timer) are the home's
    # routine: seen on at least ``routine_days`` of the last ``routine_window_d`` days, not alerted.
    routine_days: int = 2
    routine_window_d: int = 14


@dataclass(frozen=True, slots=True)
class ExcessConfig:
    """Excessive daily use: an absolute bound, or far above the resident's own history."""

    enabled: bool = True
    daily_max_l: float = 2000.0
    relative_factor: float = 3.0
    relative_min_l: float = 400.0
    min_history_days: int = 14


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Device health: silence past the expected interval, Last Will, battery and signal."""

    grace_factor: float = 2.0
    grace_min_s: float = 60.0
    low_battery_pct: int = 20
    weak_rssi_dbm: int = -110
    # Devices of one household silent within this long of each other are one outage, not several.
    group_window_s: float = 30 * 60.0


@dataclass(frozen=True, slots=True)
class EventConfig:
    """Smoke alarm and call button event handling."""

    cancel_window_s: float = 120.0
    # Presses inside this window of the last counted press are one press (a bouncing or held button):
    # they attach to the open alert without notifying again. They never stop a new alert once the
    # earlier one is resolved (alerting decides that, from the alert's state).
    debounce_s: float = 60.0
    # A smoke alarm that repeats ``alarm`` after this long without one is sounding again: its
    # occurrence notifies again (or opens a new alert if the first one is resolved).
    alarm_quiet_s: float = 30 * 60.0


@dataclass(frozen=True, slots=True)
class SilenceConfig:
    """Silence is not safety: a silent meter whose home's last known use (or other sign of life) is as
    old as the backstop's window (less the check-in lead) raises an urgent "cannot confirm" inactivity
    finding (``detectors/silence.py``).

    A meter is *silent* once nothing arrived from it for its expected interval (its upload period: a
    daily-upload meter between two uploads is not silent) plus a slack. The slack only has to cover an
    upload arriving a little late: NB-IoT uploads land seconds to a few minutes after their schedule
    (a modem waking from power saving, a retry), so a reading later than a tenth of its period (at
    least 5 minutes) has been lost, not delayed. Waiting longer costs the resident who may be on the
    floor; guessing wrong costs one check-in, answered by the next reading that shows use.
    """

    enabled: bool = True
    slack_factor: float = 0.1
    slack_min_s: float = 300.0


@dataclass(frozen=True, slots=True)
class DetectorSuiteConfig:
    """Everything the detectors need, fleet-wide. Build once; override with ``dataclasses.replace``."""

    flat_rules: tuple[FlatRuleConfig, ...] = (
        FlatRuleConfig(personal=True),
        FlatRuleConfig(name="daily_min_24h", window_h=24.0, min_litres=10.0, enabled=False),
    )
    routine: RoutineConfig = field(default_factory=RoutineConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    excess: ExcessConfig = field(default_factory=ExcessConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    events: EventConfig = field(default_factory=EventConfig)
    silence: SilenceConfig = field(default_factory=SilenceConfig)
    # An interval must add at least this much to the register to count as "water used" (drips,
    # meter noise and rounding stay below it).
    use_min_l: float = 1.0
    # Water must resume by this much before an inactivity finding is considered cleared.
    resume_l: float = 2.0
    # The register may wobble down by this much without being a reset.
    reset_tolerance_l: float = 0.5
    # Faster than this is not water but a register glitch, and starts a new series.
    max_plausible_lpm: float = 120.0


@dataclass(frozen=True, slots=True)
class Period:
    """An away or hospital period, in UTC. Suppresses inactivity/routine findings inside it.

    ``until_use``: the period also ends at the first sign of life after its start (water used, a
    call-button press, a smoke alarm hushed or tested), whichever comes first; the "away" answer to a
    check-in sets one (at most 72 h) when the resident is out and nobody knows for how long.
    """

    start: datetime
    end: datetime
    reason: str = "away"
    until_use: bool = False


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """A local-time window (may cross midnight) in which low-severity notices are held back."""

    start: time
    end: time


# "checkin" is the check-in policy (alerting/checkin_policy.py); detectors only see its lead.
_HOUSEHOLD_KEYS = frozenset(
    {"timezone", "flat_min_litres", "flat_window_h", "daily_max_l", "routine_enabled", "away", "quiet", "checkin"}
)


@dataclass(frozen=True, slots=True)
class HouseholdSettings:
    """Per-household settings; ``None`` thresholds fall back to the suite configuration."""

    timezone: str = "Asia/Shanghai"
    flat_min_litres: float | None = None
    flat_window_h: float | None = None
    daily_max_l: float | None = None
    routine_enabled: bool = True
    away: tuple[Period, ...] = ()
    quiet: tuple[QuietWindow, ...] = ()
    # How long the household's inactivity check-in may take before it pages (``CheckinConfig.lead``,
    # set by the runner): the backstop and the silence rule raise that much earlier, so a fall is still
    # paged within the window when nobody answers. Not read from the JSON (it follows ``checkin``).
    checkin_lead_s: float = 0.0

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, timezone: str | None = None) -> HouseholdSettings:
        """Build from the ``households.settings`` JSON (and the ``timezone`` column).

        ``away`` is a list of ``{"start": iso, "end": iso, "reason": "away"|"hospital", "until_use"?: bool}``;
        ``quiet`` a list of ``{"start": "22:00", "end": "07:00"}``; ``checkin`` (the check-in policy) is
        alerting's and ignored here.
        """
        unknown = set(data) - _HOUSEHOLD_KEYS
        if unknown:
            raise ValueError(f"unknown household settings: {sorted(unknown)}")
        away = tuple(
            Period(_aware(p["start"]), _aware(p["end"]), str(p.get("reason", "away")), bool(p.get("until_use", False)))
            for p in data.get("away", ())
        )
        quiet = tuple(
            QuietWindow(time.fromisoformat(q["start"]), time.fromisoformat(q["end"])) for q in data.get("quiet", ())
        )
        return cls(
            timezone=timezone or str(data.get("timezone", "Asia/Shanghai")),
            flat_min_litres=_opt_float(data.get("flat_min_litres")),
            flat_window_h=_opt_float(data.get("flat_window_h")),
            daily_max_l=_opt_float(data.get("daily_max_l")),
            routine_enabled=bool(data.get("routine_enabled", True)),
            away=away,
            quiet=quiet,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"timezone": self.timezone, "routine_enabled": self.routine_enabled}
        for key in ("flat_min_litres", "flat_window_h", "daily_max_l"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["away"] = [
            {"start": p.start.isoformat(), "end": p.end.isoformat(), "reason": p.reason}
            | ({"until_use": True} if p.until_use else {})
            for p in self.away
        ]
        out["quiet"] = [{"start": q.start.isoformat("minutes"), "end": q.end.isoformat("minutes")} for q in self.quiet]
        return out

    def flat_rule(self, rule: FlatRuleConfig) -> FlatRuleConfig:
        """The program rule as this household uses it (overrides apply to the primary 12 h rule)."""
        if rule.name != "flat_12h" or (self.flat_window_h is None and self.flat_min_litres is None):
            return rule  # the common case, on every reading: no new object
        return FlatRuleConfig(
            name=rule.name,
            window_h=self.flat_window_h if self.flat_window_h is not None else rule.window_h,
            min_litres=self.flat_min_litres if self.flat_min_litres is not None else rule.min_litres,
            enabled=rule.enabled,
            personal=rule.personal,
        )


def _aware(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("away/hospital period times need an offset")
    return parsed.astimezone(UTC)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
