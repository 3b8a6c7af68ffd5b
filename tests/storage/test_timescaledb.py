"""carewatch on a real TimescaleDB: migrations, the write path into compressed chunks, the hourly aggregate.

Opt-in: runs only when ``CAREWATCH_TEST_TIMESCALEDB_URL`` names a server where ``CREATE EXTENSION
timescaledb`` works, and skips with that reason otherwise (the default run; CI has no TimescaleDB). Not
a ``services`` test: the fixtures cannot start a TimescaleDB in its place. ``scripts/timescaledb-pglite``
starts a stand-in (PGlite with TimescaleDB 2.23.0-dev, WASM) for developers.

Database: a fresh ``cw_ts_<pid>_<hex>`` per run, dropped afterwards, when the server gives one. A
single-database server (PGlite: every connection lands in the same database whatever its name) gets
the URL's database treated as disposable: every table, function, aggregate and type in its current
schema that no extension owns is dropped before the run. Such a server is also single-session, so
these tests never hold two connections at once.

Background jobs are run with ``CALL run_job`` and the aggregate refreshed by hand, so the tests do not
depend on background workers (PGlite has none).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from ingest.decode import DecodePolicy, decode
from schemas.intake import Accepted
from schemas.kinds import DeviceType
from schemas.records import DeviceInfo
from storage import readings as store
from storage.messages import prepare_connection, store_batch
from storage.migrate import HOURLY_REFRESH_WINDOW, StorageMode, current_mode, migrate
from tests.fixtures.fix_db import create_database, database_url_for, drop_database
from tests.storage import hourly_cases as cases

URL_ENV = "CAREWATCH_TEST_TIMESCALEDB_URL"
SERVER_URL = os.environ.get(URL_ENV, "")

pytestmark = [
    pytest.mark.timescaledb,
    pytest.mark.skipif(
        not SERVER_URL,
        reason=f"{URL_ENV} is not set: a TimescaleDB server to test against (scripts/timescaledb-pglite starts one)",
    ),
]

HYPERTABLES = ["events", "message_receipts", "readings", "rejects", "status_reports"]
NOW = datetime.now(UTC).replace(microsecond=0)
HOUSEHOLD = "hh-tsdb"
METERS = [DeviceInfo(f"tsdb-meter-{i}", DeviceType.WATER_METER, HOUSEHOLD, 900) for i in range(2)]
LATE_METER = "tsdb-late"
HISTORY_DAYS = 20
# Accept the whole history at "delivery" time: decoding is not what these tests are about.
POLICY = DecodePolicy(max_past=timedelta(days=HISTORY_DAYS + 1))


def _rows(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A database of this run alone: fresh if the server gives one, else the URL's own, emptied."""
    name = f"cw_ts_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        create_database(SERVER_URL, name)
    except psycopg.Error:
        name = ""  # no CREATE DATABASE right: fall back to the URL's database
    if name:
        fresh = database_url_for(SERVER_URL, name)
        if _rows(fresh, "SELECT current_database()") == [(name,)]:
            try:
                yield fresh
            finally:
                drop_database(SERVER_URL, name)
            return
        drop_database(SERVER_URL, name)  # a single-database server: the name was ignored
    _empty_current_schema(SERVER_URL)
    yield SERVER_URL


def _empty_current_schema(url: str) -> None:
    """Drop what earlier runs left in the current schema (not the extensions' objects)."""
    not_extension = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {}.oid AND d.deptype = 'e')"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP MATERIALIZED VIEW IF EXISTS readings_hourly CASCADE")
        for kind, query in (
            (
                "TABLE",
                "SELECT c.oid::regclass::text FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace"
                " AND c.relkind IN ('r', 'p') AND " + not_extension.format("c"),
            ),
            (
                "AGGREGATE",
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace"
                " AND p.prokind = 'a' AND " + not_extension.format("p"),
            ),
            (
                "ROUTINE",
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace"
                " AND p.prokind <> 'a' AND " + not_extension.format("p"),
            ),
            (
                "TYPE",
                "SELECT t.oid::regtype::text FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid"
                " WHERE t.typnamespace = current_schema()::regnamespace AND t.typtype IN ('c', 'd', 'e')"
                " AND (c.oid IS NULL OR c.relkind = 'c') AND " + not_extension.format("t"),
            ),
        ):
            for (name,) in conn.execute(query).fetchall():
                # regclass/regprocedure/regtype text is already quoted and qualified where needed.
                conn.execute(sql.SQL("DROP {} IF EXISTS {} CASCADE").format(sql.SQL(kind), sql.SQL(name)))


@pytest.fixture(scope="module")
def migrated(url: str) -> str:
    """The database migrated, with the household, the meters and ``hourly_cases``' readings."""
    assert migrate(url) is StorageMode.TIMESCALEDB
    with psycopg.connect(url, autocommit=True) as conn:
        cases.store(conn)
        conn.execute("INSERT INTO households (household_id, name) VALUES (%s, 'tsdb')", (HOUSEHOLD,))
        for device_id in [*(m.device_id for m in METERS), LATE_METER]:
            conn.execute(
                "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s)"
                " VALUES (%s, 'water_meter', %s, 900)",
                (device_id, HOUSEHOLD),
            )
    return url


