"""The one renderer of evidence: :class:`schemas.evidence.Evidence` to text in English or Chinese.

Each message kind has one template here (its English text, the catalogue's message id). A placeholder
names a field of the message, with an optional format spec saying how to show it::

    {since}              an instant: local time relative to the evidence's as_of ("21:10 yesterday")
    {due_at:date}        an instant's local date ("Mar 14, 2024", "2024年3月14日")
    {night_start}        a clock time ("01:00")
    {litres:.1f}         a number with that many decimals, grouped for the locale ("1,234.5")
    {window_h}           a number with as many decimals as it needs ("12", "12.5")
    {quiet_s:duration}   seconds as caregivers say them ("45 min", "1.5 h", "11 h")
    {device}             a sub-message, rendered with its own template ("water meter wm-1")
    {devices}            a list of sub-messages, joined for the locale ("a, b, and c", "a、b和c")
    {day_type}           an enum value, through ENUM_TEXT ("weekdays", "工作日")

An absent optional sub-message renders as nothing. Translators keep placeholders and specs as they are.
"""

from __future__ import annotations

import logging
import string
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from i18n.catalog import N_, messages
from i18n.formats import LocalFormat
from schemas.evidence import AnswerVia, CheckinAnswerText, DayType, Evidence, EvidenceMessage, ResidentChannel, SignKind
from schemas.kinds import DeviceType
from schemas.language import Language

log = logging.getLogger(__name__)

