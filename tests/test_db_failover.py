"""The database failover in CI: pg_auto_failover promotes the synchronous standby, nothing committed is lost.

bench/failover.py measures the whole system (two carewatch nodes, the fleet, sos presses) through the
same fault; this bounded version checks what carewatch relies on underneath: through the multi-host
URL carewatch uses (``target_session_attrs=read-write``), a writer that retries as the ingest does
gets its writes committed again within the issue's 30 s after the primary's host dies (SIGKILL of
pg_autoctl and postgres), and every write that was acknowledged before the fault is on the new primary
(synchronous replication: an acknowledged commit is on the standby too). About 30 s on two cores.

Skipped, naming what is missing, without pg_autoctl (Debian ``postgresql-15-auto-failover``, which
scripts/bootstrap installs), without root (pg_autoctl runs as the ``postgres`` user through runuser)
or without that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import storage
from bench.pgaf_cluster import AutoFailoverCluster, pg_autoctl


def _missing() -> str | None:
    if pg_autoctl() is None:
        return "pg_autoctl (Debian postgresql-15-auto-failover; scripts/bootstrap installs it)"
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        return "root and runuser (pg_autoctl refuses root: it runs as the postgres user)"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "the postgres user"
    return None


MISSING = _missing()
pytestmark = [
    pytest.mark.skipif(MISSING is not None, reason=f"the database failover needs {MISSING}"),
    pytest.mark.slow,
]

FAILOVER_TARGET_S = 30.0


class Writer:
    """Commits numbered rows one by one through the multi-host URL, reconnecting and retrying like the
    ingest (a row counts as written only once its commit returned)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acknowledged: list[int] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        n = 0
        conn: psycopg.Connection | None = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=2)
                conn.execute("INSERT INTO failover_probe (n) VALUES (%s)", (n,))
                self.acknowledged.append(n)
                n += 1
                time.sleep(0.01)
            except psycopg.Error:
                self.failures += 1
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.2)
        if conn is not None:
            conn.close()

    def committed_since(self, count: int, timeout_s: float) -> float | None:
        """Seconds until a write beyond the first ``count`` is acknowledged, or None."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if len(self.acknowledged) > count:
                return time.monotonic() - started
            time.sleep(0.05)
        return None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory the postgres user can reach (pytest's own tmp_path sits under a root-only 0700 one)."""
    path = Path(tempfile.mkdtemp(prefix="carewatch-dbfailover-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_the_standby_takes_over_and_nothing_committed_is_lost(workdir: Path) -> None:
    (workdir / "pg").mkdir()
    cluster = AutoFailoverCluster(workdir / "pg")
    writer: Writer | None = None
    try:
        cluster.start()
        storage.migrate(cluster.database_url)  # carewatch's schema on the replicated database
        with psycopg.connect(cluster.database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE failover_probe (n integer PRIMARY KEY)")
        writer = Writer(cluster.database_url)
        writer.start()
        assert writer.committed_since(50, 30) is not None
        primary = cluster.primary()
        assert primary is not None
        before = len(writer.acknowledged)
        cluster.kill(primary)
        took = writer.committed_since(before + 1, 90)  # +1: a write in flight at the kill may still succeed
        assert took is not None, f"no write committed after the primary died:\n{cluster.state()}"
        assert took <= FAILOVER_TARGET_S, f"writes came back after {took:.1f}s"
        writer.stop()
        acknowledged = set(writer.acknowledged)
        new_primary = cluster.primary()
        assert new_primary is not None
        assert new_primary is not primary
        with psycopg.connect(cluster.database_url) as conn:
            stored = {n for (n,) in conn.execute("SELECT n FROM failover_probe")}
            migrated = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert acknowledged - stored == set(), "acknowledged commits lost in the failover"
        assert writer.failures > 0  # the fault was real: the writer saw it and retried
        assert migrated is not None
        assert migrated[0] > 0
    finally:
        if writer is not None:
            writer.stop()
        cluster.stop()
