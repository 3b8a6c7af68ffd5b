"""The district's monthly report as data (``format=json``): every figure, per district and per 居委会.

The HTML, CSV and PDF renderings (``api.report``) are made from this model alone. Counts are exact;
shares are fractions rounded to 4 decimals (None when there is nothing to share out); times are
seconds. Each figure's definition is in docs/reports.md.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from schemas.kinds import Outcome


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportFormat(StrEnum):
    HTML = "html"
    CSV = "csv"
    PDF = "pdf"
    JSON = "json"


class ReportLanguage(StrEnum):
    ZH_CN = "zh-CN"
    EN = "en"


class GroupLevel(StrEnum):
    ALL = "all"
    DISTRICT = "district"
    COMMITTEE = "committee"


class Period(_Body):
    """The month as the households of one district and time zone live it (local midnight to midnight)."""

    district: str
    timezone: str
    start: datetime
    end: datetime
    households: int


class HomeFigures(_Body):
    households: int
    residents: int
    homes_monitored: int
    devices: int
    water_meters: int
    smoke_alarms: int
    call_buttons: int


class DeviceHealthFigures(_Body):
    devices: int
    device_hours: float
    offline_hours: float
    online_share: float | None
    devices_at_end: int
    online_at_end: int
    online_share_at_end: float | None
    battery_reported: int
    battery_low: int
    battery_low_share: float | None


class AlertFigures(_Body):
    total: int
    # kind -> state (the outcome once resolved, else the status) -> alerts
    by_kind: dict[str, dict[str, int]]


class PageFigures(_Body):
    alerts_paged: int
    notifications: int
    sent: int
    dead: int
    pending: int
    cancelled: int


class CheckinFigures(_Body):
    started: int
    ok: int
    help: int
    away: int
    no_answer: int
    # still waiting, or withdrawn because a person acted first
    other: int


class ServiceLevelFigures(_Body):
    critical: int
    critical_claimed_60s: int
    critical_claimed_180s: int
    critical_share_60s: float | None
    critical_share_180s: float | None
    high: int
    high_claimed_15min: int
    high_share_15min: float | None
    median_to_first_notification_s: float | None
    median_to_claim_s: float | None
    median_to_resolution_s: float | None


class DetectorFigures(_Body):
    detector: str
    resolved: int
    outcomes: dict[Outcome, int]
    false_alarm_rate: float | None
    paged: int
    paged_false_alarm_rate: float | None


class VisitFigures(_Body):
    households: int
    households_visited: int
    visits: int
    residents: int
    residents_visited: int
    residents_visited_share: float | None


class GroupFigures(_Body):
    level: GroupLevel
    district: str | None
    committee: str | None
    homes: HomeFigures
    health: DeviceHealthFigures
    alerts: AlertFigures
    pages: PageFigures
    checkins: CheckinFigures
    service: ServiceLevelFigures
    detectors: list[DetectorFigures]
    visits: VisitFigures


class UnvisitedResident(_Body):
    """A resident whose home had no logged visit this month (personal data: the report is for staff)."""

    district: str
    committee: str
    household_id: str
    resident_id: str
    name: str
    timezone: str
    last_visit_at: datetime | None


class DailyAlerts(_Body):
    district: str
    day: date
    alerts: int


class Targets(_Body):
    """What the programs promise: telecare answer times, and every resident visited every month."""

    critical_60s: float
    critical_180s: float
    visits: float


class MonthlyReport(_Body):
    month: str
    district: str | None
    generated_at: datetime
    # False while the month is still running (figures up to generated_at).
    complete: bool
    periods: list[Period]
    targets: Targets
    groups: list[GroupFigures]
    not_visited: list[UnvisitedResident]
    alerts_per_day: list[DailyAlerts]