TEMPLATES: dict[str, str] = {
    # Sub-messages
    "device": N_("{device_type} {device_id}"),
    "note": N_(' (note: "{text}")'),
    "offline_last_will": N_("reported going offline (its Last Will)"),
    "offline_never_heard": N_(
        "never reported since it was registered (watched from {watched_from}, expected every "
        "{expected_every_s:duration})"
    ),
    "offline_silent": N_("silent since {since} (expected every {expected_every_s:duration})"),
    "silent_peer": N_("{device} (last heard {last_heard})"),
    "also_silent": N_("; also silent: {devices}: whole home offline, likely a power or network outage"),
    "last_visit": N_("last home visit {at:date} by {by}"),
    "no_visit_yet": N_("no home visit logged since registration"),
    # Smoke alarm
    "smoke_sounding": N_("smoke alarm sounding since {since}: treat as a fire until a person has checked"),
    "smoke_still_sounding": N_("smoke alarm still sounding at {at} (since {since})"),
    "smoke_hushed": N_("alarm hushed at {at}: silenced only, the alarm is not cleared"),
    "smoke_stopped": N_(
        "alarm stopped at {at} after {sounded_s:duration}: a person must still confirm the home is safe"
    ),
    "smoke_low_battery": N_("smoke alarm reports a low battery: replace it before the alarm goes silent"),
    "smoke_fault": N_("smoke alarm reports a fault: it may not detect smoke; arrange a technician"),
    "smoke_tamper": N_("smoke alarm removed from its base (tamper): it cannot protect the home until refitted"),
    # Call button
    "sos_pressed": N_("emergency button pressed at {at}{note}: call the resident now"),
    "sos_pressed_again": N_("emergency button pressed again at {at}{note}"),
    "sos_cancelled_soon": N_("cancelled {after_s:.0f} s after the press: likely accidental, confirm with the resident"),
    "sos_cancelled_late": N_(
        "cancel pressed {after_s:duration} after the press (outside the {window_s:.0f} s window): "
        "not treated as accidental"
    ),
    "service_requested": N_("service request at {at}{note}: not urgent, contact the resident"),
    # Water: inactivity and routine
    "no_water": N_(
        "no water used for {window_h} h: none since {since}{after_sign} ({litres:.1f} L in drips over "
        "{quiet_s:duration}, reading at {reading_at})"
    ),
    "little_water": N_(
        "less than {min_litres} L in {window_h} h: {litres:.1f} L since {since}{after_sign} ({quiet_s:duration}, "
        "reading at {reading_at})"
    ),
    "routine_missed": N_(
        "at {at} on {day_type} water has usually been used within the last {usual_quiet_s:duration} "
        "({comparable_days} comparable days); none since {since}{after_sign}; {litres:.1f} L in {quiet_s:duration}"
    ),
    "after_sign": N_(" (when the {signal} was pressed)"),
    "cannot_confirm": N_(
        "cannot confirm the resident is well: {device} silent since {heard} (expected every "
        "{expected_every_s:duration}), and no water used since {since}{after_sign} ({quiet_s:duration}): "
        "no reading proves use{also_silent}"
    ),
    # Signs of life (they answer a check-in, or are noted on an alert already paged)
    "water_again": N_("water used again: {litres:.1f} L by {at}"),
    "button_pressed": N_("call button pressed ({event}) at {at}: the resident is up"),
    "smoke_pressed": N_("smoke alarm pressed (hush or test) at {at}: a person is at home"),
    "flow_stopped": N_("the water flow had stopped by {at}"),
    # Check-ins with the resident
    "checkin_attempt": N_("at {at} by {channels}"),
    "checkin_paged": N_("{finding}; {outcome}"),
    "checkin_unanswered": N_("checked in with the resident {attempts}: no answer"),
    "checkin_unreachable": N_("checked in with the resident {attempts}: the resident could not be reached"),
    "checkin_help": N_("checked in with the resident {attempts}: the resident asked for help ({via}, {at})"),
    "checkin_answered": N_("the resident answered {answer} ({via}) at {at}"),
    "away_followup": N_("said away at a check-in since {since}, no water used since: daily check-in"),
    # Water: flow and excess
    "water_running": N_(
        "water running at {rate_lpm:.1f} L/min since {since} ({running_s:duration}, {litres:.0f} L): "
        "a tap left running, or a fall in the shower; call the resident"
    ),
    "water_all_day": N_(
        "water used in every interval for {running_s:duration} since {since} ({litres:.0f} L, {rate_lph:.1f} L/h): "
        "a leak or a tap left running"
    ),
    "water_overnight": N_(
        "water used in every interval through the night ({night_start}–{night_end}), flowing since {since}: "
        "a leak, or someone up and in trouble"
    ),
    "standing_flow": N_(
        "water never stopped for {days} days: at least {rate_lph:.1f} L/h ({litres_per_day:.0f} L a day) every "
        "interval, likely a leak or a running cistern; arrange a repair (inactivity is judged above this flow "
        "meanwhile)"
    ),
    "excess_over_limit": N_(
        "{litres:.0f} L used today by {at}: above the program's daily maximum of {limit_l} L; "
        "check for a burst pipe or a tap left running"
    ),
    "excess_over_usual": N_(
        "{litres:.0f} L used today by {at}: {factor:.1f}× this home's usual high day ({usual_high_l:.0f} L); "
        "check for a burst pipe or a tap left running"
    ),
    # Device health
    "battery_low": N_("{device} battery at {battery_pct} % (notice at {notice_pct} %): replace on the next visit"),
    "signal_weak": N_(
        "{device} signal weak ({rssi_dbm} dBm, notice at {notice_dbm} dBm): messages may be lost; check its placement"
    ),
    "device_offline": N_(
        "{device} {why}{also_silent}; no data is not no water: inactivity cannot be judged until it reports again"
    ),
    "device_back": N_("back online at {at} after {silent_s:duration} of silence"),
    # Care team
    "visit_overdue": N_("{last}; a visit is due every {interval_days} days (due {due_at:date})"),
    # Text from before evidence was data: shown as written.
    "text": N_("{text}"),
}

