"""Time helpers and the per-household view that detector logic consults.

Inside the detectors time is a float of epoch seconds (UTC): compact in state, cheap to compare, and
trivially JSON-serialisable. Datetimes appear only at the edges (records in, findings out), always
timezone-aware UTC. Local time matters for three things only: 30-minute routine slots and day types,
the night window of the flow detector, and the zone evidence is shown in (``HouseholdView.evidence``:
detectors give data, ``i18n`` writes "none since 21:10 yesterday"); :class:`HouseholdView` does those
conversions with the household's time zone.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from detectors.config import HouseholdSettings
from schemas.evidence import Evidence, Message

# (period start, first sign of life inside it) per ``until_use`` period a meter saw end early.
Returned = tuple[tuple[float, float], ...]
SLOT_S = 1800
SLOTS_PER_DAY = 48
DAY_S = 86400


def epoch(value: datetime) -> float:
    if value.tzinfo is None:
        raise ValueError("naive datetime: carewatch uses timezone-aware UTC only")
    return value.timestamp()


def to_dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def iso(value: float) -> str:
    return to_dt(value).isoformat()


_ZONES: dict[str, ZoneInfo] = {}


def zone(name: str) -> ZoneInfo:
    found = _ZONES.get(name)
    if found is None:
        found = _ZONES[name] = ZoneInfo(name)
    return found


class ZoneClock:
    """UTC offsets of one time zone, cached per UTC hour and shared by every household in the zone.

    The offset is needed several times per reading (local day, slot, day start); views of one zone are
    consulted in turn by thousands of meters at different hours, so a cache of the last hour per view
    missed most of the time. An hour is cached only when the offset is the same at its first and last
    second (a transition inside it is computed exactly on every call); the cache is bounded."""

    __slots__ = ("hours", "span", "tz")
    MAX_HOURS = 8192  # about a year of hours: ~0.8 MB per zone at most
    MAX_STEADY_HOURS = 24 * 14  # longer spans are not worth proving (a batch is a day or so)

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.hours: dict[int, float] = {}
        # (first hour, last hour, offset): UTC hours proven to have that one offset throughout.
        self.span: tuple[int, int, float] | None = None

    def offset_s(self, t: float) -> float:
        hour = int(t // 3600)
        found = self.hours.get(hour)
        if found is not None:
            return found
        start, end = self._exact(hour * 3600.0), self._exact(hour * 3600.0 + 3599.0)
        if start != end:
            return self._exact(t)
        if len(self.hours) >= self.MAX_HOURS:
            self.hours.clear()
        self.hours[hour] = start
        return start

    def steady(self, t0: float, t1: float) -> float | None:
        """The offset :meth:`offset_s` returns at every instant of [t0, t1] when that is one value, else
        None (a transition inside). Proven hour by hour with :meth:`offset_s` itself (an hour whose first
        and last second agree is not a transition hour, so every instant in it gets that offset); the
        proven span is kept, so a fleet's batches of the same day prove it once per zone."""
        h0, h1 = int(t0 // 3600), int(t1 // 3600)
        span = self.span
        if span is not None and span[0] <= h0 and h1 <= span[1]:
            return span[2]
        if h1 - h0 > self.MAX_STEADY_HOURS:
            return None
        first = self.offset_s(h0 * 3600.0)
        for hour in range(h0, h1 + 1):
            if self.offset_s(hour * 3600.0) != first or self.offset_s(hour * 3600.0 + 3599.0) != first:
                return None
        if span is not None and span[2] == first and span[0] <= h1 + 1 and h0 <= span[1] + 1:
            h0, h1 = min(h0, span[0]), max(h1, span[1])
        self.span = (h0, h1, first)
        return first

    def _exact(self, t: float) -> float:
        delta = to_dt(t).astimezone(self.tz).utcoffset()
        return delta.total_seconds() if delta is not None else 0.0


_CLOCKS: dict[str, ZoneClock] = {}


def zone_clock(name: str) -> ZoneClock:
    found = _CLOCKS.get(name)
    if found is None:
        found = _CLOCKS[name] = ZoneClock(zone(name))
    return found


class HouseholdView:
    """Household settings made fast to query with epoch seconds."""

    __slots__ = ("_away", "_clock", "_offset", "_quiet", "_tz", "has_away", "settings")

    def __init__(self, settings: HouseholdSettings) -> None:
        self.settings = settings
        self._tz = zone(settings.timezone)
        # The zone's shared cache, bound once: this is called several times for every reading.
        self._clock = zone_clock(settings.timezone)
        self._offset = self._clock.offset_s
        self._away = sorted((epoch(p.start), epoch(p.end), p.reason, p.until_use) for p in settings.away)
        # Whether any away or hospital period is set (read on every reading: an attribute, not a property).
        self.has_away = bool(self._away)
        self._quiet = settings.quiet

    # Away / hospital -------------------------------------------------------------------------
    # ``returned`` is a meter's record of the ``until_use`` periods it saw end early: (period start, the
    # first sign of life inside it). Such a period is over from that sign on. Without a record (the
    # default) a period counts whole, as the day ledger and the bulk paths' span checks take it.
    def away_reason(self, t: float, returned: Returned = ()) -> str | None:
        """The reason ("away", "hospital") if ``t`` lies inside a period, else None."""
        for start, end, reason, until_use in self._away:
            if start <= t < end and not (until_use and _ended(start, returned, t)):
                return reason
        return None

    def away_floor(self, t: float, returned: Returned = ()) -> float:
        """The latest end of a period that is over by ``t``: inactivity is counted from there at most."""
        floor = -math.inf
        for start, end, _, until_use in self._away:
            if start <= t:
                over = _early_end(start, returned) if until_use else None
                if over is not None and over <= t:
                    floor = max(floor, over)
                elif end <= t:
                    floor = max(floor, end)
        return floor

    def away_end(self, t: float, returned: Returned = ()) -> float | None:
        """The end of the period ``t`` lies in (None: none)."""
        for start, end, _, until_use in self._away:
            if start <= t < end and not (until_use and _ended(start, returned, t)):
                return end
        return None

    def until_use_starts(self) -> frozenset[float]:
        """The starts of the ``until_use`` periods set."""
        return frozenset(start for start, _, _, until_use in self._away if until_use)

    def until_use_start(self, t: float) -> float | None:
        """The start of an ``until_use`` period whose span holds ``t`` (after its start; None: none)."""
        for start, end, _, until_use in self._away:
            if until_use and start < t < end:
                return start
        return None

    def away_clear(self, t0: float, t1: float) -> bool:
        """True when no away period starts, ends or lies in [t0, t1]: there, :meth:`away_reason` is None
        and :meth:`away_floor` one value (the meter's bulk path relies on both)."""
        if not self._away:
            return True
        return all((start <= t0 and end <= t0) or (start > t1 and end > t1) for start, end, _, _ in self._away)

    # Local time ------------------------------------------------------------------------------
    def offset_s(self, t: float) -> float:
        return self._offset(t)

    def steady_offset(self, t0: float, t1: float) -> float | None:
        """The UTC offset throughout [t0, t1] if it does not change there (see :meth:`ZoneClock.steady`)."""
        return self._clock.steady(t0, t1)

    def local(self, t: float) -> datetime:
        return to_dt(t).astimezone(self._tz)

    def day_index(self, t: float) -> int:
        """Local calendar day number (days since 1970-01-01 local)."""
        return int((t + self._offset(t)) // DAY_S)

    def slot(self, t: float) -> int:
        """The local 30-minute slot (0..47) that contains instant ``t``."""
        return int(((t + self._offset(t)) % DAY_S) // SLOT_S)

    def day_start(self, day: int) -> float:
        """Epoch seconds of local midnight starting ``day`` (exact for fixed-offset zones such as
        Asia/Shanghai; for DST zones off by at most the DST shift on changeover days)."""
        guess = day * DAY_S
        return guess - self._offset(guess)

    def in_local_window(self, t: float, start: time, end: time) -> bool:
        clock = self.local(t).time()
        if start <= end:
            return start <= clock < end
        return clock >= start or clock < end

    def quiet_release(self, t: float) -> float | None:
        """If ``t`` is inside a quiet window, when that window ends; else None."""
        for window in self._quiet:
            if self.in_local_window(t, window.start, window.end):
                local = self.local(t)
                end = local.replace(hour=window.end.hour, minute=window.end.minute, second=0, microsecond=0)
                if end <= local:
                    end += timedelta(days=1)
                return end.timestamp()
        return None

    def evidence(self, as_of: float, message: Message) -> Evidence:
        """``message`` as this household's evidence: its times are shown in the household's zone,
        relative to the local day of ``as_of`` ("21:10 yesterday"); ``i18n`` renders it for people."""
        return Evidence(message=message, tz=self.settings.timezone, as_of=to_dt(as_of))

    def is_weekend(self, day: int) -> bool:
        # 1970-01-01 was a Thursday (weekday 3): Saturday and Sunday are 5 and 6.
        return (day + 3) % 7 >= 5


def _early_end(start: float, returned: Returned) -> float | None:
    for begun, sign in returned:
        if begun == start:
            return sign
    return None


def _ended(start: float, returned: Returned, t: float) -> bool:
    over = _early_end(start, returned)
    return over is not None and over <= t
