"""Alert bodies: what the API shows and what channels deliver to caregivers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.evidence import Evidence
from schemas.kinds import AlertKind, AlertStatus, CheckinAnswer, CheckinStatus, Outcome, Severity
from schemas.language import Language


class NotificationReason(StrEnum):
    NEW = "new"
    ESCALATED = "escalated"
    SEVERITY_RAISED = "severity_raised"
    CLAIMED_BY_OTHER = "claimed_by_other"
    # The same alert again, and it is news: an sos pressed again, a smoke alarm sounding again.
    REPEATED = "repeated"


class AlertNotification(BaseModel):
    """The body a caregiver's channel receives (webhook JSON; rendered for e-mail and SMS).

    ``evidence`` is in the recipient's ``locale``; ``evidence_data`` is what the detector saw (None for
    alerts opened before evidence was data)."""

    model_config = ConfigDict(extra="forbid")

    notification_id: int
    idempotency_key: str
    reason: NotificationReason
    alert_id: int
    household_id: str
    kind: AlertKind
    severity: Severity
    evidence: str
    evidence_data: Evidence | None = None
    locale: Language = Language.EN
    started_at: datetime
    opened_at: datetime
    caregiver_id: str
    escalation_level: int
    claimed_by: str | None = None


class CheckinAttemptPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempt: int
    at: datetime
    channels: list[str]
    result: str


class CheckinPublic(BaseModel):
    """The resident check-in of an alert: who was asked how, and what came of it."""

    model_config = ConfigDict(extra="forbid")

    checkin_id: str
    alert_id: int
    household_id: str
    kind: AlertKind
    status: CheckinStatus
    attempt: int
    attempts: int
    wait_s: int
    channels: list[str]
    started_at: datetime
    attempt_at: datetime
    expires_at: datetime
    answer: CheckinAnswer | None
    answered_via: str | None
    answered_at: datetime | None
    history: list[CheckinAttemptPublic]


class CheckinAnswerBody(BaseModel):
    """The phone gateway's callback: what the resident pressed or replied (signed, see docs/alerting.md)."""

    model_config = ConfigDict(extra="forbid")

    answer: CheckinAnswer
    # voice or resident_sms: how the resident answered
    via: Literal["voice", "resident_sms"] = "voice"
    # When the resident answered (the gateway's clock); the receive time if absent.
    answered_at: datetime | None = None


class CheckinAnswerResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkin_id: str
    # resolved | away | paged | late (the check-in had ended; noted on the alert)
    result: Literal["resolved", "away", "paged", "late"]
    checkin: CheckinPublic


class AlertPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_id: int
    household_id: str
    device_id: str | None
    kind: AlertKind
    severity: Severity
    status: AlertStatus
    detector: str
    # In the request's language (Accept-Language; English without one); the structure beside it.
    evidence: str
    evidence_data: Evidence | None = None
    details: dict[str, Any]
    started_at: datetime
    opened_at: datetime
    occurrences: int
    last_occurrence_at: datetime
    first_notified_at: datetime | None
    escalation_level: int
    next_escalation_at: datetime | None
    claimed_by: str | None
    claimed_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    outcome: Outcome | None
    resolution_note: str | None
    # When people were first asked to act (after the check-in, for an alert that asked the resident first).
    paged_at: datetime | None = None
    checkin: CheckinPublic | None = None


class AlertEventPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime
    actor: str
    action: str
    # Evidence entries (opened, occurrence, note) in the request's language, with their structure.
    detail: str
    detail_data: Evidence | None = None


class AlertClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caregiver_id: str = Field(min_length=1, max_length=64)


class AlertResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str = Field(min_length=1, max_length=64)
    outcome: Outcome
    note: str = Field(default="", max_length=2000)


class AlertDecline(BaseModel):
    """A caregiver says "I cannot take this one": once everyone asked at a step declines, it escalates."""

    model_config = ConfigDict(extra="forbid")

    caregiver_id: str = Field(min_length=1, max_length=64)
    note: str = Field(default="", max_length=500)


class ReplyAction(StrEnum):
    CLAIM = "claim"
    DECLINE = "decline"


class AppReply(BaseModel):
    """A caregiver app's reply on ``{root}/app/{caregiver_id}/replies``; the topic names the caregiver."""

    model_config = ConfigDict(extra="forbid")

    alert_id: int = Field(ge=1)
    action: ReplyAction
    note: str = Field(default="", max_length=500)


class DeliveryAttemptPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempt: int
    at: datetime
    ok: bool
    detail: str


class NotificationPublic(BaseModel):
    """One outbox row: what was (or could not be) sent to whom, with every attempt."""

    model_config = ConfigDict(extra="forbid")

    notification_id: int
    alert_id: int
    household_id: str
    severity: Severity
    # None for a message to a group chat (``group_id``); both set for a caregiver reached through a robot.
    caregiver_id: str | None
    group_id: str | None = None
    channel: str
    reason: str
    level: int | None
    idempotency_key: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    deadline: datetime
    sent_at: datetime | None
    last_error: str | None
    attempt_log: list[DeliveryAttemptPublic] = Field(default_factory=list)
