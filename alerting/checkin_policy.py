"""How carewatch checks on a resident before paging a person: pure data and pure decisions.

An inactivity, routine-missed or continuous-flow alert first asks the resident: attempt 1 goes out at
once by each of the policy's channels (the call button beeps and blinks; the resident's phone gets an
automated call or SMS), each attempt waits ``wait`` for an answer, and an unanswered attempt is
followed by the next one. ``ok`` (or any sign of life) resolves the alert as ``resident_ok``; ``away``
resolves it as ``away`` and announces an absence; ``help``, or no answer after the last attempt, pages
the care plan at once. Emergencies (sos, smoke) never check in: they page at once.

The whole check-in takes at most ``total`` (attempts × wait) before a page, so detectors whose promise
is "paged within 12 hours" raise that much earlier (``lead``: the runner passes it to the detectors as
``HouseholdSettings.checkin_lead_s``).

Per household, ``households.settings["checkin"]`` overrides the fleet policy per kind, e.g.
``{"inactivity": {"enabled": true, "wait_s": 600, "attempts": 2, "channels": ["button", "voice"]}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from schemas.kinds import AlertKind, DeliveryChannel

# The alert kinds that may check in first. Never sos or smoke: a press or a fire pages at once.
CHECKIN_KINDS = frozenset({AlertKind.INACTIVITY, AlertKind.ROUTINE_MISSED, AlertKind.CONTINUOUS_FLOW})
RESIDENT_CHANNELS = frozenset({DeliveryChannel.BUTTON, DeliveryChannel.VOICE, DeliveryChannel.RESIDENT_SMS})
_MAX_WAIT = timedelta(hours=2)
_MAX_ATTEMPTS = 5


class CheckinPolicyError(ValueError):
    """A check-in setting is not valid; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True, slots=True)
class CheckinPolicy:
    enabled: bool = True
    # How long each attempt waits for an answer before the next attempt (or the page).
    wait: timedelta = timedelta(minutes=10)
    attempts: int = 2
    channels: tuple[DeliveryChannel, ...] = (DeliveryChannel.BUTTON, DeliveryChannel.VOICE)

    @property
    def total(self) -> timedelta:
        """From the first attempt to the page when nobody answers."""
        return self.wait * self.attempts if self.enabled else timedelta(0)

    def attempt_due(self, attempt: int) -> timedelta:
        """When attempt ``attempt`` (1-based) goes out, from the check-in's start."""
        return self.wait * (attempt - 1)


@dataclass(frozen=True, slots=True)
class CheckinConfig:
    """The fleet's check-in policy per alert kind (kinds not listed page at once)."""

    policies: Mapping[AlertKind, CheckinPolicy] = field(
        default_factory=lambda: {kind: CheckinPolicy() for kind in CHECKIN_KINDS}
    )

    def policy(self, kind: AlertKind, household: Mapping[str, Any] | None = None) -> CheckinPolicy | None:
        """The policy for ``kind`` in a household (its ``settings["checkin"]``), or None: page at once."""
        base = self.policies.get(kind)
        if base is None or kind not in CHECKIN_KINDS:
            return None
        override = (household or {}).get(kind.value)
        policy = _override(base, override, kind.value) if override else base
        return policy if policy.enabled else None

    def lead(self, household: Mapping[str, Any] | None = None) -> timedelta:
        """How long before its promise an inactivity detector must raise so that a check-in with nobody
        answering still pages in time (the longest inactivity-type check-in of the household)."""
        kinds = (AlertKind.INACTIVITY, AlertKind.ROUTINE_MISSED)
        return max(
            (policy.total for kind in kinds if (policy := self.policy(kind, household)) is not None),
            default=timedelta(0),
        )


def checkin_config(raw: Mapping[str, Mapping[str, Any]] | None = None) -> CheckinConfig:
    """The fleet policy from settings (``{"inactivity": {...}, ...}``); kinds left out keep the defaults."""
    config = CheckinConfig()
    if not raw:
        return config
    policies = dict(config.policies)
    for key, value in raw.items():
        try:
            kind = AlertKind(key)
        except ValueError as exc:
            raise CheckinPolicyError(key, "not an alert kind") from exc
        if kind not in CHECKIN_KINDS:
            raise CheckinPolicyError(key, "sos and smoke alarms never check in first; only " + _kinds())
        policies[kind] = _override(policies[kind], value, key)
    return CheckinConfig(policies)


def validate_household(raw: Mapping[str, Any]) -> None:
    """Raise ``CheckinPolicyError`` if a household's ``settings["checkin"]`` is not valid."""
    base = CheckinConfig()
    for key, value in raw.items():
        try:
            kind = AlertKind(key)
        except ValueError as exc:
            raise CheckinPolicyError(key, "not an alert kind") from exc
        if kind not in CHECKIN_KINDS:
            raise CheckinPolicyError(key, "only " + _kinds() + " check in first")
        _override(base.policies[kind], value, key)


def _kinds() -> str:
    return ", ".join(sorted(kind.value for kind in CHECKIN_KINDS))


def _override(base: CheckinPolicy, raw: Any, key: str) -> CheckinPolicy:
    if not isinstance(raw, Mapping):
        raise CheckinPolicyError(key, "must be a table of enabled, wait_s, attempts, channels")
    unknown = set(raw) - {"enabled", "wait_s", "attempts", "channels"}
    if unknown:
        raise CheckinPolicyError(key, f"unknown settings {sorted(unknown)}")
    policy = base
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise CheckinPolicyError(f"{key}.enabled", "must be true or false")
        policy = replace(policy, enabled=raw["enabled"])
    if "wait_s" in raw:
        wait = raw["wait_s"]
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 1 <= wait <= _MAX_WAIT.total_seconds():
            raise CheckinPolicyError(f"{key}.wait_s", "must be 1 to 7200 seconds (minutes in practice)")
        policy = replace(policy, wait=timedelta(seconds=float(wait)))
    if "attempts" in raw:
        attempts = raw["attempts"]
        if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= _MAX_ATTEMPTS:
            raise CheckinPolicyError(f"{key}.attempts", f"must be 1 to {_MAX_ATTEMPTS}")
        policy = replace(policy, attempts=attempts)
    if "channels" in raw:
        channels = raw["channels"]
        if not isinstance(channels, list | tuple) or not channels:
            raise CheckinPolicyError(f"{key}.channels", "must be a non-empty list")
        try:
            parsed = tuple(DeliveryChannel(channel) for channel in channels)
        except ValueError as exc:
            raise CheckinPolicyError(f"{key}.channels", str(exc)) from exc
        if not set(parsed) <= RESIDENT_CHANNELS:
            raise CheckinPolicyError(f"{key}.channels", "a check-in goes to the resident: button, voice, resident_sms")
        policy = replace(policy, channels=tuple(dict.fromkeys(parsed)))
    return policy
