"""Versioned migrations, and the TimescaleDB layer when the extension is available.

Migrations are the numbered ``migrations/NNNN_name.sql`` files, each applied once in its own
transaction and recorded in ``schema_migrations``. A session-level advisory lock serialises concurrent
migrators (several workers starting at once).

TimescaleDB is optional: if the extension can be created, the time-series tables become hypertables
with compression, retention and a continuous hourly aggregate of meter registers; otherwise the same
schema runs on plain PostgreSQL. Which mode is in use is returned and logged, never assumed.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from enum import StrEnum
from importlib import resources

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

log = logging.getLogger(__name__)

_LOCK_KEY = 0x6361726577  # "carew"

# The continuous aggregate readings_hourly is refreshed every 15 minutes over [now - 15 days, now - 1 h].
# The window reaches back past the 14 days of lateness ingest accepts (DecodePolicy.max_past), and
# storage.readings trusts only hours older than it (they can no longer change).
HOURLY_REFRESH_WINDOW = timedelta(days=15)
_HOURLY_REFRESH_LAG = timedelta(hours=1)
_HOURLY_REFRESH_EVERY = timedelta(minutes=15)


class StorageMode(StrEnum):
    TIMESCALEDB = "timescaledb"
    POSTGRESQL = "postgresql"


# (table, time column, chunk interval, compress after, segment by, order by, retention or None).
# Segment by + order by cover each table's unique key, so TimescaleDB can check uniqueness (late data,
# replays) inside compressed chunks cheaply. Ingest accepts device time up to 14 days late (DecodePolicy
# max_past), so late batches can land in compressed chunks of the tables compressed after 7 days:
# TimescaleDB (2.11 or later) decompresses the matching segment to insert or to find the duplicate.
_HYPERTABLES: tuple[tuple[str, str, str, str, str, str, str | None], ...] = (
    ("readings", "ts", "7 days", "14 days", "device_id", "ts DESC", None),
    ("events", "ts", "30 days", "30 days", "device_id", "ts DESC, seq", None),
    ("status_reports", "ts", "7 days", "7 days", "device_id", "ts DESC, seq", "400 days"),
    ("message_receipts", "ts", "7 days", "7 days", "device_id", "ts DESC, seq", "400 days"),
    ("rejects", "received_at", "7 days", "7 days", "reason", "received_at DESC, reject_id", "90 days"),
)


def _migration_files() -> list[tuple[int, str, str]]:
    folder = resources.files("storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def ensure_database(conninfo: str) -> bool:
    """Create the database ``conninfo`` names if the server has none by that name (a new operator's
    first ``carewatch db migrate``); True if it was created. Needs the CREATEDB privilege then."""
    try:
        psycopg.connect(conninfo, connect_timeout=10).close()
        return False
    except psycopg.OperationalError as exc:
        if getattr(exc, "sqlstate", None) != "3D000" and "does not exist" not in str(exc):
            raise
    dbname = conninfo_to_dict(conninfo).get("dbname")
    if not dbname:
        raise ValueError("the database URL names no database")
    # The server's maintenance database, with the same host, port, user and password.
    with psycopg.connect(make_conninfo(conninfo, dbname="postgres"), autocommit=True, connect_timeout=10) as admin:
        try:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(str(dbname))))
        except psycopg.errors.DuplicateDatabase:
            return False  # another migrator created it a moment ago
    log.info("created database %s", dbname)
    return True


def migrate(conninfo: str, *, use_timescaledb: bool = True, create_database: bool = False) -> StorageMode:
    """Bring the database at ``conninfo`` to the newest schema; return the storage mode in use.

    ``create_database``: create the database first if the server does not have it."""
    if create_database:
        ensure_database(conninfo)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            _apply_migrations(conn)
            mode = _apply_timescaledb(conn) if use_timescaledb else StorageMode.POSTGRESQL
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    log.info("storage mode: %s", mode.value)
    return mode


def _apply_migrations(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    for version, name, text in _migration_files():
        if version in applied:
            continue
        with conn.transaction():
            conn.execute(text.encode())
            conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
        log.info("applied migration %s", name)


def timescaledb_available(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return row is not None


def current_mode(conn: psycopg.Connection) -> StorageMode:
    row = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
    return StorageMode.TIMESCALEDB if row else StorageMode.POSTGRESQL


def _apply_timescaledb(conn: psycopg.Connection) -> StorageMode:
    if not timescaledb_available(conn):
        log.info("TimescaleDB extension not available: running on plain PostgreSQL")
        return StorageMode.POSTGRESQL
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except psycopg.Error as exc:
        # Typically the library is installed but not in shared_preload_libraries.
        log.warning("TimescaleDB is installed but cannot be enabled (%s): running on plain PostgreSQL", exc)
        return StorageMode.POSTGRESQL
    for table, time_column, chunk, compress_after, segment_by, order_by, retention in _HYPERTABLES:
        _make_hypertable(conn, table, time_column, chunk, compress_after, segment_by, order_by, retention)
    _make_hourly_aggregate(conn)
    return StorageMode.TIMESCALEDB


def _make_hypertable(
    conn: psycopg.Connection,
    table: str,
    time_column: str,
    chunk: str,
    compress_after: str,
    segment_by: str,
    order_by: str,
    retention: str | None,
) -> None:
    conn.execute(
        "SELECT create_hypertable(%s::regclass, %s::name, chunk_time_interval => %s::interval,"
        " if_not_exists => true, migrate_data => true)",
        (table, time_column, chunk),
    )
    compressed = conn.execute(
        "SELECT compression_enabled FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
        (table,),
    ).fetchone()
    if not (compressed and compressed[0]):
        conn.execute(
            sql.SQL(
                "ALTER TABLE {} SET (timescaledb.compress, timescaledb.compress_segmentby = {},"
                " timescaledb.compress_orderby = {})"
            ).format(
                sql.Identifier(table),
                sql.Literal(segment_by),
                sql.Literal(order_by),
            )
        )
    conn.execute(
        "SELECT add_compression_policy(%s::regclass, %s::interval, if_not_exists => true)",
        (table, compress_after),
    )
    if retention is not None:
        conn.execute(
            "SELECT add_retention_policy(%s::regclass, %s::interval, if_not_exists => true)",
            (table, retention),
        )


def _make_hourly_aggregate(conn: psycopg.Connection) -> None:
    # Continuous aggregates cannot be created inside a transaction block: conn is autocommit.
    exists = conn.execute(
        "SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_name = 'readings_hourly'"
    ).fetchone()
    if exists and not _has_column(conn, "readings_hourly", "within_hour_l"):
        # Created before migration 0006: without the per-hour series rule it cannot answer like the raw
        # path (storage/readings.py). It holds nothing but derived data: rebuild it (its policy goes too).
        log.info("rebuilding readings_hourly with the columns of migration 0006")
        conn.execute("DROP MATERIALIZED VIEW readings_hourly")
        exists = None
    if not exists:
        conn.execute(
            "CREATE MATERIALIZED VIEW readings_hourly WITH (timescaledb.continuous) AS"
            " SELECT device_id, time_bucket(INTERVAL '1 hour', ts) AS bucket,"
            " min(register_l) AS register_min, max(register_l) AS register_max,"
            " first(register_l, ts) AS register_first, last(register_l, ts) AS register_last,"
            " count(*) AS samples, min(ts) AS ts_first, max(ts) AS ts_last,"
            " meter_steps_l(ts, register_l ORDER BY ts) AS within_hour_l"
            " FROM readings GROUP BY device_id, time_bucket(INTERVAL '1 hour', ts) WITH NO DATA"
        )
        # The policy only ever refreshes its window: history older than that (kept from a database that
        # ran on plain PostgreSQL, or a rebuilt view) is materialised once here or never. A one-off cost.
        conn.execute("CALL refresh_continuous_aggregate('readings_hourly', NULL, NULL)")
    _set_hourly_refresh_policy(conn)


def _set_hourly_refresh_policy(conn: psycopg.Connection) -> None:
    """Add the refresh policy, or bring one created with other settings (3 days before) to these."""
    # The refresh window must reach back past the oldest device time ingest accepts (max_past, 14 days):
    # late readings invalidate hours, and only invalidated hours inside the window are re-materialised, so
    # a shorter window would leave those hours of readings_hourly stale for good.
    current = conn.execute(
        "SELECT (config->>'start_offset')::interval = %s AND (config->>'end_offset')::interval = %s"
        " AND schedule_interval = %s FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_name = 'readings_hourly'",
        (HOURLY_REFRESH_WINDOW, _HOURLY_REFRESH_LAG, _HOURLY_REFRESH_EVERY),
    ).fetchone()
    if current is not None and current[0]:
        return
    if current is not None:
        log.info("replacing the refresh policy of readings_hourly (window now %s)", HOURLY_REFRESH_WINDOW)
        conn.execute("SELECT remove_continuous_aggregate_policy('readings_hourly')")
    conn.execute(
        "SELECT add_continuous_aggregate_policy('readings_hourly',"
        " start_offset => %s::interval, end_offset => %s::interval, schedule_interval => %s::interval)",
        (HOURLY_REFRESH_WINDOW, _HOURLY_REFRESH_LAG, _HOURLY_REFRESH_EVERY),
    )


def _has_column(conn: psycopg.Connection, relation: str, column: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = %s AND column_name = %s",
        (relation, column),
    ).fetchone()
    return row is not None
