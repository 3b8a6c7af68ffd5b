"""Alert bodies: what the API shows and what channels deliver to caregivers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.kinds import AlertKind, AlertStatus, Outcome, Severity


class NotificationReason(StrEnum):
    NEW = "new"
    ESCALATED = "escalated"
    SEVERITY_RAISED = "severity_raised"
    CLAIMED_BY_OTHER = "claimed_by_other"


class AlertNotification(BaseModel):
    """The body a caregiver's channel receives (webhook JSON; rendered for e-mail and SMS)."""

    model_config = ConfigDict(extra="forbid")

    notification_id: int
    idempotency_key: str
    reason: NotificationReason
    alert_id: int
    household_id: str
    kind: AlertKind
    severity: Severity
    evidence: str
    started_at: datetime
    opened_at: datetime
    caregiver_id: str
    escalation_level: int
    claimed_by: str | None = None


class AlertPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_id: int
    household_id: str
    device_id: str | None
    kind: AlertKind
    severity: Severity
    status: AlertStatus
    detector: str
    evidence: str
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


class AlertEventPublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime
    actor: str
    action: str
    detail: str


class AlertClaim(BaseModel):
    model_config = ConfigDict(extra="forbid")

    caregiver_id: str = Field(min_length=1, max_length=64)


class AlertResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str = Field(min_length=1, max_length=64)
    outcome: Outcome
    note: str = Field(default="", max_length=2000)
