"""A meter's readings: raw pages, hourly/daily consumption, and the learned normal band per hour of day.

Consumption comes from the TimescaleDB continuous aggregate ``readings_hourly`` when the database runs
TimescaleDB (``storage.migrate.current_mode``), else from plain SQL; the response's ``source`` says
which. Water use reveals a resident's day, so every read is audited like personal data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

import psycopg
from fastapi import APIRouter, Query

from api.audit import Audit
from api.auth import Reader
from api.deps import Connection, Context
from api.problems import ProblemError
from api.routes.devices import device_or_404
from i18n import N_
from schemas.api import Page, ReadingBucket, ReadingPublic, ReadingSeries, UsageBandPoint
from storage import readings
from storage.migrate import StorageMode, current_mode

router = APIRouter(prefix="/devices/{device_id}", tags=["readings"])

MAX_RANGE = timedelta(days=400)


class Resolution(StrEnum):
    HOUR = "hour"
    DAY = "day"


def _range(
    context: Context, start: datetime | None, end: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    end = end or context.clock()
    start = start or end - default
    if start.tzinfo is None or end.tzinfo is None:
        raise ProblemError(422, N_("Invalid request"), N_("start and end need a UTC offset"))
    if not start < end or end - start > MAX_RANGE:
        raise ProblemError(422, N_("Invalid request"), N_("start must be before end, at most 400 days apart"))
    return start, end


def _timezone(conn: psycopg.Connection, household_id: str) -> str:
    row = conn.execute("SELECT timezone FROM households WHERE household_id = %s", (household_id,)).fetchone()
    return str(row[0]) if row else "UTC"


def _hourly(
    conn: psycopg.Connection, device_id: str, start: datetime, end: datetime
) -> tuple[str, list[readings.Bucket]]:
    if current_mode(conn) is StorageMode.TIMESCALEDB:
        return "readings_hourly", readings.hourly_from_aggregate(conn, device_id, start, end)
    return "readings", readings.hourly_from_raw(conn, device_id, start, end)


@router.get("/readings")
def list_readings(
    device_id: str,
    conn: Connection,
    principal: Reader,
    audit: Audit,
    context: Context,
    start: datetime | None = None,
    end: datetime | None = None,
    cursor: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Page[ReadingPublic]:
    """Raw readings in ``[start, end)`` (default: the last 24 h), oldest first; ``cursor`` is the last ``ts``."""
    device_or_404(conn, principal, device_id)
    start, end = _range(context, start, end, timedelta(hours=24))
    if cursor is not None and cursor.tzinfo is None:
        raise ProblemError(422, N_("Invalid request"), N_("cursor needs a UTC offset"))
    rows = readings.raw_page(conn, device_id, start, end, after=cursor, limit=limit)
    items = [ReadingPublic.model_validate(row) for row in rows]
    audit("view", "readings", device_id)
    return Page(items=items, next_cursor=items[-1].ts.isoformat() if len(items) == limit else None)


@router.get("/usage")
def usage(
    device_id: str,
    conn: Connection,
    principal: Reader,
    audit: Audit,
    context: Context,
    start: datetime | None = None,
    end: datetime | None = None,
    resolution: Resolution = Resolution.HOUR,
) -> ReadingSeries:
    """Litres used per hour or per local day in ``[start, end)`` (default: the last 7 days)."""
    device = device_or_404(conn, principal, device_id)
    start, end = _range(context, start, end, timedelta(days=7))
    source, hourly = _hourly(conn, device_id, start, end)
    buckets = (
        hourly if resolution is Resolution.HOUR else readings.daily(hourly, conn, _timezone(conn, device.household_id))
    )
    audit("view", "usage", device_id)
    return ReadingSeries(
        device_id=device_id,
        resolution=resolution.value,
        source=source,
        buckets=[
            ReadingBucket(
                bucket=b.bucket, consumption_l=b.consumption_l, samples=b.samples, register_last=b.register_last
            )
            for b in buckets
        ],
    )


@router.get("/usage/band")
def usage_band(
    device_id: str,
    conn: Connection,
    principal: Reader,
    audit: Audit,
    context: Context,
    end: datetime | None = None,
    days: Annotated[int, Query(ge=1, le=90)] = 28,
) -> list[UsageBandPoint]:
    """The normal band: per local hour of day, the 10th/50th/90th percentile of hourly use over ``days``."""
    device = device_or_404(conn, principal, device_id)
    start, end = _range(context, None, end, timedelta(days=days))
    _, hourly = _hourly(conn, device_id, start, end)
    band = readings.hour_of_day_band(conn, hourly, _timezone(conn, device.household_id))
    audit("view", "usage_band", device_id)
    return [UsageBandPoint(hour_of_day=h, p10_l=p10, p50_l=p50, p90_l=p90) for h, p10, p50, p90 in band]
