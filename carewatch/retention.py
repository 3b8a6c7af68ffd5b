"""Enforcing the retention of raw data (``storage.retention``): once, and on a schedule.

``carewatch db retention`` calls ``enforce(drop_now=True)``: TimescaleDB policies set to the configured
intervals and expired chunks dropped at once; on plain PostgreSQL, expired rows deleted. ``carewatch
run`` runs a ``RetentionJob``: shortly after start and then every ``retention_every_s`` it sets the
policies (TimescaleDB then drops chunks by itself) or deletes expired rows, a chunk of devices per
short transaction so ingest never waits behind one long delete.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from carewatch.settings import Settings
from storage import retention as store
from storage.migrate import StorageMode

log = logging.getLogger(__name__)

DEVICES_PER_TRANSACTION = 500
FIRST_PASS_AFTER_S = 10.0


@dataclass(frozen=True, slots=True)
class RetentionReport:
    mode: StorageMode
    policies_changed: list[str] = field(default_factory=list)
    chunks_dropped: dict[str, int] = field(default_factory=dict)
    rows_deleted: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"storage mode: {self.mode.value}"]
        out += [f"retention policy set: {relation}" for relation in self.policies_changed]
        out += [f"chunks dropped from {relation}: {count}" for relation, count in self.chunks_dropped.items()]
        out += [f"rows deleted from {table}: {count}" for table, count in self.rows_deleted.items()]
        return out


def retention_from_settings(settings: Settings) -> store.Retention:
    return store.Retention(
        raw=timedelta(days=settings.retention_raw_days), rejects=timedelta(days=settings.retention_rejects_days)
    )


def enforce(conninfo: str, retention: store.Retention, now: datetime, *, drop_now: bool) -> RetentionReport:
    """Apply ``retention`` (see the module docstring); ``drop_now`` also drops expired TimescaleDB chunks
    instead of leaving them to the job scheduler."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        hypertables = store.hypertables(conn)
        mode = StorageMode.TIMESCALEDB if hypertables else StorageMode.POSTGRESQL
        changed = store.apply_policies(conn, retention)
        dropped = store.drop_expired_chunks(conn, retention) if drop_now and hypertables else {}
        deleted: dict[str, int] = {}
        devices = store.device_ids(conn)
        for table in store.RAW_TABLES:
            if table in hypertables:
                continue
            before = now - retention.keep(table)
            deleted[table] = 0
            for start in range(0, len(devices), DEVICES_PER_TRANSACTION):
                with conn.transaction():
                    chunk = devices[start : start + DEVICES_PER_TRANSACTION]
                    deleted[table] += store.delete_expired(conn, table, chunk, before)
        if store.REJECTS not in hypertables:
            deleted[store.REJECTS] = 0
            while True:
                with conn.transaction():
                    count = store.delete_expired_rejects(conn, now - retention.rejects)
                deleted[store.REJECTS] += count
                if count < 10_000:
                    break
    report = RetentionReport(mode=mode, policies_changed=changed, chunks_dropped=dropped, rows_deleted=deleted)
    log.info(
        "retention (%s): policies set %s, chunks dropped %s, rows deleted %s", mode.value, changed, dropped, deleted
    )
    return report


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RetentionJob:
    """A thread that enforces retention every ``every_s`` (first after ``first_after_s``) until stopped."""

    def __init__(
        self,
        *,
        conninfo: str,
        retention: store.Retention,
        every_s: float,
        first_after_s: float = FIRST_PASS_AFTER_S,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._conninfo = conninfo
        self._retention = retention
        self._every_s = every_s
        self._first_after_s = first_after_s
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self._first_after_s
        while not self._stopping.wait(wait):
            try:
                enforce(self._conninfo, self._retention, self._clock(), drop_now=False)
                self.passes += 1
            except psycopg.Error as exc:
                log.warning("retention pass failed (%s); next try in %.0f s", type(exc).__name__, self._every_s)
            wait = self._every_s

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
