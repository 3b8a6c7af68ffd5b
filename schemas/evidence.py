"""Evidence as data: what a detector saw, in typed parameters, never in a language.

A detector says *what* it saw (:class:`Evidence`: one message and the context to show its times);
``i18n.evidence`` says it to a person, in English or Chinese, with times in the household's time zone
and numbers and dates formatted for the locale. The stored alert keeps this structure (jsonb), so an
alert raised last year re-renders in a language chosen today.

Units are fixed by the field names: instants are timezone-aware UTC datetimes, durations are seconds
(``*_s``), volumes litres, rates litres per minute (``*_lpm``) or per hour (``*_lph``). A message may
contain sub-messages (a device, a free-text note, why a device is offline), each a message of its own.

Adding a kind of evidence: one class here (a ``kind`` literal and its parameters, added to
:data:`Message` if detectors raise it on its own) and one template in ``i18n.evidence.TEMPLATES``
(then ``scripts/i18n update`` and the Chinese text in the catalogue; see docs/i18n.md). The tests check
that every class has a template naming exactly its fields.
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.kinds import DeviceType


class SignKind(StrEnum):
    """A sign of life from a device other than the water meter."""

    PRESS = "press"  # a call-button press
    SMOKE = "smoke"  # a smoke alarm's hush or test


class ResidentChannel(StrEnum):
    """How a check-in reached the resident (``schemas.kinds.DeliveryChannel`` values)."""

    BUTTON = "button"
    VOICE = "voice"
    RESIDENT_SMS = "resident_sms"


class AnswerVia(StrEnum):
    """How a check-in was answered: by the resident through a channel, or by a sign of life."""

    BUTTON = "button"
    VOICE = "voice"
    RESIDENT_SMS = "resident_sms"
    WATER = "water"
    PRESS = "press"
    SMOKE = "smoke"
    FLOW_STOPPED = "flow_stopped"


class CheckinAnswerText(StrEnum):
    OK = "ok"
    HELP = "help"
    AWAY = "away"


class DayType(StrEnum):
    """Which days a resident's routine is compared with."""

    WEEKDAYS = "weekdays"
    WEEKENDS = "weekends"


class EvidenceMessage(BaseModel):
    """Base of every message and sub-message: immutable, strict, identified by its ``kind``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# Sub-messages: parts of a message, rendered by their own templates --------------------------------------
class DeviceRef(EvidenceMessage):
    kind: Literal["device"] = "device"
    device_type: DeviceType
    device_id: str


class Note(EvidenceMessage):
    """Free text the resident or a device sent with an event, shown as written (never translated)."""

    kind: Literal["note"] = "note"
    text: str


class OfflineLastWill(EvidenceMessage):
    kind: Literal["offline_last_will"] = "offline_last_will"


class OfflineNeverHeard(EvidenceMessage):
    kind: Literal["offline_never_heard"] = "offline_never_heard"
    watched_from: AwareDatetime
    expected_every_s: float


class OfflineSilent(EvidenceMessage):
    kind: Literal["offline_silent"] = "offline_silent"
    since: AwareDatetime
    expected_every_s: float


class SilentPeer(EvidenceMessage):
    kind: Literal["silent_peer"] = "silent_peer"
    device: DeviceRef
    last_heard: AwareDatetime


class AlsoSilent(EvidenceMessage):
    """Other devices of the home silent in the same outage."""

    kind: Literal["also_silent"] = "also_silent"
    devices: list[SilentPeer]


class AfterSign(EvidenceMessage):
    """A quiet stretch began at a sign of life from another device, not at water use."""

    kind: Literal["after_sign"] = "after_sign"
    signal: SignKind


class CheckinAttempt(EvidenceMessage):
    """One attempt of a check-in with the resident: when, and by which channels."""

    kind: Literal["checkin_attempt"] = "checkin_attempt"
    at: AwareDatetime
    channels: list[ResidentChannel]


class LastVisit(EvidenceMessage):
    kind: Literal["last_visit"] = "last_visit"
    at: AwareDatetime
    by: str


class NoVisitYet(EvidenceMessage):
    kind: Literal["no_visit_yet"] = "no_visit_yet"


# Messages: one finding's evidence ---------------------------------------------------------------------
class SmokeSounding(EvidenceMessage):
    kind: Literal["smoke_sounding"] = "smoke_sounding"
    since: AwareDatetime


class SmokeStillSounding(EvidenceMessage):
    """A repeat ``alarm`` while the alarm sounds: the same fire."""

    kind: Literal["smoke_still_sounding"] = "smoke_still_sounding"
    at: AwareDatetime
    since: AwareDatetime


class SmokeHushed(EvidenceMessage):
    kind: Literal["smoke_hushed"] = "smoke_hushed"
    at: AwareDatetime


class SmokeStopped(EvidenceMessage):
    kind: Literal["smoke_stopped"] = "smoke_stopped"
    at: AwareDatetime
    sounded_s: float


class SmokeLowBattery(EvidenceMessage):
    kind: Literal["smoke_low_battery"] = "smoke_low_battery"


class SmokeFault(EvidenceMessage):
    kind: Literal["smoke_fault"] = "smoke_fault"


class SmokeTamper(EvidenceMessage):
    kind: Literal["smoke_tamper"] = "smoke_tamper"


class SosPressed(EvidenceMessage):
    kind: Literal["sos_pressed"] = "sos_pressed"
    at: AwareDatetime
    note: Note | None = None


class SosCancelledSoon(EvidenceMessage):
    """Cancelled inside the cancel window: likely an accidental press."""

    kind: Literal["sos_cancelled_soon"] = "sos_cancelled_soon"
    after_s: float


class SosCancelledLate(EvidenceMessage):
    kind: Literal["sos_cancelled_late"] = "sos_cancelled_late"
    after_s: float
    window_s: float


class SosPressedAgain(EvidenceMessage):
    """A press within the debounce of the last counted one: the same press (bounced or held)."""

    kind: Literal["sos_pressed_again"] = "sos_pressed_again"
    at: AwareDatetime
    note: Note | None = None


class ServiceRequested(EvidenceMessage):
    kind: Literal["service_requested"] = "service_requested"
    at: AwareDatetime
    note: Note | None = None


class NoWater(EvidenceMessage):
    """The backstop: no single use for ``window_h`` hours (drips aside)."""

    kind: Literal["no_water"] = "no_water"
    window_h: float
    since: AwareDatetime
    litres: float
    quiet_s: float
    reading_at: AwareDatetime
    after_sign: AfterSign | None = None


class LittleWater(EvidenceMessage):
    """A program's flat rule: less than ``min_litres`` in ``window_h`` hours."""

    kind: Literal["little_water"] = "little_water"
    min_litres: float
    window_h: float
    litres: float
    since: AwareDatetime
    quiet_s: float
    reading_at: AwareDatetime
    after_sign: AfterSign | None = None


