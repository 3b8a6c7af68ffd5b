"""Request and response bodies of the monitoring API (``/api/v1``), per resource: Create / Public."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, model_validator

from schemas.kinds import BrokerApplied, CareRole, DeviceType
from schemas.language import Language

Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]

# How long a device may stay silent before it counts as offline (before the grace factor).
DEFAULT_EXPECTED_INTERVAL_S: dict[DeviceType, int] = {
    DeviceType.WATER_METER: 3600,
    DeviceType.SMOKE_ALARM: 6 * 3600,
    DeviceType.CALL_BUTTON: 6 * 3600,
}

# Who is contacted at which escalation tier when the care plan does not say.
DEFAULT_TIER: dict[CareRole, int] = {
    CareRole.FAMILY: 1,
    CareRole.VOLUNTEER: 1,
    CareRole.COMMITTEE_STAFF: 2,
    CareRole.SOCIAL_WORKER: 2,
    CareRole.SUPERVISOR: 3,
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResidentCreate(_Body):
    name: str = Field(min_length=1, max_length=200)
    birth_year: int | None = Field(default=None, ge=1900, le=2100)
    medical_notes: str = Field(default="", max_length=4000)
    # The resident's own phone, for check-ins by automated call or SMS ("" = none): a mainland mobile
    # number or E.164.
    phone: str = Field(default="", pattern=r"^$|^(\+?[1-9]\d{7,14}|1[3-9]\d{9})$")
    # The language check-ins speak to the resident in.
    locale: Literal["zh-CN", "en"] = "zh-CN"


class HouseholdCreate(_Body):
    household_id: Identifier | None = None
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(default="", max_length=500)
    district: str = Field(default="", max_length=100)
    # The neighbourhood committee (居委会) within the district; "" = not assigned yet.
    committee: str = Field(default="", max_length=100)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    residents: list[ResidentCreate] = Field(default_factory=list, max_length=10)


class ResidentPublic(_Body):
    resident_id: str
    name: str
    birth_year: int | None


class HouseholdPublic(_Body):
    household_id: str
    name: str
    address: str
    district: str
    committee: str = ""
    timezone: str
    residents: list[ResidentPublic]
    created_at: datetime


class HouseholdPatch(_Body):
    """Change a registered household: today its neighbourhood committee (the district stays)."""

    committee: str = Field(max_length=100)


class CaregiverCreate(_Body):
    caregiver_id: Identifier | None = None
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(default="", max_length=32)
    email: str = Field(default="", max_length=254)
    webhook_url: HttpUrl | None = None
    # Write-only: never returned. Signs the caregiver's webhook deliveries (HMAC-SHA256).
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=200)
    # The language of their notifications; None: from the household's time zone (zh-CN in China).
    locale: Language | None = None


class CaregiverPublic(_Body):
    caregiver_id: str
    name: str
    phone: str
    email: str
    webhook_url: str | None
    created_at: datetime
    locale: Language | None = None


class CaregiverSettings(_Body):
    """``PATCH /caregivers/{id}``: the fields given change; ``locale: null`` returns to the default."""

    locale: Language | None = None


class CarePlanContactCreate(_Body):
    caregiver_id: Identifier
    role: CareRole
    tier: int | None = Field(default=None, ge=1, le=9)


class CarePlanContactPublic(_Body):
    household_id: str
    caregiver_id: str
    role: CareRole
    tier: int


class DeviceCreate(_Body):
    device_id: Identifier
    device_type: DeviceType
    household_id: Identifier
    expected_interval_s: int | None = Field(default=None, ge=60, le=7 * 24 * 3600)


class DevicePublic(_Body):
    device_id: str
    device_type: DeviceType
    household_id: str
    expected_interval_s: int
    created_at: datetime
    last_seen_at: datetime | None
    online: bool | None
    battery_pct: int | None


T = TypeVar("T")


class Page(_Body, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# --- Monitoring API (issue 7): roles, tokens, residents, devices' credentials, readings, fleet, audit ---


class ApiRole(StrEnum):
    """Who holds an API token. Operators are bound to a district, caregivers to their care plans."""

    ADMIN = "admin"
    OPERATOR = "operator"
    CAREGIVER = "caregiver"
    DEVICE_PROVISIONER = "device_provisioner"


class TokenCreate(_Body):
    role: ApiRole
    subject: Identifier
    district: str | None = Field(default=None, min_length=1, max_length=100)


class TokenIssued(_Body):
    token_id: str
    role: ApiRole
    subject: str
    district: str | None
    # Shown once; only its SHA-256 is stored.
    token: str


class WhoAmI(_Body):
    token_id: str
    role: ApiRole
    subject: str
    district: str | None


class ResidentDetail(_Body):
    resident_id: str
    household_id: str
    name: str
    birth_year: int | None
    # None when the caller's role may not read medical notes (see docs/api.md).
    medical_notes: str | None
    medical_notes_visible: bool
    phone: str = ""
    locale: str = "zh-CN"


class DeviceProvisioned(DevicePublic):
    """A new device and its MQTT login; the password is returned here once and never again."""

    mqtt_username: str
    mqtt_password: str
    # Whether the broker already accepts this login (see BrokerApplied).
    broker: BrokerApplied = BrokerApplied.UNMANAGED


class AppCredentials(_Body):
    """A caregiver app's MQTT login; the password is returned here once and never again."""

    caregiver_id: str
    mqtt_username: str
    mqtt_password: str
    broker: BrokerApplied = BrokerApplied.UNMANAGED


