"""Rendering a notification body for people: e-mail subject and text, SMS text from a template, in the
recipient's language.

The body is the same JSON a webhook receives (``schemas.alerts.AlertNotification``). The dispatcher
hands every channel the body :func:`localized` for its recipient: ``locale`` says the language and
``evidence`` is rendered from ``evidence_data`` in it (``i18n``). Fixed wording here is English
marked ``N_`` for the gettext catalogue (``i18n/locales``), so a channel's own texts (a robot's title,
an SMS template's parameters) are one catalogue entry each: add the English with ``N_`` and its Chinese
in the catalogue (docs/i18n.md), never a per-language dict.

Templates use ``string.Template`` (``$name``), not ``str.format``: a configured template can only name
fields, never reach attributes of the values. The default SMS template is itself a catalogue entry; a
configured one is used as written. Medical notes never appear here: e-mail and SMS are not private
enough.
"""

from __future__ import annotations

import logging
from string import Template
from typing import Any

from pydantic import ValidationError

from i18n import N_, NC_, Language, Messages, messages, render_evidence
from schemas.evidence import Evidence

log = logging.getLogger(__name__)

DEFAULT_SMS_TEMPLATE = N_(
    "carewatch $SEVERITY $kind_text, household $household_id: $evidence (alert $alert_id)$claimed"
)

# In the context "alert kind": "smoke alarm" is also a device (the evidence's), and Chinese tells them apart.
_KIND_TEXT = {
    "sos": NC_("alert kind", "emergency call"),
    "smoke": NC_("alert kind", "smoke alarm"),
    "inactivity": NC_("alert kind", "no water use"),
    "routine_missed": NC_("alert kind", "missed routine"),
    "continuous_flow": NC_("alert kind", "continuous water flow"),
    "excessive_use": NC_("alert kind", "excessive water use"),
    "device_offline": NC_("alert kind", "device offline"),
    "service_request": NC_("alert kind", "service request"),
    "maintenance": NC_("alert kind", "device maintenance"),
    "visit_overdue": NC_("alert kind", "home visit overdue"),
}

_SEVERITY_TEXT = {
    "critical": N_("critical"),
    "high": N_("high"),
    "normal": N_("normal"),
    "low": N_("low"),
}

_REASON_TEXT = {
    "new": N_("new"),
    "escalated": N_("escalated"),
    "severity_raised": N_("severity raised"),
    "claimed_by_other": N_("claimed by someone else"),
}


def language_of(body: dict[str, Any]) -> Language:
    """The recipient's language of a (localized) body; English for bodies without one."""
    try:
        return Language(body.get("locale") or Language.EN)
    except ValueError:
        return Language.EN


def localized(body: dict[str, Any], language: Language) -> dict[str, Any]:
    """``body`` for a recipient who reads ``language``: ``locale`` set, ``evidence`` rendered in it from
    ``evidence_data`` (alerts from before evidence was data keep their English text)."""
    out = {**body, "locale": language.value}
    data = body.get("evidence_data")
    if data:
        try:
            out["evidence"] = render_evidence(Evidence.model_validate(data), language)
        except ValidationError:
            log.error("alert %s: stored evidence does not validate; sending its English text", body.get("alert_id"))
    return out


def _text(table: dict[str, str], key: str, say: Messages) -> str:
    found = table.get(key)
    return say.gettext(found) if found is not None else key


def kind_text(kind: str, say: Messages) -> str:
    """An alert kind as people name it ("emergency call", "一键呼叫"); an unknown kind as its id."""
    found = _KIND_TEXT.get(kind)
    return say.pgettext(*found) if found is not None else kind


def fields(body: dict[str, Any]) -> dict[str, str]:
    """Template fields: every body field as text, plus ``SEVERITY``, ``kind_text`` and ``claimed`` in the
    body's language."""
    say = messages(language_of(body))
    values = {key: "" if value is None else str(value) for key, value in body.items()}
    values["SEVERITY"] = _text(_SEVERITY_TEXT, values.get("severity", ""), say).upper()
    values["kind_text"] = kind_text(values.get("kind", ""), say)
    claimed_by = body.get("claimed_by")
    values["claimed"] = (
        say(N_(" - claimed by {caregiver}"), caregiver=claimed_by) if body.get("reason") == "claimed_by_other" else ""
    )
    if claimed_by and not values["claimed"]:
        values["claimed"] = say(N_(" - owner {caregiver}"), caregiver=claimed_by)
    return values


def sms_text(template: str, body: dict[str, Any], *, limit: int = 480) -> str:
    """The SMS text (unknown ``$names`` stay as written), cut to ``limit`` characters. The default
    template is said in the body's language; a configured one is used as written."""
    if template == DEFAULT_SMS_TEMPLATE:
        template = messages(language_of(body)).gettext(template)
    text = Template(template).safe_substitute(fields(body))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def email_subject(body: dict[str, Any]) -> str:
    say = messages(language_of(body))
    values = fields(body)
    subject = say(
        N_("[carewatch {severity}] {kind} - household {household_id}"),
        severity=values["SEVERITY"],
        kind=values["kind_text"],
        household_id=values.get("household_id", ""),
    )
    return say(N_("Claimed: {subject}"), subject=subject) if body.get("reason") == "claimed_by_other" else subject


