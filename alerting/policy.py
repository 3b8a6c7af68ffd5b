"""Routing and escalation policy: pure data and pure decisions.

A policy maps each severity to ordered steps. Step 0 is notified when the alert opens; each later step
is notified when the previous step's wait runs out with nobody having claimed the alert. Steps name
care-plan tiers (1 = family and volunteer partner, 2 = neighbourhood committee staff and social workers,
3 = supervisors), so a household's plan decides the people and the policy decides the timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.kinds import Severity


@dataclass(frozen=True, slots=True)
class EscalationStep:
    tiers: frozenset[int]
    # How long to wait for a claim before the next step; None: last step, nothing further.
    wait: timedelta | None


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    steps: dict[Severity, tuple[EscalationStep, ...]]

    def step(self, severity: Severity, level: int) -> EscalationStep | None:
        steps = self.steps.get(severity, ())
        return steps[level] if 0 <= level < len(steps) else None

    def next_due(self, severity: Severity, level: int, since: datetime) -> datetime | None:
        """When the step after ``level`` is due if nobody claims, or None if there is none."""
        current = self.step(severity, level)
        if current is None or current.wait is None or self.step(severity, level + 1) is None:
            return None
        return since + current.wait


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
