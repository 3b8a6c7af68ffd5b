"""Shared vocabularies (``StrEnum``) used on the wire, in storage and in the API."""

from __future__ import annotations

from enum import StrEnum


class DeviceType(StrEnum):
    WATER_METER = "water_meter"
    SMOKE_ALARM = "smoke_alarm"
    CALL_BUTTON = "call_button"


class Channel(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"


class SmokeEventKind(StrEnum):
    ALARM = "alarm"
    ALARM_CLEARED = "alarm_cleared"
    HUSH = "hush"
    TEST = "test"
    LOW_BATTERY = "low_battery"
    FAULT = "fault"
    TAMPER = "tamper"
    TAMPER_CLEARED = "tamper_cleared"


class CallEventKind(StrEnum):
    SOS = "sos"
    CANCEL = "cancel"
    SERVICE_REQUEST = "service_request"
    # The resident pressed to answer a check-in the device was beeping for (carries its ``checkin_id``).
    CHECKIN_OK = "checkin_ok"


class Severity(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.NORMAL: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class AlertKind(StrEnum):
    SOS = "sos"
    SMOKE = "smoke"
    INACTIVITY = "inactivity"
    ROUTINE_MISSED = "routine_missed"
    CONTINUOUS_FLOW = "continuous_flow"
    EXCESSIVE_USE = "excessive_use"
    DEVICE_OFFLINE = "device_offline"
    SERVICE_REQUEST = "service_request"
    MAINTENANCE = "maintenance"
    # A reminder task for the care team: the resident's home visit is overdue (raised by alerting).
    VISIT_OVERDUE = "visit_overdue"


DEFAULT_SEVERITY: dict[AlertKind, Severity] = {
    AlertKind.SOS: Severity.CRITICAL,
    AlertKind.SMOKE: Severity.CRITICAL,
    AlertKind.INACTIVITY: Severity.HIGH,
    AlertKind.ROUTINE_MISSED: Severity.HIGH,
    AlertKind.CONTINUOUS_FLOW: Severity.HIGH,
    AlertKind.EXCESSIVE_USE: Severity.NORMAL,
    AlertKind.DEVICE_OFFLINE: Severity.NORMAL,
    AlertKind.SERVICE_REQUEST: Severity.NORMAL,
    AlertKind.MAINTENANCE: Severity.LOW,
    AlertKind.VISIT_OVERDUE: Severity.NORMAL,
}


class AlertStatus(StrEnum):
    # Asking the resident first (call button, phone): nobody is paged while the alert is here.
    CHECKING_IN = "checking_in"
    OPEN = "open"
    NOTIFIED = "notified"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


class Outcome(StrEnum):
    EMERGENCY = "emergency"
    NEEDED_HELP = "needed_help"
    RESIDENT_OK = "resident_ok"
    AWAY = "away"
    FALSE_ALARM_DEVICE = "false_alarm_device"
    TEST = "test"
    OTHER = "other"


class CareRole(StrEnum):
    FAMILY = "family"
    VOLUNTEER = "volunteer"
    COMMITTEE_STAFF = "committee_staff"
    SOCIAL_WORKER = "social_worker"
    SUPERVISOR = "supervisor"


class DeliveryChannel(StrEnum):
    """How a notification reaches a caregiver, or a check-in the resident (``notifications.channel``)."""

    WEBHOOK = "webhook"
    EMAIL = "email"
    SMS = "sms"
    APP = "app"
    # Messaging robots: the caregiver's chosen group chat (``caregivers.robot_group_id``), or a care-team
    # group (``notify_groups``); see ``alerting.robots``.
    WECOM = "wecom"
    DINGTALK = "dingtalk"
    # Check-ins to the resident: a downlink command to the call button, a call or SMS to their phone.
    BUTTON = "button"
    VOICE = "voice"
    RESIDENT_SMS = "resident_sms"


ROBOT_CHANNELS: frozenset[DeliveryChannel] = frozenset({DeliveryChannel.WECOM, DeliveryChannel.DINGTALK})


class CheckinAnswer(StrEnum):
    """What a resident says to a check-in (a press, a phone key or SMS reply, or any sign of life)."""

    OK = "ok"
    HELP = "help"
    AWAY = "away"


class CheckinStatus(StrEnum):
    WAITING = "waiting"  # an attempt is out, its wait not over
    ANSWERED = "answered"  # ok, away or help
    UNANSWERED = "unanswered"  # every attempt's wait ran out: the care plan was paged
    CANCELLED = "cancelled"  # the alert was resolved or paged another way first


# Roles that see residents' medical notes unless a care-plan contact says otherwise.
MEDICAL_NOTES_ROLES: frozenset[CareRole] = frozenset({CareRole.FAMILY, CareRole.SOCIAL_WORKER, CareRole.SUPERVISOR})


class RejectReason(StrEnum):
    """Why a message was not accepted. Every value is a metric label and a ``rejects.reason`` value."""

    BAD_TOPIC = "bad_topic"
    OVERSIZED = "oversized"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    NOT_OBJECT = "not_object"
    NON_FINITE = "non_finite"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    BATCH_TOO_LARGE = "batch_too_large"
    UNKNOWN_DEVICE = "unknown_device"
    SHAPE_MISMATCH = "shape_mismatch"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    RATE_LIMITED = "rate_limited"


class BrokerApplied(StrEnum):
    """Whether a login change reached the MQTT broker (docs/operations.md, "Security")."""

    APPLIED = "applied"  # the broker has it now
    PENDING = "pending"  # the broker missed it: recorded, retried, reconciled by `carewatch broker sync`
    UNMANAGED = "unmanaged"  # carewatch does not drive this broker (embedded demo broker, or EMQX)
