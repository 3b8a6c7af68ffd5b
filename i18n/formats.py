"""Times, durations, numbers and lists for people, in one language and one household's time zone.

Dates, clock times, numbers and lists come from Babel (CLDR data): ``3月14日`` and ``Mar 14``,
``1,234.5``, ``a、b和c`` and ``a, b, and c``. Words Babel has no pattern for ("yesterday" next to a
clock time, "h" and "min" as caregivers abbreviate them) are catalogue messages.

Instants are shown relative to the evidence's ``as_of`` in the household's zone, as caregivers read
them: ``21:10`` on the same local day, ``21:10 yesterday`` the day before, ``Mar 14 21:10`` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton
from babel.lists import format_list

from i18n.catalog import N_, Messages


class LocalFormat:
    """Formatting for one language, in the zone ``tz``, relative to the instant ``as_of``."""

    __slots__ = ("_as_of_day", "messages", "tz")

    def __init__(self, messages: Messages, tz: str, as_of: datetime) -> None:
        self.messages = messages
        self.tz = ZoneInfo(tz)
        self._as_of_day = as_of.astimezone(self.tz).date()

    @property
    def locale(self) -> str:
        return self.messages.locale

    def clock(self, value: time | datetime) -> str:
        """A 24-hour clock time (``21:10``, ``09:05``)."""
        moment = value if isinstance(value, datetime) else datetime.combine(date(2000, 1, 1), value)
        return format_skeleton("Hm", moment, locale=self.locale)

    def instant(self, value: datetime) -> str:
        local = value.astimezone(self.tz)
        clock = self.clock(local)
        days = (self._as_of_day - local.date()).days
        if days == 0:
            return clock
        if days == 1:
            return self.messages(N_("{time} yesterday"), time=clock)
        return self.messages(N_("{date} {time}"), date=format_skeleton("MMMd", local, locale=self.locale), time=clock)

    def day(self, value: datetime | date) -> str:
        """A calendar date (``Mar 14, 2024``, ``2024年3月14日``); an instant's in the household's zone."""
        day = value.astimezone(self.tz).date() if isinstance(value, datetime) else value
        return format_date(day, "medium", locale=self.locale)

    def duration(self, seconds: float) -> str:
        """``45 min``, ``1.5 h``, ``11 h``: whole minutes below an hour, else hours to a tenth where it
        matters (under ten hours and not within 3 minutes of a whole hour)."""
        if seconds < 3600:
            return self.messages(N_("{n} min"), n=self.number(round(seconds / 60), 0))
        h = seconds / 3600
        places = 0 if h >= 10 or abs(h - round(h)) < 0.05 else 1
        return self.messages(N_("{n} h"), n=self.number(h, places))

    def number(self, value: float, places: int | None = None) -> str:
        return self.messages.number(value, places)

    def join(self, items: Sequence[str]) -> str:
        return format_list(list(items), style="standard", locale=self.locale)
