"""Routing and escalation policy: pure data and pure decisions (no I/O, no wall clock).

A policy maps each severity to ordered steps. Step 0 is notified when the alert opens; each later step
is notified when the previous step's wait runs out with nobody having claimed the alert (or at once
when everyone asked has declined, or a critical delivery died). Steps name care-plan tiers
(1 = family and volunteer partner, 2 = neighbourhood committee staff and social workers,
3 = supervisors), so a household's plan decides the people and the policy decides the timing.

When a notification may go out is decided here too (``not_before``):
- critical and high go out at once, always: an emergency never waits for office hours;
- normal and low wait for the contact's working hours when the plan gives them (the care team's
  work queue), and low also waits out the policy's quiet hours (maintenance is not worth a 2 am ping).
Local times are in the household's time zone; everything returned is aware UTC.

The policy is configurable (``policy_from_config``: a TOML table such as
``critical = [{tiers = [1, 2], wait_s = 180}, {tiers = [3]}]``); severities left out keep the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.care import WorkingHours
from schemas.kinds import Severity


class PolicyError(ValueError):
    """The escalation configuration is not valid; ``key`` names the offending entry."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True, slots=True)
class EscalationStep:
    tiers: frozenset[int]
    # How long to wait for a claim before the next step; None: last step, nothing further.
    wait: timedelta | None


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    steps: dict[Severity, tuple[EscalationStep, ...]]
    # Local (start, end) during which low-severity notifications are held; None: no quiet hours.
    quiet_hours: tuple[time, time] | None = (time(22, 0), time(7, 0))
    quiet_severities: frozenset[Severity] = field(default_factory=lambda: frozenset({Severity.LOW}))
    # Severities that wait for a contact's working hours (the care team's work queue).
    queued_severities: frozenset[Severity] = field(default_factory=lambda: frozenset({Severity.NORMAL, Severity.LOW}))

    def step(self, severity: Severity, level: int) -> EscalationStep | None:
        steps = self.steps.get(severity, ())
        return steps[level] if 0 <= level < len(steps) else None

    def next_due(self, severity: Severity, level: int, since: datetime) -> datetime | None:
        """When the step after ``level`` is due if nobody claims, or None if there is none."""
        current = self.step(severity, level)
        if current is None or current.wait is None or self.step(severity, level + 1) is None:
            return None
        return since + current.wait

    def not_before(
        self, severity: Severity, now: datetime, timezone: str, working_hours: WorkingHours | None
    ) -> datetime:
        """Earliest time a notification of ``severity`` may be sent to a contact (``now`` if at once)."""
        zone = _zone(timezone)
        at = now
        # Alternate until both constraints hold; two rounds suffice for any sane pair of windows, the
        # bound guards against a configuration where they never overlap (then send: better late than lost).
        for _ in range(4):
            moved = at
            if severity in self.queued_severities and working_hours is not None:
                moved = _next_inside(moved, zone, working_hours.days, working_hours.start, working_hours.end)
            if severity in self.quiet_severities and self.quiet_hours is not None:
                moved = _next_outside(moved, zone, *self.quiet_hours)
            if moved == at:
                return at
            at = moved
        return at


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def _in_window(moment: time, start: time, end: time) -> bool:
    return start <= moment < end if start < end else moment >= start or moment < end


def _next_inside(now: datetime, zone: ZoneInfo, days: Sequence[int], start: time, end: time) -> datetime:
    """``now`` if it is inside the weekly window, else the window's next opening (aware UTC)."""
    local = now.astimezone(zone)
    # A window spanning midnight belongs to the day it starts on.
    opened_day = local.date() if local.time() >= start or start < end else local.date() - timedelta(days=1)
    if _in_window(local.time(), start, end) and opened_day.isoweekday() in days:
        return now
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        opening = datetime.combine(day, start, tzinfo=zone)
        if day.isoweekday() in days and opening > local:
            return opening.astimezone(UTC)
    return now  # no valid day at all: validation prevents it; never hold an alert forever


def _next_outside(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """``now`` if it is outside the daily quiet window, else the window's end (aware UTC)."""
    local = now.astimezone(zone)
    if not _in_window(local.time(), start, end):
        return now
    day = local.date() if local.time() < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def _step(tiers: set[int], minutes: float | None) -> EscalationStep:
    return EscalationStep(frozenset(tiers), None if minutes is None else timedelta(minutes=minutes))


DEFAULT_POLICY = EscalationPolicy(
    steps={
        # Emergencies: the first two tiers at once; unclaimed after 3 minutes, supervisors too.
        Severity.CRITICAL: (_step({1, 2}, 3), _step({3}, None)),
        # Inactivity, continuous flow: family/volunteer; committee staff at 15 min; supervisor at 30 min.
        Severity.HIGH: (_step({1}, 15), _step({2}, 15), _step({3}, None)),
        # Device offline, service requests: the care team's queue (tier 2), no escalation by default.
        Severity.NORMAL: (_step({2}, None),),
        Severity.LOW: (_step({2}, None),),
    }
)


class _StepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: list[int] = Field(min_length=1)
    wait_s: float | None = Field(default=None, gt=0)


def _parse_time(key: str, text: str) -> time:
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise PolicyError(key, f"not a HH:MM time: {text!r}") from exc


def policy_from_config(
    steps: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    *,
    quiet_hours: str | None = "22:00-07:00",
    base: EscalationPolicy = DEFAULT_POLICY,
) -> EscalationPolicy:
    """A policy from configuration: ``steps`` per severity name, ``quiet_hours`` as ``"HH:MM-HH:MM"``
    (empty or None: none). Raises ``PolicyError`` naming the bad entry."""
    merged = dict(base.steps)
    for name, raw_steps in (steps or {}).items():
        try:
            severity = Severity(name)
        except ValueError as exc:
            raise PolicyError(name, f"unknown severity (one of {', '.join(Severity)})") from exc
        parsed: list[EscalationStep] = []
        for index, raw in enumerate(raw_steps):
            try:
                item = _StepConfig.model_validate(raw)
            except ValidationError as exc:
                raise PolicyError(f"{name}[{index}]", str(exc.errors()[0]["msg"])) from exc
            if any(tier < 1 for tier in item.tiers):
                raise PolicyError(f"{name}[{index}]", "tiers start at 1")
            wait = None if item.wait_s is None else timedelta(seconds=item.wait_s)
            if wait is None and index < len(raw_steps) - 1:
                raise PolicyError(f"{name}[{index}]", "only the last step may have no wait_s")
            parsed.append(EscalationStep(frozenset(item.tiers), wait))
        if not parsed:
            raise PolicyError(name, "needs at least one step")
        merged[severity] = tuple(parsed)
    quiet: tuple[time, time] | None = None
    if quiet_hours:
        start, sep, end = quiet_hours.partition("-")
        if not sep:
            raise PolicyError("quiet_hours", f"expected HH:MM-HH:MM, got {quiet_hours!r}")
        quiet = (_parse_time("quiet_hours", start.strip()), _parse_time("quiet_hours", end.strip()))
        if quiet[0] == quiet[1]:
            raise PolicyError("quiet_hours", "start and end must differ")
    return replace(base, steps=merged, quiet_hours=quiet)
