"""Which language a person gets: a browser's or API client's ``Accept-Language``, or a caregiver's
setting with a default from the household's time zone.

Only the primary language subtag decides (``zh-TW`` and ``zh-Hans`` read Simplified Chinese better
than English; ``en-GB`` is English), because carewatch speaks exactly English and Simplified Chinese.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.language import Language

# Mainland China's IANA zones (Asia/Shanghai and its old aliases): homes there get Chinese by default.
CHINA_ZONES = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking", "Asia/Harbin", "PRC"})

_BY_PRIMARY = {"en": Language.EN, "zh": Language.ZH_CN}


def match(tags: Iterable[str]) -> Language | None:
    """The first of ``tags`` (BCP 47, best first) that carewatch speaks, or None."""
    for tag in tags:
        found = _BY_PRIMARY.get(tag.strip().lower().replace("_", "-").split("-", 1)[0])
        if found is not None:
            return found
    return None


def parse_accept_language(header: str) -> list[str]:
    """Language tags of an ``Accept-Language`` header, best first (RFC 9110 q-values; q=0 dropped)."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and tag != "*" and quality > 0:
            weighted.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate(accept_language: str | None, default: Language = Language.EN) -> Language:
    """The language for a request: the best one the client accepts that carewatch speaks, else ``default``."""
    if not accept_language:
        return default
    return match(parse_accept_language(accept_language)) or default


def default_language(timezone: str) -> Language:
    """A caregiver's language when they chose none: Chinese for homes in mainland China, else English."""
    return Language.ZH_CN if timezone in CHINA_ZONES else Language.EN


def recipient_language(setting: str | None, household_timezone: str) -> Language:
    """A caregiver's language: their ``locale`` setting if it is one carewatch speaks, else the default."""
    if setting:
        found = match([setting])
        if found is not None:
            return found
    return default_language(household_timezone)