def email_text(body: dict[str, Any]) -> str:
    say = messages(language_of(body))
    values = fields(body)
    lines = [
        say(
            N_("{kind} at household {household_id} ({severity})."),
            kind=values["kind_text"][:1].upper() + values["kind_text"][1:],
            household_id=values.get("household_id", ""),
            severity=_text(_SEVERITY_TEXT, values.get("severity", ""), say),
        ),
        "",
        values.get("evidence", ""),
        "",
        say(
            N_("Alert {alert_id}, opened {opened_at}, reason {reason}."),
            alert_id=values.get("alert_id", ""),
            opened_at=values.get("opened_at", ""),
            reason=_text(_REASON_TEXT, values.get("reason", ""), say),
        ),
    ]
    if body.get("reason") == "claimed_by_other":
        lines.append(
            say(N_("{caregiver} has claimed this alert; no action is needed from you."), caregiver=values["claimed_by"])
        )
    else:
        lines.append(say(N_("Claim it in the carewatch app or the API so the others know it is taken.")))
    return "\n".join(lines) + "\n"


# What the resident hears or reads at a check-in (a voice call reads it out; keys 1/2/3 answer it, an SMS
# is answered with the digit), in their own language: residents.locale (zh-CN unless set otherwise).
_CHECKIN_TEXT = {
    "voice": N_(
        "Hello, this is your community safety watch. We have not seen water used at your home for a while. "
        "Press 1 if you are fine, 2 if you need help, 3 if you are away from home."
    ),
    "resident_sms": N_(
        "Community safety watch: we have not seen water used at your home for a while. "
        "Reply 1 if you are fine, 2 if you need help, 3 if you are away from home."
    ),
}
# The digit the resident presses or replies, and what it means (the gateway passes it back).
CHECKIN_KEYS = {"1": "ok", "2": "help", "3": "away"}


def checkin_text(locale: str, channel: str) -> str:
    """The check-in message for ``channel`` (voice or resident_sms) in the resident's language."""
    language = Language.EN if locale.lower().startswith("en") else Language.ZH_CN
    return messages(language).gettext(_CHECKIN_TEXT.get(channel, _CHECKIN_TEXT["resident_sms"]))


# ---- Messaging robots and template SMS (issue 18) ---------------------------------------------------
# Wording in zh-CN (the default for Shanghai) and English, as plain dicts until the catalogue takes them.
# Every function takes the notification body and ``locale``; unknown locales fall back to zh-CN.

_ROBOT_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "household": "住户",
        "evidence": "情况",
        "status": "状态",
        "new": "新警报，请尽快处理并认领",
        "escalated": "无人认领，已升级，请尽快处理并认领",
        "severity_raised": "级别已提高，请尽快处理并认领",
        "claimed_by_other": "已由 {claimer} 认领，其他人无需处理",
        "alert": "警报编号 {alert_id}",
        "open": "在 carewatch 中查看",
        "mention": "请 {who} 处理",
        "claim_hint": "请在 carewatch 应用中认领，以便大家知道已有人处理。",
    },
    "en": {
        "household": "Household",
        "evidence": "What happened",
        "status": "Status",
        "new": "new alert: please act and claim it",
        "escalated": "unclaimed, escalated: please act and claim it",
        "severity_raised": "severity raised: please act and claim it",
        "claimed_by_other": "claimed by {claimer}; nobody else needs to act",
        "alert": "Alert {alert_id}",
        "open": "open in carewatch",
        "mention": "{who}, please take this one",
        "claim_hint": "Claim it in the carewatch app so the others know it is taken.",
    },
}

_SEVERITY_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {"critical": "紧急", "high": "重要", "normal": "一般", "low": "提示"},
    "en": {"critical": "CRITICAL", "high": "HIGH", "normal": "NORMAL", "low": "LOW"},
}

ELLIPSIS = "…"


def _lang(locale: str) -> str:
    return "en" if locale.lower().startswith("en") else "zh-CN"