class RoutineMissed(EvidenceMessage):
    kind: Literal["routine_missed"] = "routine_missed"
    at: AwareDatetime
    day_type: DayType
    usual_quiet_s: float
    comparable_days: int
    since: AwareDatetime
    litres: float
    quiet_s: float
    after_sign: AfterSign | None = None


class CannotConfirm(EvidenceMessage):
    """The silence rule: the meter is silent and no use or sign of life is known for the whole window."""

    kind: Literal["cannot_confirm"] = "cannot_confirm"
    device: DeviceRef
    heard: AwareDatetime
    expected_every_s: float
    since: AwareDatetime
    after_sign: AfterSign | None = None
    quiet_s: float
    also_silent: AlsoSilent | None = None


class WaterAgain(EvidenceMessage):
    """A sign of life: water used again after a quiet stretch was raised."""

    kind: Literal["water_again"] = "water_again"
    at: AwareDatetime
    litres: float


class ButtonPressed(EvidenceMessage):
    """A sign of life: any call-button press (``event``: sos, cancel, service_request, checkin_ok)."""

    kind: Literal["button_pressed"] = "button_pressed"
    at: AwareDatetime
    event: str


class SmokePressed(EvidenceMessage):
    """A sign of life: a person pressed the smoke alarm (hush or test)."""

    kind: Literal["smoke_pressed"] = "smoke_pressed"
    at: AwareDatetime


class FlowStopped(EvidenceMessage):
    """A sign of life for a running tap: the flow stopped."""

    kind: Literal["flow_stopped"] = "flow_stopped"
    at: AwareDatetime


class CheckinUnanswered(EvidenceMessage):
    """A check-in with the resident ended with no "I am fine": the care plan is paged."""

    kind: Literal["checkin_unanswered"] = "checkin_unanswered"
    attempts: list[CheckinAttempt]


class CheckinUnreachable(EvidenceMessage):
    kind: Literal["checkin_unreachable"] = "checkin_unreachable"
    attempts: list[CheckinAttempt]


class CheckinHelp(EvidenceMessage):
    kind: Literal["checkin_help"] = "checkin_help"
    attempts: list[CheckinAttempt]
    at: AwareDatetime
    via: AnswerVia


