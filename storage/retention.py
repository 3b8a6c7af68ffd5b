"""How long raw device data is kept: TimescaleDB retention policies, or deletes on plain PostgreSQL.

Raw data is personal data (a home's water use hour by hour tells when someone sleeps, leaves, bathes),
so it is kept only as long as configured (PIPL/GDPR storage limitation), then removed:

========================  ============  ==========================================================
table                     time column   kept for
========================  ============  ==========================================================
readings                  ts            ``raw``: meter registers
events                    ts            ``raw``: alarms, button presses and their notes
status_reports            ts            ``raw``: online/battery/signal reports
message_receipts          ts            ``raw``: the ingest's idempotency keys
rejects                   received_at   ``rejects``: refused messages kept for inspection
readings_hourly           bucket        ``raw`` (TimescaleDB only: the continuous aggregate of readings)
========================  ============  ==========================================================

Alerts, their timelines and the audit log are not raw data: they stay (statistics, accountability) and
lose their personal fields only when a household is erased (``storage.erasure``).

With TimescaleDB, each hypertable (and the aggregate) gets a retention policy with the configured
interval (``apply_policies``; a policy with another interval is replaced), run by TimescaleDB's job
scheduler; it drops whole chunks, so data lives up to one chunk interval (7 or 30 days) past its time.
On plain PostgreSQL nothing removes rows by itself, so ``carewatch run`` deletes expired rows
periodically (``delete_expired`` per chunk of devices: each statement is an index range scan of the
tables' ``(device_id, ts ...)`` primary keys, and each chunk is its own short transaction, owned by the
caller). ``carewatch db retention`` does either once, at once.

Functions take a connection and never commit: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

# Raw tables keyed by (device_id, <time column>, ...): deletes go by device through the primary key.
RAW_TABLES: tuple[str, ...] = ("readings", "events", "status_reports", "message_receipts")
REJECTS = "rejects"
HOURLY_AGGREGATE = "readings_hourly"


@dataclass(frozen=True, slots=True)
class Retention:
    raw: timedelta
    rejects: timedelta

    def keep(self, table: str) -> timedelta:
        return self.rejects if table == REJECTS else self.raw


def hypertables(conn: psycopg.Connection) -> set[str]:
    """Names of the hypertables in the current schema; empty on plain PostgreSQL."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return set()
    rows = conn.execute(
        "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_schema = current_schema()"
    ).fetchall()
    return {str(row[0]) for row in rows}


def _policy_interval(conn: psycopg.Connection, relation: str) -> timedelta | None:
    row = conn.execute(
        "SELECT (config->>'drop_after')::interval FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_retention' AND hypertable_name = %s",
        (relation,),
    ).fetchone()
    return row[0] if row is not None else None


def _has_aggregate(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_name = %s", (HOURLY_AGGREGATE,)
    ).fetchone()
    return row is not None


def apply_policies(conn: psycopg.Connection, retention: Retention) -> list[str]:
    """TimescaleDB: give every raw hypertable (and the hourly aggregate) a retention policy with the
    configured interval; returns the relations whose policy was added or replaced. Nothing on plain
    PostgreSQL."""
    tables = hypertables(conn)
    targets = [(table, retention.keep(table)) for table in (*RAW_TABLES, REJECTS) if table in tables]
    if tables and _has_aggregate(conn):
        targets.append((HOURLY_AGGREGATE, retention.raw))
    changed = []
    for relation, keep in targets:
        current = _policy_interval(conn, relation)
        if current == keep:
            continue
        if current is not None:
            conn.execute("SELECT remove_retention_policy(%s::regclass)", (relation,))
        conn.execute("SELECT add_retention_policy(%s::regclass, drop_after => %s::interval)", (relation, keep))
        changed.append(relation)
    return changed


def drop_expired_chunks(conn: psycopg.Connection, retention: Retention) -> dict[str, int]:
    """TimescaleDB: what the policies do, now: drop every chunk older than its relation's interval.
    Returns the number of chunks dropped per relation."""
    tables = hypertables(conn)
    targets = [(table, retention.keep(table)) for table in (*RAW_TABLES, REJECTS) if table in tables]
    if tables and _has_aggregate(conn):
        targets.append((HOURLY_AGGREGATE, retention.raw))
    dropped = {}
    for relation, keep in targets:
        rows = conn.execute("SELECT drop_chunks(%s::regclass, older_than => %s::interval)", (relation, keep)).fetchall()
        dropped[relation] = len(rows)
    return dropped


def device_ids(conn: psycopg.Connection) -> list[str]:
    """Every device that ever existed (devices are decommissioned, never deleted), in id order."""
    return [str(row[0]) for row in conn.execute("SELECT device_id FROM devices ORDER BY device_id")]


def delete_expired(conn: psycopg.Connection, table: str, devices: list[str], before: datetime) -> int:
    """Delete the rows of ``table`` (one of ``RAW_TABLES``) of ``devices`` older than ``before``."""
    if table not in RAW_TABLES:
        raise ValueError(f"{table} is not a raw table")
    statement = sql.SQL("DELETE FROM {} WHERE device_id = ANY(%s) AND ts < %s").format(sql.Identifier(table))
    return conn.execute(statement, (devices, before)).rowcount


def delete_expired_rejects(conn: psycopg.Connection, before: datetime, *, limit: int = 10_000) -> int:
    """Delete up to ``limit`` rejects received before ``before`` (call until it returns less)."""
    return conn.execute(
        "DELETE FROM rejects WHERE (reject_id, received_at) IN"
        " (SELECT reject_id, received_at FROM rejects WHERE received_at < %s LIMIT %s)",
        (before, limit),
    ).rowcount
