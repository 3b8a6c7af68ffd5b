"""The languages carewatch speaks to people, as BCP 47 tags (the API, the page and caregiver settings)."""

from __future__ import annotations

from enum import StrEnum


class Language(StrEnum):
    EN = "en"
    ZH_CN = "zh-CN"
