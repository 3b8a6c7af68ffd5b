"""Simulated time: integer epoch milliseconds inside, aware UTC datetimes at the edges.

The generator handles millions of instants, so it keeps them as ``int`` milliseconds since the Unix
epoch (UTC) and converts only when a human or a payload needs text. Residents live on Shanghai time
(UTC+08:00, no daylight saving), so "local day" and "local time of day" are computed with a fixed
offset rather than a tz database.

Durations on the command line use a compact form: ``90s``, ``15m``, ``6h``, ``2d``, ``1d6h30m``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
LOCAL_OFFSET_MS = 8 * HOUR_MS
SHANGHAI = timezone(timedelta(hours=8), "CST")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_MS = {"d": DAY_MS, "h": HOUR_MS, "m": MINUTE_MS, "s": SECOND_MS}


def to_ms(moment: datetime) -> int:
    """Aware datetime to epoch milliseconds; naive datetimes are refused (they hide a time zone bug)."""
    if moment.tzinfo is None:
        raise ValueError("simulated time must be timezone-aware")
    return round(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def rfc3339_local(ms: int) -> str:
    """Device-style RFC 3339 with the +08:00 offset and millisecond precision."""
    minute, rest = divmod(ms, MINUTE_MS)
    second, milli = divmod(rest, SECOND_MS)
    return f"{_minute_prefix(minute)}{second:02d}.{milli:03d}+08:00"


@lru_cache(maxsize=4096)
def _minute_prefix(minute: int) -> str:
    # Formatting a datetime costs microseconds; messages are time-ordered, so a minute's prefix repeats.
    return datetime.fromtimestamp(minute * 60, tz=SHANGHAI).strftime("%Y-%m-%dT%H:%M:")


def iso_utc(ms: int) -> str:
    """Compact UTC RFC 3339 for ground truth and logs."""
    return from_ms(ms).isoformat(timespec="seconds").replace("+00:00", "Z")


def local_day(ms: int) -> int:
    """Index of the Shanghai calendar day containing ``ms`` (days since 1970-01-01 local)."""
    return (ms + LOCAL_OFFSET_MS) // DAY_MS


def local_day_start(day: int) -> int:
    """Epoch milliseconds of local midnight starting ``day``."""
    return day * DAY_MS - LOCAL_OFFSET_MS


def weekday(day: int) -> int:
    """Monday=0 .. Sunday=6 for a local day index (1970-01-01 was a Thursday)."""
    return (day + 3) % 7


def parse_duration(text: str) -> int:
    """Parse ``1d6h30m``-style durations (also plain seconds) into milliseconds."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return int(float(text) * SECOND_MS)
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 6h, 1d6h)")
    return int(total)


def parse_time(text: str, *, origin_ms: int | None = None) -> int:
    """An RFC 3339 instant (offset required), or an offset like ``6h`` from ``origin_ms``."""
    text = text.strip()
    if "T" in text.upper() or "-" in text[1:]:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError(f"time needs an offset (Z or +08:00): {text!r}")
        return to_ms(moment)
    if origin_ms is None:
        raise ValueError(f"relative time {text!r} needs a simulation start")
    return origin_ms + parse_duration(text)


def floor_hour(ms: int) -> int:
    return ms - ms % HOUR_MS
