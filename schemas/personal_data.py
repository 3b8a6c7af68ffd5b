"""Bodies of the personal-data requests: a household's export and the report of its erasure.

The export is what a resident (or their guardian) receives on an access request (PIPL art. 45, GDPR
art. 15): every personal field carewatch holds about the household, its devices, its device data
(a daily summary of everything retained, raw readings of recent days, every event with its note), its
alerts with their timelines, the home visits and who looked at the household's records. Caregivers
appear by id, name and role: their phone numbers and e-mail addresses are theirs, not the resident's.
Lists that can be long are bounded; ``truncated`` says which ones were cut.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.kinds import CareRole, DeviceType

EXPORT_FORMAT: Literal["carewatch.household-export.v1"] = "carewatch.household-export.v1"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExportHousehold(_Body):
    household_id: str
    name: str
    address: str
    district: str
    timezone: str
    access_notes: str
    visit_interval_days: int
    settings: dict[str, Any]
    created_at: datetime
    erased_at: datetime | None


class ExportResident(_Body):
    resident_id: str
    name: str
    birth_year: int | None
    medical_notes: str
    phone: str
    locale: str
    created_at: datetime
    erased_at: datetime | None


class ExportCareContact(_Body):
    caregiver_id: str
    caregiver_name: str
    role: CareRole
    tier: int
    keyholder: bool
    access_notes: str
    channels: list[str] | None


class ExportDevice(_Body):
    device_id: str
    device_type: DeviceType
    created_at: datetime
    decommissioned_at: datetime | None
    last_seen_at: datetime | None
    battery_pct: int | None
    fw: str | None
    readings: int
    first_reading_at: datetime | None
    last_reading_at: datetime | None
    events: int
    status_reports: int


class ExportDailyUse(_Body):
    """Water used per local day (register differences; a reset contributes nothing)."""

    device_id: str
    day: date
    litres: float
    readings: int


class ExportReading(_Body):
    device_id: str
    ts: datetime
    register_l: float


class ExportEvent(_Body):
    device_id: str
    ts: datetime
    kind: str
    note: str | None
    received_at: datetime


class ExportTimelineEntry(_Body):
    at: datetime
    actor: str
    action: str
    detail: str


class ExportAlert(_Body):
    alert_id: int
    kind: str
    severity: str
    status: str
    device_id: str | None
    detector: str
    evidence: str
    started_at: datetime
    opened_at: datetime
    claimed_by: str | None
    resolved_at: datetime | None
    outcome: str | None
    resolution_note: str | None
    timeline: list[ExportTimelineEntry]


class ExportCheckin(_Body):
    """A check-in with the resident: when they were asked, how, and what they answered."""

    checkin_id: str
    alert_id: int
    kind: str
    status: str
    attempts: int
    channels: list[str]
    started_at: datetime
    answer: str | None
    answered_via: str | None
    answered_at: datetime | None
    history: list[dict[str, Any]]


class ExportVisit(_Body):
    visit_id: int
    caregiver_id: str
    visited_at: datetime
    note: str


class ExportAccess(_Body):
    """Who read or changed the household's records (from the audit log; ids only)."""

    at: datetime
    role: str
    subject: str
    action: str
    resource: str


class HouseholdExport(_Body):
    format: Literal["carewatch.household-export.v1"] = EXPORT_FORMAT
    generated_at: datetime
    household: ExportHousehold
    residents: list[ExportResident]
    care_plan: list[ExportCareContact]
    devices: list[ExportDevice]
    daily_water_use: list[ExportDailyUse]
    raw_readings_since: datetime
    raw_readings: list[ExportReading]
    events: list[ExportEvent]
    alerts: list[ExportAlert]
    checkins: list[ExportCheckin]
    visits: list[ExportVisit]
    access_log: list[ExportAccess]
    # Names of the lists cut at their bound (the newest entries are kept).
    truncated: list[str]


class ErasureRequest(_Body):
    """The household's id again: an erasure cannot be undone, so a mistyped path alone never erases."""

    confirm_household_id: str


class ErasureReport(_Body):
    household_id: str
    erased_at: datetime
    already_erased: bool
    devices_decommissioned: list[str]
    alerts_kept: int
    alerts_resolved: int
    caregivers_erased: list[str]
    rows_deleted: dict[str, int]
    rows_scrubbed: dict[str, int]
