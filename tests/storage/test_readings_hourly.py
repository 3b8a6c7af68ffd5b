"""The hourly aggregate path answers exactly like the raw path, checked on plain PostgreSQL.

``readings_hourly`` is built here as an ordinary table with the continuous aggregate's columns (the
same expressions, with ``date_trunc`` and ordered ``array_agg`` standing in for TimescaleDB's
``time_bucket``, ``first`` and ``last``), so the merging of aggregate hours, raw edge hours and the
step between them runs on every test run; ``test_timescaledb.py`` repeats the comparison on the real
continuous aggregate when a TimescaleDB server is configured.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import psycopg
import pytest

from storage import readings as store
from tests.storage import hourly_cases as cases

_STAND_IN = (
    "CREATE TABLE readings_hourly AS"
    " SELECT device_id, date_trunc('hour', ts, 'UTC') AS bucket,"
    " min(register_l) AS register_min, max(register_l) AS register_max,"
    " (array_agg(register_l ORDER BY ts))[1] AS register_first,"
    " (array_agg(register_l ORDER BY ts DESC))[1] AS register_last,"
    " count(*) AS samples, min(ts) AS ts_first, max(ts) AS ts_last,"
    " meter_steps_l(ts, register_l ORDER BY ts) AS within_hour_l"
    " FROM readings GROUP BY 1, 2"
)


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        cases.store(connection)
        connection.execute(_STAND_IN)
        yield connection


@pytest.mark.parametrize(("start", "end"), cases.RANGES)
def test_aggregate_path_equals_raw_path(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    raw = store.hourly_from_raw(conn, cases.METER, start, end)
    via_aggregate = store.hourly_from_aggregate(conn, cases.METER, start, end)
    assert cases.comparable(via_aggregate) == cases.comparable(raw)
    days_raw = store.daily(raw, conn, "Europe/Berlin")
    days_aggregate = store.daily(via_aggregate, conn, "Europe/Berlin")
    assert cases.comparable(days_aggregate) == cases.comparable(days_raw)


def test_the_cases_exercise_every_rule(conn: psycopg.Connection) -> None:
    """The data really has resets, impossible jumps, the exact bound and an empty stretch."""
    hours = {b.bucket: b for b in store.hourly_from_raw(conn, cases.METER, cases.T0, cases.T0 + timedelta(days=2))}
    at = {offset: hours[cases.T0 + offset * cases.HOUR].consumption_l for offset in (5, 8, 10, 12, 20, 22, 23, 24)}
    # The impossible jumps (hours 8 and 10) and the reset at an hour's start (12) count 0, plus normal use.
    assert max(at[8], at[10], at[12]) < 20
    assert at[5] > 0  # the readings after the reset inside hour 5 still count
    assert at[20] > 5_000  # a large step after the empty hours is possible, so it counts
    assert 1_360 <= at[22] < 1_360 + 20  # exactly the bound counts, just over it does not
    assert 1_360 <= at[23] < 1_360 + 20  # the same across an hour boundary
    assert at[24] < 20
    assert not any(cases.T0 + h * cases.HOUR in hours for h in range(15, 20))


def test_settled_hours_come_from_the_aggregate_and_younger_ones_from_raw(conn: psycopg.Connection) -> None:
    settled = cases.SETTLED_BEFORE - 2 * cases.HOUR
    unsettled = cases.SETTLED_BEFORE + 2 * cases.HOUR
    start, end = settled - cases.HOUR, unsettled + cases.HOUR
    before = {b.bucket: b.consumption_l for b in store.hourly_from_aggregate(conn, cases.METER, start, end)}
    with conn.transaction(force_rollback=True):
        conn.execute(
            "UPDATE readings_hourly SET within_hour_l = within_hour_l + 1000"
            " WHERE device_id = %s AND bucket IN (%s, %s)",
            (cases.METER, settled, unsettled),
        )
        after = {b.bucket: b.consumption_l for b in store.hourly_from_aggregate(conn, cases.METER, start, end)}
    assert after[settled] == before[settled] + 1000
    assert after[unsettled] == before[unsettled]


def test_an_empty_aggregate_means_raw_rows_only(conn: psycopg.Connection) -> None:
    start, end = cases.T0, cases.T0 + timedelta(days=1)
    with conn.transaction(force_rollback=True):
        conn.execute("DELETE FROM readings_hourly")
        assert store.hourly_from_aggregate(conn, cases.METER, start, end) == store.hourly_from_raw(
            conn, cases.METER, start, end
        )
