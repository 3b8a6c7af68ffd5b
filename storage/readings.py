"""Meter readings for the API: raw pages and hourly/daily consumption, from TimescaleDB when it is there.

Consumption is computed from the cumulative register: the difference between consecutive readings,
attributed to the bucket of the later one, by ingest's ``meter_consumption`` SQL function (migration
0002): a register that goes backwards or jumps impossibly far starts a new series and counts as 0 rather
than as a huge negative or positive use. Buckets without any reading are absent, not
zero: "no data" (an NB-IoT meter that has not uploaded yet) must not look like "no water used". Hours
are UTC hours (``time_bucket``'s), whatever the session's time zone.

Two sources, chosen by the caller from ``storage.migrate.current_mode`` and reported in the response.
They return the same buckets for the same data (up to floating-point summation order); the aggregate is
an optimisation only:
- ``readings``: plain SQL over the ``readings`` table (primary key ``(device_id, ts)`` makes each query
  one index range scan per device);
- ``readings_hourly``: the TimescaleDB continuous aggregate, used only for the *settled* whole hours of
  the range, and raw rows for the rest (see ``hourly_from_aggregate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row

from storage.migrate import HOURLY_REFRESH_WINDOW

_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Bucket:
    bucket: datetime
    consumption_l: float
    samples: int
    register_last: float | None


def raw_page(
    conn: psycopg.Connection, device_id: str, start: datetime, end: datetime, *, after: datetime | None, limit: int
) -> list[dict[str, Any]]:
    """Readings in ``[start, end)`` oldest first; keyset pagination by ``ts`` (``after``)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT ts, register_l, received_at FROM readings WHERE device_id = %s AND ts >= %s AND ts < %s"
            " AND (%s::timestamptz IS NULL OR ts > %s) ORDER BY ts LIMIT %s",
            (device_id, start, end, after, after, limit),
        ).fetchall()


def hourly_from_raw(conn: psycopg.Connection, device_id: str, start: datetime, end: datetime) -> list[Bucket]:
    """Hourly consumption from ``meter_consumption`` (migration 0002: resets and impossible jumps start a
    new series, whose first difference is unknown and counted as 0 here).

    Each reading's consumption depends only on the reading before it, never on ``start``, so the
    buckets of a range split at whole hours are the buckets of the whole range: the aggregate path
    relies on this.
    """
    rows = conn.execute(
        "SELECT date_trunc('hour', ts, 'UTC') AS bucket, sum(coalesce(consumption_l, 0)), count(*),"
        " (array_agg(register_l ORDER BY ts DESC))[1]"
        " FROM meter_consumption(%s, %s, %s) WHERE in_range GROUP BY 1 ORDER BY 1",
        (device_id, start, end),
    ).fetchall()
    return [Bucket(r[0], float(r[1]), int(r[2]), float(r[3])) for r in rows]


def hourly_from_aggregate(conn: psycopg.Connection, device_id: str, start: datetime, end: datetime) -> list[Bucket]:
    """The same buckets as ``hourly_from_raw``, with the settled whole hours read from ``readings_hourly``.

    An hour is read from the aggregate only if it is whole inside ``[start, end)`` and *settled*: at
    least ``HOURLY_REFRESH_WINDOW`` (15 days) older than the newest materialised hour. Ingest accepts
    device times up to 14 days late, and the refresh policy re-materialises every hour of its 15-day
    window that late data touched, so by then no write can change the hour any more and the policy has
    refreshed it after the last one. A younger hour may hold late readings the aggregate has not seen
    yet (an NB-IoT batch uploaded two hours late is the common case), so it is computed from raw rows,
    as are the partial hours at either end of the range. Measuring from the newest materialised hour
    rather than from ``now()`` keeps this true when the refresh job has stopped (or never runs, as on
    PGlite): nothing younger than 15 days before its last refresh is trusted.

    Within an hour, ``within_hour_l`` applies ``meter_consumption``'s series rule to consecutive readings
    (``meter_steps_l``, migration 0006); the step into the hour's first reading, from the last reading
    before it, is checked here by the same rule. Assumes the refresh job never stopped for longer than
    its window (hours it never refreshed after a late write would stay stale).
    """
    first_whole = _ceil_hour(start)
    row = conn.execute("SELECT max(bucket) FROM readings_hourly").fetchone()
    newest = row[0] if row else None
    if newest is None:
        return hourly_from_raw(conn, device_id, start, end)
    settled_before = newest + _HOUR - HOURLY_REFRESH_WINDOW
    last_whole = min(_floor_hour(end), settled_before)
    if first_whole >= last_whole:
        return hourly_from_raw(conn, device_id, start, end)
    head = hourly_from_raw(conn, device_id, start, first_whole) if start < first_whole else []
    tail = hourly_from_raw(conn, device_id, last_whole, end) if last_whole < end else []
    return [*head, *_aggregated_hours(conn, device_id, first_whole, last_whole), *tail]