# Keyed by (enum, value): members of different enums may share a value ("press", "smoke").
_ENUM_WORDS: list[tuple[StrEnum, str]] = [
    (DeviceType.WATER_METER, N_("water meter")),
    (DeviceType.SMOKE_ALARM, N_("smoke alarm")),
    (DeviceType.CALL_BUTTON, N_("call button")),
    (DayType.WEEKDAYS, N_("weekdays")),
    (DayType.WEEKENDS, N_("weekends")),
    (SignKind.PRESS, N_("call button")),
    (SignKind.SMOKE, N_("smoke alarm")),
    (ResidentChannel.BUTTON, N_("call button")),
    (ResidentChannel.VOICE, N_("phone call")),
    (ResidentChannel.RESIDENT_SMS, N_("SMS")),
    (AnswerVia.BUTTON, N_("by the call button")),
    (AnswerVia.VOICE, N_("by phone call")),
    (AnswerVia.RESIDENT_SMS, N_("by SMS")),
    (AnswerVia.WATER, N_("water used")),
    (AnswerVia.PRESS, N_("a call-button press")),
    (AnswerVia.SMOKE, N_("the smoke alarm pressed")),
    (AnswerVia.FLOW_STOPPED, N_("the flow stopped")),
    (CheckinAnswerText.OK, N_("ok")),
    (CheckinAnswerText.HELP, N_("help")),
    (CheckinAnswerText.AWAY, N_("away")),
]
ENUM_TEXT: dict[tuple[type[StrEnum], str], str] = {(type(value), value.value): text for value, text in _ENUM_WORDS}

# Between whole phrases of one list (each check-in attempt names its own channels with "and").
PHRASE_SEPARATOR = N_("; ")

_FORMAT = string.Formatter()


def render_evidence(evidence: Evidence, language: Language) -> str:
    """``evidence`` as a caregiver reads it in ``language``."""
    fmt = LocalFormat(messages(language), evidence.tz, evidence.as_of)
    return _message(evidence.message, fmt)


def english(evidence: Evidence) -> str:
    """The English text (the ``evidence`` columns keep it for readers that predate the structure)."""
    return render_evidence(evidence, Language.EN)


def placeholders(template: str) -> list[tuple[str, str]]:
    """``(field, spec)`` of every placeholder of ``template``, in order."""
    return [(name, spec or "") for _, name, spec, _ in _FORMAT.parse(template) if name is not None]


def _message(message: EvidenceMessage, fmt: LocalFormat) -> str:
    kind = str(getattr(message, "kind", ""))
    template = TEMPLATES.get(kind)
    if template is None:
        # The tests keep TEMPLATES complete; a gap must still not cost a caregiver the alert's facts.
        log.error("evidence kind %s has no template", kind)
        values = message.model_dump(exclude={"kind"}, mode="json")
        return f"{kind}: " + ", ".join(f"{key} {value}" for key, value in values.items())
    parts: list[str] = []
    for literal, name, spec, _ in _FORMAT.parse(fmt.messages.gettext(template)):
        parts.append(literal)
        if name is not None:
            parts.append(_value(getattr(message, name), spec or "", fmt))
    return "".join(parts)


def _has_list(item: object) -> bool:
    return isinstance(item, BaseModel) and any(
        isinstance(getattr(item, name), list) for name in type(item).model_fields
    )


def _value(value: Any, spec: str, fmt: LocalFormat) -> str:  # noqa: PLR0911 - one case per kind of value
    if value is None:
        return ""
    if isinstance(value, BaseModel):
        return _message(value, fmt)  # type: ignore[arg-type]
    if isinstance(value, list):
        if value and _has_list(value[0]):  # phrases with their own "a and b" (check-in attempts): "x; y"
            return fmt.messages.gettext(PHRASE_SEPARATOR).join(_value(item, spec, fmt) for item in value)
        return fmt.join([_value(item, spec, fmt) for item in value])
    if isinstance(value, StrEnum):
        text = ENUM_TEXT.get((type(value), value.value))
        return fmt.messages.gettext(text) if text is not None else value.value
    if isinstance(value, datetime):
        return fmt.day(value) if spec == "date" else fmt.instant(value)
    if isinstance(value, time):
        return fmt.clock(value)
    if isinstance(value, date):
        return fmt.day(value)
    if isinstance(value, bool | str):
        return str(value)
    if spec == "duration":
        return fmt.duration(float(value))
    if spec.startswith(".") and spec.endswith("f"):
        return fmt.number(value, int(spec[1:-1]))
    return fmt.number(value)
