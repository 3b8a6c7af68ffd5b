"""Liveness and readiness.

``/healthz`` says the process serves requests. ``/readyz`` says it can do its job: the database answers,
the dispatcher is not falling behind (pending notifications overdue by more than ``overdue_after``), and
whatever the runtime adds through ``create_app(readiness_checks=...)`` (broker connected, ingest backlog).
Each check is a callable returning a ``ReadyCheck``; a check that raises counts as failed, so a broken
dependency makes the probe say 503 rather than crash it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from schemas.api import Readiness, ReadyCheck

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], ReadyCheck]


def database_check(pool: ConnectionPool) -> ReadinessCheck:
    def database() -> ReadyCheck:  # the function's name names the check when it raises (run_checks)
        with pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        return ReadyCheck(name="database", ok=True, detail="reachable")

    return database


def dispatcher_backlog_check(
    pool: ConnectionPool,
    clock: Callable[[], datetime],
    *,
    overdue_after: timedelta = timedelta(seconds=60),
    max_overdue: int = 50,
) -> ReadinessCheck:
    def dispatcher_backlog() -> ReadyCheck:
        with pool.connection(timeout=2) as conn:
            row = conn.execute(
                "SELECT count(*) FROM notifications WHERE status = 'pending' AND next_attempt_at < %s",
                (clock() - overdue_after,),
            ).fetchone()
        overdue = int(row[0]) if row else 0
        return ReadyCheck(
            name="dispatcher_backlog", ok=overdue <= max_overdue, detail=f"{overdue} notifications overdue"
        )

    return dispatcher_backlog


def run_checks(checks: Sequence[ReadinessCheck]) -> Readiness:
    results = []
    for check in checks:
        try:
            results.append(check())
        except (psycopg.Error, OSError, TimeoutError, RuntimeError) as exc:
            name = getattr(check, "__name__", "check")
            log.warning("readiness check %s failed: %s", name, type(exc).__name__)
            results.append(ReadyCheck(name=name, ok=False, detail=type(exc).__name__))
    return Readiness(ready=all(r.ok for r in results), checks=results)
