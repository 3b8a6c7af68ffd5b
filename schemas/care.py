"""Care plans, home visits and service levels: API bodies of the alerting side of carewatch.

A care plan is the household's ordered list of contacts. Each contact has a role, a tier (when the
escalation policy reaches them), the channels that reach them, optional working hours (normal and low
alerts wait for them; critical and high never wait), keyholder and access notes. Residents' medical
notes travel in the plan only for roles that need them (``MEDICAL_NOTES_ROLES`` or an explicit
``medical_access``); the API decides who may read the plan, storage says who may see the notes.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.kinds import CareRole, DeliveryChannel, Outcome

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkingHours(_Body):
    """When a contact takes non-urgent work, in the household's time zone. ``end`` < ``start`` spans midnight."""

    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)
    start: time = time(9, 0)
    end: time = time(17, 30)

    @model_validator(mode="after")
    def _not_empty(self) -> WorkingHours:
        if self.start == self.end:
            raise ValueError("working hours start and end must differ")
        return self


class CarePlanContactDetail(_Body):
    """One contact of a care plan, as written (``PUT``) and as read (``GET``)."""

    caregiver_id: Identifier
    role: CareRole
    # Escalation tier; None: the role's default (family/volunteer 1, committee/social worker 2, supervisor 3).
    tier: int | None = Field(default=None, ge=1, le=9)
    # None: the webhook if the caregiver has one (the foundation's behaviour).
    channels: list[DeliveryChannel] | None = Field(default=None, max_length=6)
    working_hours: WorkingHours | None = None
    keyholder: bool = False
    access_notes: str = Field(default="", max_length=1000)
    # None: decided by role (``schemas.kinds.MEDICAL_NOTES_ROLES``).
    medical_access: bool | None = None


class CarePlanPut(_Body):
    """Replace a household's care plan: contacts in order of preference within their tier."""

    contacts: list[CarePlanContactDetail] = Field(max_length=50)
    visit_interval_days: int = Field(default=30, ge=1, le=366)
    access_notes: str = Field(default="", max_length=2000)


class ResidentCareNotes(_Body):
    resident_id: str
    name: str
    # None when the reader's role does not see medical notes.
    medical_notes: str | None


class CarePlanPublic(_Body):
    household_id: str
    district: str
    timezone: str
    visit_interval_days: int
    access_notes: str
    contacts: list[CarePlanContactDetail]
    residents: list[ResidentCareNotes]
    last_visit_at: datetime | None
    next_visit_due: datetime


class VisitCreate(_Body):
    caregiver_id: Identifier
    # When the visit happened; None: now. Must be timezone-aware.
    visited_at: datetime | None = None
    note: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _aware(self) -> VisitCreate:
        if self.visited_at is not None and self.visited_at.utcoffset() is None:
            raise ValueError("visited_at needs a UTC offset")
        return self


class VisitPublic(_Body):
    visit_id: int
    household_id: str
    caregiver_id: str
    visited_at: datetime
    note: str
    created_at: datetime


class ServiceLevelRow(_Body):
    """Service levels of one group (a district or a caregiver) over a period.

    Shares are None when there was no alert of that severity. "Claimed" counts the first person to
    claim, or to resolve an unclaimed alert (a person answered it).
    """

    group: str
    alerts: int
    # Alerts that asked people to act (the rest were answered by the resident at their check-in).
    pages: int = 0
    # Alerts that checked in with the resident first, and how the resident answered.
    checkins: int = 0
    checkins_ok: int = 0
    checkins_help: int = 0
    checkins_away: int = 0
    checkins_unanswered: int = 0
    critical: int
    critical_claimed_60s: float | None
    critical_claimed_180s: float | None
    high: int
    high_claimed_15min: float | None
    median_to_first_notification_s: float | None
    median_to_claim_s: float | None
    median_to_resolution_s: float | None


class ServiceLevelsPublic(_Body):
    since: datetime
    until: datetime
    group_by: str
    rows: list[ServiceLevelRow]


class DetectorOutcomes(_Body):
    """Resolved alerts of one detector by outcome. False alarms: nobody needed help (see docs/alerting.md)."""

    detector: str
    resolved: int
    outcomes: dict[Outcome, int]
    false_alarm_rate: float | None
    # Of them, paged to people (not answered by the resident at a check-in), and their false-alarm rate:
    # the burden on volunteers.
    paged: int = 0
    paged_false_alarm_rate: float | None = None