class CheckinAnswered(EvidenceMessage):
    """The resident answered (timeline and resolution)."""

    kind: Literal["checkin_answered"] = "checkin_answered"
    answer: CheckinAnswerText
    via: AnswerVia
    at: AwareDatetime


class CheckinPaged(EvidenceMessage):
    """What the detector saw, and how the check-in with the resident ended before the care plan was
    paged ("…; checked in at 08:25 by call button and phone call, again at 08:35: no answer")."""

    kind: Literal["checkin_paged"] = "checkin_paged"
    finding: Message
    outcome: Annotated[CheckinUnanswered | CheckinHelp | CheckinUnreachable, Field(discriminator="kind")]


class AwayFollowup(EvidenceMessage):
    """The daily check-in of an absence the resident announced at a check-in."""

    kind: Literal["away_followup"] = "away_followup"
    since: AwareDatetime


class WaterRunning(EvidenceMessage):
    kind: Literal["water_running"] = "water_running"
    rate_lpm: float
    since: AwareDatetime
    running_s: float
    litres: float


class WaterAllDay(EvidenceMessage):
    kind: Literal["water_all_day"] = "water_all_day"
    running_s: float
    since: AwareDatetime
    litres: float
    rate_lph: float


class WaterOvernight(EvidenceMessage):
    kind: Literal["water_overnight"] = "water_overnight"
    night_start: time
    night_end: time
    since: AwareDatetime


class StandingFlow(EvidenceMessage):
    kind: Literal["standing_flow"] = "standing_flow"
    days: int
    rate_lph: float
    litres_per_day: float


class ExcessOverLimit(EvidenceMessage):
    kind: Literal["excess_over_limit"] = "excess_over_limit"
    litres: float
    at: AwareDatetime
    limit_l: float


class ExcessOverUsual(EvidenceMessage):
    kind: Literal["excess_over_usual"] = "excess_over_usual"
    litres: float
    at: AwareDatetime
    factor: float
    usual_high_l: float


class BatteryLow(EvidenceMessage):
    kind: Literal["battery_low"] = "battery_low"
    device: DeviceRef
    battery_pct: int
    notice_pct: int


class SignalWeak(EvidenceMessage):
    kind: Literal["signal_weak"] = "signal_weak"
    device: DeviceRef
    rssi_dbm: int
    notice_dbm: int


class DeviceOffline(EvidenceMessage):
    kind: Literal["device_offline"] = "device_offline"
    device: DeviceRef
    why: Annotated[OfflineLastWill | OfflineNeverHeard | OfflineSilent, Field(discriminator="kind")]
    also_silent: AlsoSilent | None = None


class DeviceBack(EvidenceMessage):
    kind: Literal["device_back"] = "device_back"
    at: AwareDatetime
    silent_s: float


class VisitOverdue(EvidenceMessage):
    kind: Literal["visit_overdue"] = "visit_overdue"
    last: Annotated[LastVisit | NoVisitYet, Field(discriminator="kind")]
    interval_days: int
    due_at: AwareDatetime


class PlainText(EvidenceMessage):
    """Text written before evidence was data (old snapshots and alerts): shown as it is, in any language."""

    kind: Literal["text"] = "text"
    text: str


Message = Annotated[
    SmokeSounding
    | SmokeStillSounding
    | SosPressedAgain
    | CannotConfirm
    | WaterAgain
    | ButtonPressed
    | SmokePressed
    | FlowStopped
    | CheckinAnswered
    | CheckinPaged
    | CheckinUnanswered
    | CheckinHelp
    | CheckinUnreachable
    | AwayFollowup
    | SmokeHushed
    | SmokeStopped
    | SmokeLowBattery
    | SmokeFault
    | SmokeTamper
    | SosPressed
    | SosCancelledSoon
    | SosCancelledLate
    | ServiceRequested
    | NoWater
    | LittleWater
    | RoutineMissed
    | WaterRunning
    | WaterAllDay
    | WaterOvernight
    | StandingFlow
    | ExcessOverLimit
    | ExcessOverUsual
    | BatteryLow
    | SignalWeak
    | DeviceOffline
    | DeviceBack
    | VisitOverdue
    | PlainText,
    Field(discriminator="kind"),
]


CheckinPaged.model_rebuild()


class Evidence(BaseModel):
    """One finding's evidence: the message, the household's time zone, and the moment it speaks from.

    ``as_of`` anchors relative times: "21:10 yesterday" is the day before ``as_of``'s local day, so an
    old alert reads the same whenever it is rendered.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: Message
    tz: str = Field(min_length=1, max_length=64)
    as_of: AwareDatetime

    def __str__(self) -> str:
        # For log lines: the kind only (messages may carry a resident's own words; logs carry ids).
        return self.message.kind
