"""Rendering a notification body for people: e-mail subject and text, SMS text from a template.

The body is the same JSON a webhook receives (``schemas.alerts.AlertNotification``). Templates use
``string.Template`` (``$name``), not ``str.format``: a configured template can only name fields, never
reach attributes of the values. Medical notes never appear here: e-mail and SMS are not private enough.
"""

from __future__ import annotations

from string import Template
from typing import Any

DEFAULT_SMS_TEMPLATE = "carewatch $SEVERITY $kind_text, household $household_id: $evidence (alert $alert_id)$claimed"

_KIND_TEXT = {
    "sos": "emergency call",
    "smoke": "smoke alarm",
    "inactivity": "no water use",
    "routine_missed": "missed routine",
    "continuous_flow": "continuous water flow",
    "excessive_use": "excessive water use",
    "device_offline": "device offline",
    "service_request": "service request",
    "maintenance": "device maintenance",
    "visit_overdue": "home visit overdue",
}


def fields(body: dict[str, Any]) -> dict[str, str]:
    """Template fields: every body field as text, plus ``SEVERITY``, ``kind_text`` and ``claimed``."""
    values = {key: "" if value is None else str(value) for key, value in body.items()}
    values["SEVERITY"] = values.get("severity", "").upper()
    values["kind_text"] = _KIND_TEXT.get(values.get("kind", ""), values.get("kind", ""))
    claimed_by = body.get("claimed_by")
    values["claimed"] = f" - claimed by {claimed_by}" if body.get("reason") == "claimed_by_other" else ""
    if claimed_by and not values["claimed"]:
        values["claimed"] = f" - owner {claimed_by}"
    return values


def sms_text(template: str, body: dict[str, Any], *, limit: int = 480) -> str:
    """The SMS text (unknown ``$names`` stay as written), cut to ``limit`` characters."""
    text = Template(template).safe_substitute(fields(body))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def email_subject(body: dict[str, Any]) -> str:
    values = fields(body)
    prefix = "Claimed: " if body.get("reason") == "claimed_by_other" else ""
    return f"{prefix}[carewatch {values['SEVERITY']}] {values['kind_text']} - household {values['household_id']}"


def email_text(body: dict[str, Any]) -> str:
    values = fields(body)
    lines = [
        f"{values['kind_text'].capitalize()} at household {values['household_id']} ({values['severity']}).",
        "",
        values.get("evidence", ""),
        "",
        f"Alert {values['alert_id']}, opened {values.get('opened_at', '')}, reason {values.get('reason', '')}.",
    ]
    if body.get("reason") == "claimed_by_other":
        lines.append(f"{values['claimed_by']} has claimed this alert; no action is needed from you.")
    else:
        lines.append("Claim it in the carewatch app or the API so the others know it is taken.")
    return "\n".join(lines) + "\n"


# What the resident hears or reads at a check-in (a voice call reads it out; keys 1/2/3 answer it, an SMS
# is answered with the digit). Their own language: residents.locale, zh-CN unless set otherwise.
_CHECKIN_TEXT = {
    "zh-CN": {
        "voice": "您好，这里是社区平安守护。我们有一段时间没有看到您家用水了。"
        "平安请按1，需要帮助请按2，外出不在家请按3。",
        "resident_sms": "【社区平安守护】您好，我们有一段时间没有看到您家用水了。"
        "平安请回复1，需要帮助请回复2，外出不在家请回复3。",
    },
    "en": {
        "voice": "Hello, this is your community safety watch. We have not seen water used at your home for a while. "
        "Press 1 if you are fine, 2 if you need help, 3 if you are away from home.",
        "resident_sms": "Community safety watch: we have not seen water used at your home for a while. "
        "Reply 1 if you are fine, 2 if you need help, 3 if you are away from home.",
    },
}
# The digit the resident presses or replies, and what it means (the gateway passes it back).
CHECKIN_KEYS = {"1": "ok", "2": "help", "3": "away"}


def checkin_text(locale: str, channel: str) -> str:
    """The check-in message for ``channel`` (voice or resident_sms) in the resident's language."""
    texts = _CHECKIN_TEXT.get(locale) or _CHECKIN_TEXT["zh-CN" if locale.startswith("zh") else "en"]
    return texts.get(channel, texts["resident_sms"])