def _aggregated_hours(conn: psycopg.Connection, device_id: str, start: datetime, end: datetime) -> list[Bucket]:
    """Whole hours ``[start, end)`` from ``readings_hourly``; the step into each hour's first reading is
    judged against the reading before it (the previous non-empty hour's last one, or for the first hour
    the last raw reading before ``start``) with ``meter_consumption``'s bound and types."""
    rows = conn.execute(
        "WITH hours AS ("
        " (SELECT NULL::timestamptz AS bucket, ts AS ts_first, register_l AS register_first, ts AS ts_last,"
        "  register_l AS register_last, 0::bigint AS samples, 0::double precision AS within_hour_l"
        "  FROM readings WHERE device_id = %(d)s AND ts < %(start)s ORDER BY ts DESC LIMIT 1)"
        " UNION ALL"
        " (SELECT bucket, ts_first, register_first, ts_last, register_last, samples, within_hour_l"
        "  FROM readings_hourly WHERE device_id = %(d)s AND bucket >= %(start)s AND bucket < %(end)s)"
        "), steps AS ("
        " SELECT bucket, samples, register_last, within_hour_l,"
        " register_first - lag(register_last) OVER w AS delta,"
        " extract(epoch FROM ts_first - lag(ts_last) OVER w) AS elapsed_s"
        " FROM hours WINDOW w AS (ORDER BY ts_first))"
        " SELECT bucket, CASE WHEN delta IS NULL OR delta < 0"
        " OR delta > 1.5::double precision * elapsed_s + 10.0::double precision THEN 0 ELSE delta END"
        " + within_hour_l, samples, register_last"
        " FROM steps WHERE bucket IS NOT NULL ORDER BY bucket",
        {"d": device_id, "start": start, "end": end},
    ).fetchall()
    return [Bucket(r[0], float(r[1]), int(r[2]), float(r[3])) for r in rows]


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + _HOUR


def daily(hourly: list[Bucket], conn: psycopg.Connection, timezone: str) -> list[Bucket]:
    """Roll hourly buckets up to local days of the household's ``timezone`` (the database knows the zones)."""
    if not hourly:
        return []
    rows = conn.execute(
        "SELECT date_trunc('day', b, %s) FROM unnest(%s::timestamptz[]) AS b",
        (timezone, [h.bucket for h in hourly]),
    ).fetchall()
    days: dict[datetime, Bucket] = {}
    for (day,), hour in zip(rows, hourly, strict=True):
        seen = days.get(day)
        days[day] = Bucket(
            day,
            (seen.consumption_l if seen else 0.0) + hour.consumption_l,
            (seen.samples if seen else 0) + hour.samples,
            hour.register_last,
        )
    return list(days.values())


def hour_of_day_band(
    conn: psycopg.Connection, hourly: list[Bucket], timezone: str
) -> list[tuple[int, float, float, float]]:
    """The learned normal band: per local hour of day, the 10th/50th/90th percentile of hourly use."""
    if not hourly:
        return []
    rows = conn.execute(
        "SELECT extract(hour FROM b AT TIME ZONE %s)::int FROM unnest(%s::timestamptz[]) AS b",
        (timezone, [h.bucket for h in hourly]),
    ).fetchall()
    by_hour: dict[int, list[float]] = {}
    for (hour,), bucket in zip(rows, hourly, strict=True):
        by_hour.setdefault(int(hour), []).append(bucket.consumption_l)
    band = []
    for hour in sorted(by_hour):
        p10, p50, p90 = np.percentile(np.asarray(by_hour[hour]), [10, 50, 90])
        band.append((hour, float(p10), float(p50), float(p90)))
    return band