class ReadingPublic(_Body):
    ts: datetime
    register_l: float
    received_at: datetime


class ReadingBucket(_Body):
    bucket: datetime
    # Litres used in the bucket: sum of positive register differences (a register reset counts as 0).
    consumption_l: float
    samples: int
    register_last: float | None


class ReadingSeries(_Body):
    device_id: str
    resolution: str
    source: str
    buckets: list[ReadingBucket]


class UsageBandPoint(_Body):
    hour_of_day: int
    p10_l: float
    p50_l: float
    p90_l: float


class FleetDevice(_Body):
    device_id: str
    device_type: DeviceType
    household_id: str
    problems: list[str]
    last_seen_at: datetime | None
    online: bool | None
    battery_pct: int | None
    last_reading_at: datetime | None
    seq_gaps_24h: int


class FleetHealth(_Body):
    devices_total: int
    offline: int
    low_battery: int
    silent_meters: int
    with_seq_gaps: int
    problem_devices: list[FleetDevice]


class AuditEntry(_Body):
    audit_id: int
    at: datetime
    token_id: str
    role: str
    subject: str
    action: str
    resource: str
    resource_id: str
    client: str
    detail: str


class ReadyCheck(_Body):
    name: str
    ok: bool
    detail: str


class Readiness(_Body):
    ready: bool
    checks: list[ReadyCheck]


# --- Per-household detector settings (issue 4's "per-household settings", set through the API) ---

_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
# An announced absence longer than this is a mistake more often than a plan (and switches detection off).
MAX_ABSENCE_DAYS = 366
MAX_ABSENCES = 200


class AbsenceReason(StrEnum):
    AWAY = "away"
    HOSPITAL = "hospital"


class AbsencePeriod(_Body):
    """An away trip or hospital stay: inactivity and routine findings are suppressed inside
    ``[start, end)``; emergency presses, smoke and device health never are."""

    start: AwareDatetime
    end: AwareDatetime
    reason: AbsenceReason = AbsenceReason.AWAY

    @model_validator(mode="after")
    def _ordered(self) -> AbsencePeriod:
        if not self.start < self.end:
            raise ValueError("end must be after start")
        if self.end - self.start > timedelta(days=MAX_ABSENCE_DAYS):
            raise ValueError(f"an absence lasts at most {MAX_ABSENCE_DAYS} days")
        return self


class QuietWindowBody(_Body):
    """Local time of the household, ``HH:MM``; may cross midnight (``22:00``-``07:00``)."""

    start: Annotated[str, Field(pattern=_CLOCK)]
    end: Annotated[str, Field(pattern=_CLOCK)]

    @model_validator(mode="after")
    def _not_empty(self) -> QuietWindowBody:
        if self.start == self.end:
            raise ValueError("a quiet window needs different start and end")
        return self


class HouseholdSettingsPut(_Body):
    """The whole of a household's detector settings (``households.settings``); ``None`` thresholds use the
    fleet-wide configuration. The timezone is the household's own (``HouseholdCreate.timezone``)."""

    flat_min_litres: float | None = Field(default=None, ge=0, le=1000)
    flat_window_h: float | None = Field(default=None, ge=1, le=72)
    daily_max_l: float | None = Field(default=None, gt=0, le=100_000)
    routine_enabled: bool = True
    away: list[AbsencePeriod] = Field(default_factory=list, max_length=MAX_ABSENCES)
    quiet: list[QuietWindowBody] = Field(default_factory=list, max_length=10)


class HouseholdSettingsPublic(HouseholdSettingsPut):
    household_id: str
    timezone: str


class AbsenceEnd(_Body):
    """End every absence under way at ``at`` (default: now): the resident came home early."""

    at: AwareDatetime | None = None
