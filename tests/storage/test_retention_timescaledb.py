"""Retention on TimescaleDB: policies with the configured intervals on every raw hypertable and on the
hourly aggregate, replaced when the configuration changes, and expired chunks dropped on demand.

Opt-in like ``test_timescaledb.py``: runs when ``CAREWATCH_TEST_TIMESCALEDB_URL`` names a TimescaleDB
server (``scripts/timescaledb-pglite`` starts a stand-in), and skips with that reason otherwise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from carewatch.retention import enforce
from storage import erasure, migrate
from storage.migrate import StorageMode
from storage.retention import HOURLY_AGGREGATE, RAW_TABLES, REJECTS, Retention
from tests.fixtures.fix_db import create_database, database_url_for, drop_database

URL_ENV = "CAREWATCH_TEST_TIMESCALEDB_URL"
SERVER_URL = os.environ.get(URL_ENV, "")

pytestmark = [
    pytest.mark.timescaledb,
    pytest.mark.skipif(
        not SERVER_URL,
        reason=f"{URL_ENV} is not set: a TimescaleDB server to test against (scripts/timescaledb-pglite starts one)",
    ),
]

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    name = f"cw_ts_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        create_database(SERVER_URL, name)
    except psycopg.Error:
        name = ""
    target = database_url_for(SERVER_URL, name) if name else SERVER_URL
    if not name:  # one database only (the PGlite stand-in): empty it
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    assert migrate(target) is StorageMode.TIMESCALEDB
    try:
        yield target
    finally:
        if name:
            drop_database(SERVER_URL, name)


def _policies(url: str) -> dict[str, timedelta]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT hypertable_name, (config->>'drop_after')::interval FROM timescaledb_information.jobs"
            " WHERE proc_name = 'policy_retention'"
        ).fetchall()
    return {str(name): interval for name, interval in rows}


def test_policies_follow_the_configuration(url: str) -> None:
    first = Retention(raw=timedelta(days=200), rejects=timedelta(days=30))
    report = enforce(url, first, NOW, drop_now=False)
    assert report.mode is StorageMode.TIMESCALEDB
    expected = {**dict.fromkeys(RAW_TABLES, first.raw), REJECTS: first.rejects, HOURLY_AGGREGATE: first.raw}
    assert _policies(url) == expected
    assert enforce(url, first, NOW, drop_now=False).policies_changed == []  # nothing to change

    second = Retention(raw=timedelta(days=100), rejects=timedelta(days=30))
    assert sorted(enforce(url, second, NOW, drop_now=False).policies_changed) == sorted([*RAW_TABLES, HOURLY_AGGREGATE])
    assert _policies(url)["readings"] == timedelta(days=100)


def test_expired_chunks_are_dropped_on_demand(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO households (household_id, name) VALUES ('hh-ts-ret', 'x') ON CONFLICT DO NOTHING")
        conn.execute(
            "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s)"
            " VALUES ('ts-ret-meter', 'water_meter', 'hh-ts-ret', 900) ON CONFLICT DO NOTHING"
        )
        # The stand-in serves one database whatever the name: forget an earlier run's rows.
        conn.execute("DELETE FROM readings WHERE device_id = 'ts-ret-meter'")
        for age in (timedelta(days=300), timedelta(days=2)):
            ts = NOW - age
            conn.execute("INSERT INTO readings VALUES ('ts-ret-meter', %s, 1.0, %s)", (ts, ts))
    report = enforce(url, Retention(raw=timedelta(days=100), rejects=timedelta(days=30)), NOW, drop_now=True)
    assert report.chunks_dropped["readings"] >= 1
    with psycopg.connect(url) as conn:
        left = conn.execute("SELECT count(*) FROM readings WHERE device_id = 'ts-ret-meter'").fetchone()
    assert left == (1,)


def test_an_erased_households_hours_leave_the_hourly_aggregate(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO households (household_id, name) VALUES ('hh-ts-erase', 'x') ON CONFLICT DO NOTHING")
        conn.execute(
            "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s)"
            " VALUES ('ts-erase-meter', 'water_meter', 'hh-ts-erase', 900) ON CONFLICT DO NOTHING"
        )
        conn.execute("DELETE FROM readings WHERE device_id = 'ts-erase-meter'")
        for hours in range(48, 40, -1):
            ts = NOW - timedelta(days=20, hours=hours)
            conn.execute("INSERT INTO readings VALUES ('ts-erase-meter', %s, %s, %s)", (ts, 100.0 - hours, ts))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CALL refresh_continuous_aggregate('readings_hourly', NULL, NULL)")
        assert _hours(conn) > 0
        with conn.transaction():
            done = erasure.erase_household(conn, "hh-ts-erase", NOW)
        assert done.readings_span is not None
        assert erasure.refresh_hourly(conn, done.readings_span)
        assert _hours(conn) == 0


def _hours(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM readings_hourly WHERE device_id = 'ts-erase-meter'").fetchone()
    assert row is not None
    return int(row[0])
