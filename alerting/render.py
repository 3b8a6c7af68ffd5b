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

_KIND_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "sos": "紧急呼叫",
        "smoke": "烟感报警",
        "inactivity": "长时间未用水",
        "routine_missed": "日常用水未出现",
        "continuous_flow": "持续流水",
        "excessive_use": "用水量异常",
        "device_offline": "设备离线",
        "service_request": "服务请求",
        "maintenance": "设备维护",
        "visit_overdue": "上门探访逾期",
    },
    "en": _KIND_TEXT,
}

_SEVERITY_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {"critical": "紧急", "high": "重要", "normal": "一般", "low": "提示"},
    "en": {"critical": "CRITICAL", "high": "HIGH", "normal": "NORMAL", "low": "LOW"},
}

ELLIPSIS = "…"


def _lang(locale: str) -> str:
    return "en" if locale.lower().startswith("en") else "zh-CN"


def kind_words(kind: str, *, locale: str = "zh-CN") -> str:
    return _KIND_WORDS[_lang(locale)].get(kind, kind)


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
