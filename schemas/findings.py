"""What a detector concludes. Alerting turns findings into alerts; detectors never touch alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from schemas.evidence import Evidence
from schemas.kinds import AlertKind, Severity


class FindingAction(StrEnum):
    # Open an alert (or attach an occurrence to the open alert of this household and kind).
    RAISE = "raise"
    # Add a note to the open alert of this kind without notifying (e.g. ``cancel`` after ``sos``,
    # ``alarm_cleared`` after ``alarm``): a person still closes the alert.
    ANNOTATE = "annotate"
    # A sign of life in the household: it answers a check-in in progress (the alert resolves as
    # ``resident_ok``) and is noted on alerts already paged. ``details["signal"]`` is a
    # :class:`PresenceSignal`; ``details["checkin_id"]`` names the check-in a ``checkin_ok`` press answers.
    PRESENCE = "presence"


class PresenceSignal(StrEnum):
    """What showed the resident is up (which alerts it answers: ``alerting.checkins.ANSWERS``)."""

    WATER = "water"  # water used again after a quiet stretch was raised (not for continuous flow)
    PRESS = "press"  # any call-button press: sos, cancel, service_request, checkin_ok
    SMOKE = "smoke"  # a person pressed the smoke alarm: hush or test
    FLOW_STOPPED = "flow_stopped"  # a raised continuous flow stopped (someone turned the tap off)


@dataclass(frozen=True, slots=True)
class Finding:
    """One conclusion about a household, with evidence a caregiver can read (as data: ``i18n`` renders it).

    ``at`` is when the situation began in device time (e.g. the last water use), ``detected_at`` the
    event or processing time at which the detector concluded it.
    """

    kind: AlertKind
    severity: Severity
    household_id: str
    device_id: str | None
    at: datetime
    detected_at: datetime
    evidence: Evidence
    detector: str
    action: FindingAction = FindingAction.RAISE
    details: dict[str, Any] = field(default_factory=dict)
    # For a RAISE that lands on an alert already open (an occurrence): tell people again. A new sos
    # press or a smoke alarm sounding again after a quiet spell is news; a bounced press is not.
    # A RAISE with no open alert always opens a new alert and notifies, whatever this says.
    notify_again: bool = False


@dataclass(frozen=True, slots=True)
class AlertClosure:
    """An alert was resolved (by a person, or by the resident answering a check-in). Detectors drop the
    latches that raised it (``Engine.alert_closed``), so a resolved alert cannot hide the next incident."""

    household_id: str
    kind: AlertKind
    device_id: str | None
    closed_at: datetime