def _refresh_job(url: str) -> tuple[int, str, str, timedelta]:
    rows = _rows(
        url,
        "SELECT job_id, config->>'start_offset', config->>'end_offset', schedule_interval"
        " FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_name = 'readings_hourly'",
    )
    assert len(rows) == 1, rows
    job_id, start_offset, end_offset, every = rows[0]
    return int(job_id), str(start_offset), str(end_offset), every


def test_migrate_enables_timescaledb_and_is_idempotent(url: str) -> None:
    assert migrate(url) is StorageMode.TIMESCALEDB
    jobs = "SELECT job_id, proc_name, hypertable_name FROM timescaledb_information.jobs WHERE job_id >= 1000 ORDER BY 1"
    first = _rows(url, jobs)
    assert migrate(url) is StorageMode.TIMESCALEDB  # a restart: nothing added, nothing replaced
    assert _rows(url, jobs) == first
    with psycopg.connect(url) as conn:
        assert current_mode(conn) is StorageMode.TIMESCALEDB

    hypertables = _rows(
        url, "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables ORDER BY 1"
    )
    assert hypertables == [(name, True) for name in HYPERTABLES]
    procs = sorted((proc, table) for _, proc, table in first)
    assert procs == sorted(
        [("policy_compression", table) for table in HYPERTABLES]
        + [("policy_retention", table) for table in ("message_receipts", "rejects", "status_reports")]
        + [("policy_refresh_continuous_aggregate", "readings_hourly")]
    )
    _, start_offset, end_offset, every = _refresh_job(url)
    assert (start_offset, end_offset, every) == ("15 days", "01:00:00", timedelta(minutes=15))
    columns = _rows(
        url,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = 'readings_hourly' ORDER BY ordinal_position",
    )
    assert [c for (c,) in columns][-4:] == ["samples", "ts_first", "ts_last", "within_hour_l"]


# The refresh policy an earlier release made (a 3-day window).
_EARLIER_POLICY = (
    "SELECT add_continuous_aggregate_policy('readings_hourly', start_offset => INTERVAL '3 days',"
    " end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes')"
)


def test_migrate_brings_an_older_aggregate_and_policy_up_to_date(migrated: str) -> None:
    url = migrated
    # A policy made by an earlier release (3-day window) is replaced, once.
    _rows(url, "SELECT remove_continuous_aggregate_policy('readings_hourly')")
    _rows(url, _EARLIER_POLICY)
    migrate(url)
    assert _refresh_job(url)[1] == "15 days"

    # The aggregate of an earlier release (no per-hour series rule) is rebuilt, and the readings already
    # stored (hourly_cases': months old, outside any refresh window) are materialised at once.
    _rows(url, "DROP MATERIALIZED VIEW readings_hourly")
    _rows(
        url,
        "CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous) AS"
        " SELECT device_id, time_bucket(INTERVAL '1 hour', ts) AS bucket,"
        " min(register_l) AS register_min, max(register_l) AS register_max,"
        " first(register_l, ts) AS register_first, last(register_l, ts) AS register_last,"
        " count(*) AS samples"
        " FROM readings GROUP BY device_id, time_bucket(INTERVAL '1 hour', ts) WITH NO DATA",
    )
    _rows(url, _EARLIER_POLICY)
    migrate(url)
    assert _refresh_job(url)[1] == "15 days"
    materialised = _rows(url, "SELECT count(*), sum(samples) FROM readings_hourly WHERE device_id = %s", (cases.METER,))
    stored = _rows(url, "SELECT count(*) FROM readings WHERE device_id = %s", (cases.METER,))
    assert materialised[0][0] > 100
    assert materialised[0][1] == stored[0][0]


def _history() -> list[Accepted]:
    """``HISTORY_DAYS`` of 15-minute readings per meter, each delivered 3 s after its device time; the
    uplinks with ``seq % 97 == 7`` are lost (they arrive late in a test)."""
    out = []
    for meter in METERS:
        lookup = {meter.device_id: meter}.get
        start = NOW - timedelta(days=HISTORY_DAYS)
        for seq in range(HISTORY_DAYS * 96):
            if seq % 97 == 7:
                continue
            out.append(_reading(meter, seq, start + seq * timedelta(minutes=15), 1000.0 + 2.5 * seq, lookup))
    return out


def _reading(meter: DeviceInfo, seq: int, ts: datetime, register: float, lookup: Any) -> Accepted:
    body = json.dumps({"ts": ts.isoformat(), "seq": seq, "register_l": register}).encode()
    outcome = decode(f"care/v1/dev/{meter.device_id}/telemetry", body, ts + timedelta(seconds=3), lookup, POLICY)
    assert isinstance(outcome, Accepted), outcome
    return outcome


