"""Meter readings that make the hourly aggregate path earn its keep, and the ranges to compare on.

Shared by the plain-PostgreSQL test (``readings_hourly`` as an ordinary table with the continuous
aggregate's columns) and the TimescaleDB test (the real continuous aggregate). ``METER``'s six days are
15-minute readings with, on day 0: a reset inside an hour, a reset at an hour's first reading, an
impossible jump inside an hour and one at an hour's first reading, five empty hours followed by a large
but possible step, steps exactly at the physical bound (1.5 L/s x 900 s + 10 L) and just over it (inside
an hour and at an hour's first reading), and readings off the quarter-hour grid. ``NEWEST``'s single
reading 20 days later makes every hour of ``METER`` before ``SETTLED_BEFORE`` settled (the aggregate is
used there), and the rest not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

from storage.readings import Bucket

HOUSEHOLD = "hh-hourly"
METER = "hourly-meter"
NEWEST = "hourly-newest"
T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)
# The newest materialised hour is NEWEST's (T0 + 20 days); 15 days before its end, hours are settled.
SETTLED_BEFORE = T0 + timedelta(days=20) + HOUR - timedelta(days=15)


def readings() -> list[tuple[str, datetime, float]]:
    """``(device_id, ts, register_l)`` rows, device-time order per device."""
    rows: list[tuple[str, datetime, float]] = []
    register = 500.0
    for k in range(6 * 96):
        ts = T0 + k * timedelta(minutes=15)
        if T0 + 15 * HOUR <= ts < T0 + 20 * HOUR:
            continue  # five empty hours
        if T0 + 30 * HOUR <= ts < T0 + 31 * HOUR and ts.minute in {15, 45}:
            ts += timedelta(seconds=7, microseconds=250)  # off the grid: elapsed times that are not whole
        special = _SPECIAL.get(ts - T0)
        register = special(register) if special else register + (k * 37 % 11) * 0.5  # 0 to 5 L, some zeros
        rows.append((METER, ts, register))
    rows.append((NEWEST, T0 + timedelta(days=20, minutes=10), 10.0))
    return rows


# Offset from T0 -> the register there, from the one before (registers stay multiples of 0.5 L, so the
# differences are exact and "exactly the bound" is exactly it).
_SPECIAL: dict[timedelta, Callable[[float], float]] = {
    timedelta(hours=5, minutes=30): lambda _: 3.0,  # reset inside hour 5
    timedelta(hours=8): lambda r: r + 90_000.0,  # impossible jump at hour 8's first reading
    timedelta(hours=10, minutes=30): lambda r: r + 50_000.0,  # impossible jump inside hour 10
    timedelta(hours=12): lambda _: 7.0,  # reset at hour 12's first reading
    timedelta(hours=20): lambda r: r + 5_000.0,  # after 5 h 15 min without readings: possible
    timedelta(hours=22, minutes=15): lambda r: r + 1_360.0,  # 900 s after the last: exactly the bound
    timedelta(hours=22, minutes=30): lambda r: r + 1_360.5,  # just over it
    timedelta(hours=23): lambda r: r + 1_360.0,  # the same two at an hour's first reading
    timedelta(hours=24): lambda r: r + 1_360.5,
}

# (start, end) pairs: aligned, partial first and last hours, inside one hour, starting in the gap, on
# the special hours, across the settled boundary, before any reading, and the whole history.
RANGES: tuple[tuple[datetime, datetime], ...] = (
    (T0, T0 + timedelta(days=2)),
    (T0 + timedelta(hours=5, minutes=20), T0 + timedelta(days=1, minutes=40)),
    (T0 + timedelta(hours=5, minutes=10), T0 + timedelta(hours=5, minutes=50)),
    (T0 + timedelta(hours=7, minutes=59), T0 + timedelta(hours=12, minutes=1)),
    (T0 + timedelta(hours=16, minutes=30), T0 + timedelta(hours=23)),
    (T0 + timedelta(hours=22), T0 + timedelta(hours=31)),
    (SETTLED_BEFORE - timedelta(hours=30, minutes=20), SETTLED_BEFORE + timedelta(hours=30, minutes=40)),
    (T0 - timedelta(days=3), T0 + timedelta(hours=2, minutes=30)),
    (T0 - timedelta(days=1), T0 + timedelta(days=7)),
)


def store(conn: psycopg.Connection) -> None:
    """The household, both meters and their readings (straight into ``readings``: decode would refuse
    device times this old)."""
    conn.execute(
        "INSERT INTO households (household_id, name, timezone) VALUES (%s, 'hourly', 'Europe/Berlin')", (HOUSEHOLD,)
    )
    for device in (METER, NEWEST):
        conn.execute(
            "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s)"
            " VALUES (%s, 'water_meter', %s, 900)",
            (device, HOUSEHOLD),
        )
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (device_id, ts, register_l, received_at) VALUES (%s, %s, %s, %s)",
            [(device, ts, register, ts) for device, ts, register in readings()],
        )


def comparable(buckets: list[Bucket]) -> list[tuple[datetime, float, int, float | None]]:
    """Buckets with consumption rounded: the two paths add the same litres in a different order."""
    return [(b.bucket, round(b.consumption_l, 6), b.samples, b.register_last) for b in buckets]
