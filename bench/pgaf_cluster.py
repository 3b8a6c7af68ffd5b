"""A PostgreSQL primary and a synchronous standby managed by pg_auto_failover, all on this machine.

    cluster = AutoFailoverCluster(workdir).start()    # a monitor and two nodes on spare loopback ports
    cluster.database_url                               # multi-host, target_session_attrs=read-write
    cluster.primary()                                  # the node that accepts writes now
    cluster.kill(node)                                 # SIGKILL its pg_autoctl and its postgres
    cluster.restart(node)                              # pg_autoctl run: it rejoins as a standby
    cluster.stop()

pg_autoctl refuses to run as root, so every pg_autoctl runs as the ``postgres`` user (``runuser``; the
work directory is handed to that user), each in its own session so a node can be killed whole, as a
host dies. pg_auto_failover's defaults wait about 30 s before a standby takes over from a primary
that vanished (health checks, then ``primary_demote_timeout`` for the old primary to step down); the
monitor and nodes here are tuned for a 2-core test machine on loopback: health checks every second,
unhealthy after 3 s, a node that loses both the monitor and its peer demotes itself after 5 s
(``network_partition_timeout``), and the monitor waits 8 s for that before promoting (keep the wait
longer than the self-demotion, or a partitioned old primary could still take writes). Synchronous
replication is pg_auto_failover's default with one standby (``number_sync_standbys`` 0 and replication
quorum on: ``synchronous_standby_names = 'ANY 1 (...)'`` while the standby is healthy).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from carewatch.embedded import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
MONITOR_TUNING = {
    "pgautofailover.health_check_period": "1000",
    "pgautofailover.health_check_timeout": "1000",
    "pgautofailover.health_check_max_retries": "1",
    "pgautofailover.health_check_retry_delay": "500",
    "pgautofailover.node_considered_unhealthy_timeout": "3000",
    "pgautofailover.primary_demote_timeout": "8000",
}
NETWORK_PARTITION_TIMEOUT_S = 5


class ClusterError(RuntimeError):
    pass


def pg_autoctl() -> str | None:
    return shutil.which("pg_autoctl")


@dataclass
class Node:
    name: str
    port: int
    pgdata: Path
    process: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)


class AutoFailoverCluster:
    def __init__(self, workdir: Path, *, dbname: str = "carewatch") -> None:
        binary = pg_autoctl()
        if binary is None:
            raise ClusterError("pg_autoctl not found: install Debian's postgresql-15-auto-failover")
        self._binary = binary
        runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
        if runuser is None:
            raise ClusterError("runuser not found (util-linux): pg_autoctl must run as the postgres user")
        self._runuser = runuser
        self.workdir = workdir
        self.dbname = dbname
        user = pwd.getpwnam("postgres")
        self._uid, self._gid = user.pw_uid, user.pw_gid
        os.chown(workdir, self._uid, self._gid)
        self.monitor = Node("monitor", free_port(), workdir / "monitor")
        self.nodes = [Node(f"node{n}", free_port(), workdir / f"node{n}") for n in (1, 2)]
        self.monitor_uri = f"postgres://autoctl_node@127.0.0.1:{self.monitor.port}/pg_auto_failover?sslmode=disable"

    @property
    def database_url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"postgresql://postgres@{hosts}/{self.dbname}?target_session_attrs=read-write&connect_timeout=2"

    def node_url(self, node: Node) -> str:
        return f"postgresql://postgres@127.0.0.1:{node.port}/{self.dbname}?connect_timeout=2"

    def _env(self) -> dict[str, str]:
        return {
            "PATH": f"{PG_BIN}:/usr/bin:/bin",
            "HOME": str(self.workdir),
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
            "XDG_DATA_HOME": str(self.workdir / "data"),
            # initdb takes its encoding from the locale: UTF8, not SQL_ASCII (which psycopg reads as bytes).
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
        }

    def _spawn(self, node: Node, args: list[str]) -> None:
        log = self.workdir / f"{node.name}-{len(node.logs)}.log"
        node.logs.append(log)
        with log.open("wb") as out:
            node.process = subprocess.Popen(
                [self._runuser, "-u", "postgres", "--", self._binary, *args],
                env=self._env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _run(self, args: list[str]) -> str:
        result = subprocess.run(
            [self._runuser, "-u", "postgres", "--", self._binary, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return result.stdout

    def start(self, timeout_s: float = 120) -> AutoFailoverCluster:
        common = ["--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl"]
        self._spawn(
            self.monitor,
            ["create", "monitor", "--pgdata", str(self.monitor.pgdata), "--pgport", str(self.monitor.port),
             *common, "--run"],
        )  # fmt: skip
        self._wait(lambda: self._query(self.monitor.port, "pg_auto_failover", "SELECT 1") is not None, timeout_s)
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.monitor.port}/pg_auto_failover", autocommit=True
        ) as conn:
            for name, value in MONITOR_TUNING.items():
                conn.execute(f"ALTER SYSTEM SET {name} = {value}")
            conn.execute("SELECT pg_reload_conf()")
        for node in self.nodes:
            self._spawn(
                node,
                ["create", "postgres", "--pgdata", str(node.pgdata), "--pgport", str(node.port), *common,
                 "--monitor", self.monitor_uri, "--dbname", self.dbname, "--name", node.name, "--run"],
            )  # fmt: skip
            if node is self.nodes[0]:  # the first node becomes the primary; the second its standby
                self._wait(lambda: self.primary() is not None, timeout_s)
        deadline = time.monotonic() + timeout_s
        while not self.healthy():
            if time.monotonic() > deadline:
                raise ClusterError(f"no primary with a synchronous standby after {timeout_s:.0f}s:\n{self.state()}")
            primary = self.primary()
            if primary is not None:
                # pg_basebackup asks for a spread checkpoint (minutes on an idle server): hurry it.
                self._query(primary.port, self.dbname, "CHECKPOINT")
            time.sleep(1.0)
        for node in self.nodes:
            self._run(["config", "set", "--pgdata", str(node.pgdata), "timeout.network_partition_timeout",
                       str(NETWORK_PARTITION_TIMEOUT_S)])  # fmt: skip
        return self

    def state(self) -> str:
        return self._run(["show", "state", "--pgdata", str(self.monitor.pgdata)])

    def primary(self) -> Node | None:
        for node in self.nodes:
            if self._query(node.port, self.dbname, "SELECT NOT pg_is_in_recovery()") is True:
                return node
        return None

    def healthy(self) -> bool:
        """A writable primary whose synchronous standby is streaming (sync_state 'quorum' or 'sync')."""
        primary = self.primary()
        if primary is None:
            return False
        sync = self._query(
            primary.port, self.dbname, "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')"
        )
        return bool(sync)

    def kill(self, node: Node) -> None:
        """The host dies: SIGKILL pg_autoctl and its postgres (the whole session)."""
        if node.process is not None:
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(timeout=10)
        pid_file = node.pgdata / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)

    def restart(self, node: Node) -> None:
        """The host is back: ``pg_autoctl run`` (it rejoins as a standby, rewinding if it must)."""
        self._spawn(node, ["run", "--pgdata", str(node.pgdata)])

    def stop(self) -> None:
        for node in [*self.nodes, self.monitor]:
            if node.process is not None and node.process.poll() is None:
                os.killpg(node.process.pid, signal.SIGTERM)
        for node in [*self.nodes, self.monitor]:
            if node.process is not None:
                try:
                    node.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(node.process.pid, signal.SIGKILL)

    @staticmethod
    def _query(port: int, dbname: str, query: str) -> object | None:
        try:
            with psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{port}/{dbname}", autocommit=True, connect_timeout=2
            ) as conn:
                row = conn.execute(query).fetchone()  # type: ignore[arg-type]
                return row[0] if row else None
        except psycopg.Error:
            return None

    @staticmethod
    def _wait(predicate: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise ClusterError("pg_auto_failover did not come up in time")
            time.sleep(0.5)