def _store(url: str, items: list[Accepted]) -> tuple[int, int]:
    new = duplicates = 0
    with psycopg.connect(url) as conn:
        prepare_connection(conn)
        for i in range(0, len(items), 500):
            with conn.transaction():
                result = store_batch(conn, items[i : i + 500], [])
            new += len(result.new)
            duplicates += result.duplicates
    return new, duplicates


def _count(url: str, table: str) -> int:
    return int(_rows(url, f"SELECT count(*) FROM {table}")[0][0])  # table: one of ours


def test_store_batch_replays_and_late_data_land_once_in_compressed_chunks(migrated: str) -> None:
    url = migrated
    history = _history()
    assert _store(url, history) == (len(history), 0)
    before = {table: _count(url, table) for table in ("readings", "message_receipts")}
    assert _store(url, history) == (0, len(history))  # a replay of everything
    assert {table: _count(url, table) for table in before} == before

    for table in ("readings", "message_receipts"):
        _rows(url, f"SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('{table}') c")
    old = [item for item in history if item.message.ts < NOW - timedelta(days=HISTORY_DAYS - 5)]
    compressed = _rows(
        url,
        "SELECT bool_and(is_compressed) FROM timescaledb_information.chunks"
        " WHERE hypertable_name = 'readings' AND range_end <= %s",
        (NOW - timedelta(days=HISTORY_DAYS - 5),),
    )
    assert compressed == [(True,)]

    assert _store(url, old) == (0, len(old))  # late duplicates into compressed chunks
    meter = METERS[0]
    late_ts = NOW - timedelta(days=HISTORY_DAYS) + 7 * timedelta(minutes=15)  # seq 7 was lost
    late = _reading(meter, 7, late_ts, 1000.0 + 2.5 * 7, {meter.device_id: meter}.get)
    assert _store(url, [late, late]) == (1, 1)  # a late new reading, stored once
    assert _count(url, "readings") == before["readings"] + 1
    assert _count(url, "message_receipts") == before["message_receipts"] + 1

    # The same on the plain INSERT path (one row, no COPY): the stored register is kept.
    register = "SELECT register_l FROM readings WHERE device_id = %s AND ts = %s"
    kept = _rows(url, register, (meter.device_id, late_ts))
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(
            "INSERT INTO readings (device_id, ts, register_l, received_at) VALUES (%s, %s, 12345.0, now())"
            " ON CONFLICT DO NOTHING",
            (meter.device_id, late_ts),
        )
        assert cur.rowcount == 0
    assert _rows(
        url, "SELECT register_l FROM readings WHERE device_id = %s AND ts = %s", (meter.device_id, late_ts)
    ) == (kept)
    for table in ("readings", "message_receipts"):
        _rows(url, f"SELECT decompress_chunk(c, if_compressed => true) FROM show_chunks('{table}') c")


def test_a_late_reading_reaches_the_aggregate_through_the_refresh_policy(migrated: str) -> None:
    url = migrated
    hour = NOW.replace(minute=0, second=0) - timedelta(days=5)  # 5 days late: ingest accepts up to 14
    insert = "INSERT INTO readings (device_id, ts, register_l, received_at) VALUES (%s, %s, %s, now())"
    with psycopg.connect(url, autocommit=True) as conn:
        for k in range(4):
            conn.execute(insert, (LATE_METER, hour + k * timedelta(minutes=15), 100.0 + k))
    job_id = _refresh_job(url)[0]
    _rows(url, "CALL run_job(%s)", (job_id,))
    _rows(url, insert, (LATE_METER, hour + timedelta(minutes=7), 100.5))
    _rows(url, "CALL run_job(%s)", (job_id,))
    assert _rows(
        url, "SELECT samples FROM readings_hourly WHERE device_id = %s AND bucket = %s", (LATE_METER, hour)
    ) == [(5,)]


@pytest.mark.parametrize(("start", "end"), cases.RANGES)
def test_hourly_usage_from_the_aggregate_equals_the_raw_path(migrated: str, start: datetime, end: datetime) -> None:
    """Regression cases (first TimescaleDB run): an impossible jump counted from the aggregate, a reset
    inside an hour counted as 0, and the partial first hour of a range starting mid-hour dropped."""
    url = migrated
    _rows(url, "CALL refresh_continuous_aggregate('readings_hourly', NULL, NULL)")
    newest = _rows(url, "SELECT max(bucket) FROM readings_hourly")[0][0]
    # Some of hourly_cases' hours are settled, so the aggregate really answers for them.
    assert newest + timedelta(hours=1) - HOURLY_REFRESH_WINDOW > cases.T0 + timedelta(days=1)
    with psycopg.connect(url) as conn:
        raw = store.hourly_from_raw(conn, cases.METER, start, end)
        via_aggregate = store.hourly_from_aggregate(conn, cases.METER, start, end)
        assert cases.comparable(via_aggregate) == cases.comparable(raw)
        days_raw = store.daily(raw, conn, "Europe/Berlin")
        assert cases.comparable(store.daily(via_aggregate, conn, "Europe/Berlin")) == cases.comparable(days_raw)