def kind_words(kind: str, *, locale: str = "zh-CN") -> str:
    """The alert kind in the catalogue's words (the same as e-mail and SMS use)."""
    return kind_text(kind, messages(Language(_lang(locale))))


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` in at most ``max_bytes`` of UTF-8, cut at a character boundary and marked with "…"."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    room = max(0, max_bytes - len(ELLIPSIS.encode()))
    # A cut inside a multi-byte character leaves an incomplete tail: "ignore" drops exactly that tail.
    return data[:room].decode("utf-8", "ignore") + (ELLIPSIS if max_bytes >= len(ELLIPSIS.encode()) else "")


def _status(body: dict[str, Any], words: dict[str, str]) -> str:
    reason = str(body.get("reason") or "new")
    template = words.get(reason, words["new"])
    return template.format(claimer=body.get("claimed_by") or "")


def robot_title(body: dict[str, Any], *, locale: str = "zh-CN") -> str:
    """One line: severity, kind, household (a robot message's title and first line)."""
    lang = _lang(locale)
    severity = _SEVERITY_WORDS[lang].get(str(body.get("severity")), str(body.get("severity")))
    kind = kind_words(str(body.get("kind")), locale=lang)
    household = _ROBOT_WORDS[lang]["household"]
    if lang == "zh-CN":
        return f"【{severity}】{kind} · {household} {body.get('household_id')}"
    return f"[{severity}] {kind} - {household.lower()} {body.get('household_id')}"


def _fit(parts_before: str, evidence: str, parts_after: str, max_bytes: int) -> str:
    """Head + evidence + tail in ``max_bytes``: only the evidence is shortened (the id and link stay)."""
    room = max_bytes - len(parts_before.encode()) - len(parts_after.encode())
    if room < len(ELLIPSIS.encode()) + 1:  # not even the evidence fits: keep what we can, from the head
        return truncate_utf8(parts_before + parts_after, max_bytes)
    return parts_before + truncate_utf8(evidence, room) + parts_after


def robot_markdown(
    body: dict[str, Any], *, max_bytes: int, locale: str = "zh-CN", link: str | None = None, mention: str = ""
) -> str:
    """A group robot's markdown message (the subset WeCom and DingTalk both render): title, household,
    evidence, status, and a footer with the alert id and link. At most ``max_bytes`` of UTF-8."""
    lang = _lang(locale)
    words = _ROBOT_WORDS[lang]
    colon = "：" if lang == "zh-CN" else ": "
    head = (
        f"### {robot_title(body, locale=lang)}\n\n"
        f"**{words['household']}**{colon}{body.get('household_id')}\n\n"
        f"**{words['evidence']}**{colon}"
    )
    alert = words["alert"].format(alert_id=body.get("alert_id"))
    footer = f"> {alert}" + (f" · [{words['open']}]({link})" if link else " · carewatch")
    tail = f"\n\n**{words['status']}**{colon}{_status(body, words)}\n\n"
    if mention:
        tail += words["mention"].format(who=mention) + "\n\n"
    return _fit(head, str(body.get("evidence") or ""), tail + footer, max_bytes)


def robot_text(
    body: dict[str, Any], *, max_bytes: int, locale: str = "zh-CN", link: str | None = None, mention: str = ""
) -> str:
    """The same message as plain text (WeCom ``text``, which can @mention a member by mobile)."""
    lang = _lang(locale)
    words = _ROBOT_WORDS[lang]
    colon = "：" if lang == "zh-CN" else ": "
    head = f"{robot_title(body, locale=lang)}\n{words['evidence']}{colon}"
    tail = f"\n{words['status']}{colon}{_status(body, words)}\n"
    if mention:
        tail += words["mention"].format(who=mention) + "\n"
    footer = words["alert"].format(alert_id=body.get("alert_id")) + (f" {link}" if link else " · carewatch")
    return _fit(head, str(body.get("evidence") or ""), tail + footer, max_bytes)


# Template SMS: the vendors allow only approved templates; carewatch fills their variables. One template
# per family; the variables of each, in order (Tencent's templates are positional: {1}, {2}, ...).
SMS_TEMPLATE_VARIABLES: dict[str, tuple[str, ...]] = {
    "alert": ("kind", "household", "evidence", "alert"),
    "notice": ("kind", "household", "evidence", "alert"),
    "claimed": ("household", "kind", "alert", "claimer"),
}


def sms_family(body: dict[str, Any]) -> str:
    """Which template: a claim notice, an urgent alert (critical, high) or a care-team notice."""
    if body.get("reason") == "claimed_by_other":
        return "claimed"
    return "alert" if body.get("severity") in {"critical", "high"} else "notice"


def _cut_chars(value: str, max_chars: int) -> str:
    return value if len(value) <= max_chars else value[: max(0, max_chars - 1)] + ELLIPSIS


def sms_template_params(body: dict[str, Any], *, locale: str = "zh-CN", max_chars: int = 35) -> dict[str, str]:
    """The template variables of ``sms_family(body)``, in template order, each at most ``max_chars``
    characters (the vendors count characters, a Chinese character as one; a longer value is refused).
    Whitespace runs become one space: a template variable is one line."""
    values = {
        "kind": kind_words(str(body.get("kind")), locale=locale),
        "household": str(body.get("household_id") or ""),
        "evidence": " ".join(str(body.get("evidence") or "").split()),
        "alert": str(body.get("alert_id") or ""),
        "claimer": str(body.get("claimed_by") or ""),
    }
    names = SMS_TEMPLATE_VARIABLES[sms_family(body)]
    return {name: _cut_chars(values[name], max_chars) for name in names}
