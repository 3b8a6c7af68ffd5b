"""The alerting side's configuration: the escalation policy, delivery deadlines and retries, check-ins."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from alerting.checkin_policy import CheckinConfig
from alerting.policy import DEFAULT_POLICY, EscalationPolicy

# The actor of what carewatch itself does on an alert's timeline.
SYSTEM_ACTOR = "carewatch"


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    policy: EscalationPolicy = DEFAULT_POLICY
    delivery_deadline: timedelta = timedelta(minutes=10)
    # Retry backoff of the dispatcher: base * 2**(attempt-1), capped.
    retry_base: timedelta = timedelta(seconds=1)
    retry_cap: timedelta = timedelta(seconds=60)
    # Which alerts ask the resident before paging anyone, and how (alerting.checkins).
    checkins: CheckinConfig = field(default_factory=CheckinConfig)
