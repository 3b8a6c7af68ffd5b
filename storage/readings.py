"""Meter readings for the API: raw pages and hourly/daily consumption, from TimescaleDB when it is there.

Consumption is computed from the cumulative register: the difference between consecutive readings,
attributed to the bucket of the later one, by ingest's ``meter_consumption`` SQL function (migration
0002): a register that goes backwards or jumps impossibly far starts a new series and counts as 0 rather
than as a huge negative or positive use. Buckets without any reading are absent, not
zero: "no data" (an NB-IoT meter that has not uploaded yet) must not look like "no water used".

Two sources, chosen by the caller from ``storage.migrate.current_mode`` and reported in the response:
- ``readings``: plain SQL over the ``readings`` table (primary key ``(device_id, ts)`` makes each query
  one index range scan per device);
- ``readings_hourly``: the TimescaleDB continuous aggregate (last register per device-hour). Hours
  after its newest materialised bucket are filled from the raw table, so the latest hour is never missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row


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
    new series, whose first difference is unknown and counted as 0 here)."""
    rows = conn.execute(
        "SELECT date_trunc('hour', ts) AS bucket, sum(coalesce(consumption_l, 0)), count(*),"
        " (array_agg(register_l ORDER BY ts DESC))[1]"
        " FROM meter_consumption(%s, %s, %s) WHERE in_range GROUP BY 1 ORDER BY 1",
        (device_id, start, end),
    ).fetchall()
    return [Bucket(r[0], float(r[1]), int(r[2]), float(r[3])) for r in rows]


def hourly_from_aggregate(conn: psycopg.Connection, device_id: str, start: datetime, end: datetime) -> list[Bucket]:
    """Hourly consumption from ``readings_hourly``; the hours it has not materialised yet from raw rows."""
    rows = conn.execute(
        "WITH hours AS ("
        " (SELECT bucket, register_first, register_last, samples FROM readings_hourly"
        "  WHERE device_id = %(d)s AND bucket < %(start)s ORDER BY bucket DESC LIMIT 1)"
        " UNION ALL (SELECT bucket, register_first, register_last, samples FROM readings_hourly"
        "  WHERE device_id = %(d)s AND bucket >= %(start)s AND bucket < %(end)s))"
        " SELECT bucket, register_first, register_last, samples,"
        " lag(register_last) OVER (ORDER BY bucket) FROM hours ORDER BY bucket",
        {"d": device_id, "start": start, "end": end},
    ).fetchall()
    buckets: list[Bucket] = []
    for bucket, first, last, samples, previous in rows:
        if bucket < start:
            continue
        used = last - (previous if previous is not None else first)
        if used < 0:  # a reset inside or before this hour: count only what followed the reset here
            used = max(last - first, 0.0)
        buckets.append(Bucket(bucket, float(used), int(samples), float(last)))
    materialised_until = buckets[-1].bucket + timedelta(hours=1) if buckets else start
    if materialised_until < end:
        buckets.extend(hourly_from_raw(conn, device_id, materialised_until, end))
    return buckets


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
