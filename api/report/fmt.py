"""Numbers, shares, dates and durations for the report, formatted for the locale by Babel.

Dates and times are shown in the household's (or the district's) time zone: a Shanghai district's
month runs from 1 November 00:00 to 1 December 00:00 Asia/Shanghai, not UTC.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_skeleton, format_time, format_timedelta
from babel.numbers import format_decimal, format_percent

from schemas.report import ReportLanguage

_LOCALES = {ReportLanguage.ZH_CN: Locale.parse("zh_Hans_CN"), ReportLanguage.EN: Locale.parse("en_GB")}


class Formatter:
    def __init__(self, language: ReportLanguage, none: str = "—") -> None:
        self.locale = _LOCALES[language]
        self.none = none

    def number(self, value: float | None, digits: int = 0) -> str:
        if value is None:
            return self.none
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def share(self, value: float | None) -> str:
        """A fraction as a percentage with one decimal (97.5 %, or 97.5% in Chinese)."""
        if value is None:
            return self.none
        return format_percent(value, format="#,##0.0%", locale=self.locale)

    def month(self, first_day: date) -> str:
        return format_skeleton("yMMMM", first_day, locale=self.locale)

    def date(self, at: datetime, timezone: str) -> str:
        return format_date(at.astimezone(ZoneInfo(timezone)).date(), format="medium", locale=self.locale)

    def datetime(self, at: datetime, timezone: str) -> str:
        zone = ZoneInfo(timezone)
        return f"{self.date(at, timezone)} {format_time(at, format='short', tzinfo=zone, locale=self.locale)}"

    def duration(self, seconds: float | None) -> str:
        if seconds is None:
            return self.none
        # Seconds up to 4 minutes (service levels are judged at 60 s and 180 s), then minutes, hours.
        return format_timedelta(timedelta(seconds=seconds), threshold=4, locale=self.locale)
