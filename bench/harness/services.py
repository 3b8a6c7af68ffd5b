"""Real services on spare loopback ports for the whole-system benchmarks: never the machine's own.

- ``PrivatePostgres``: PostgreSQL 15 from ``/usr/lib/postgresql/15/bin``, ``initdb`` into a directory of
  ours, ``pg_ctl`` to start, stop (fast) and restart it, a SIGKILL of the postmaster for a crash, and
  ``small_tablespace``: a tmpfs of a few megabytes mounted by us, a tablespace on it, so a benchmark can
  fill the disk under the database and give the space back.
- ``Broker``: Mosquitto with carewatch's configuration (``carewatch.embedded.render_mosquitto_conf``)
  and persistence in its directory, on a port it keeps across restarts; ``stop(signal)`` for a clean
  (SIGTERM: the persistence database is saved) or a crash (SIGKILL: only the last autosave survives).
- ``TcpProxy``: what stands between carewatch/devices and the broker in a network fault: ``cut()``
  resets every connection through it and refuses new ones until ``restore()``.

As root, PostgreSQL runs as the ``postgres`` user (``runuser``): it refuses to run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import psycopg

from carewatch.embedded import free_port, port_answers, render_mosquitto_conf

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class ServiceError(RuntimeError):
    """A service of the harness could not be started, or cannot exist on this machine (the reason says why)."""


def missing_binaries() -> list[str]:
    """What the whole-system harness needs and this machine lacks (empty: all there)."""
    from carewatch.embedded import find_mosquitto  # noqa: PLC0415 - the one lookup carewatch uses

    missing = []
    if find_mosquitto() is None:
        missing.append("mosquitto (Debian package mosquitto)")
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).exists():
            missing.append(f"{PG_BIN / tool} (Debian package postgresql-15)")
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            missing.append("runuser (to run PostgreSQL as the postgres user)")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("a postgres user (PostgreSQL refuses to run as root)")
    return missing


class PrivatePostgres:
    """A PostgreSQL cluster of our own under ``workdir``, on a spare loopback port, trust authentication."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.datadir = workdir / "pgdata"
        self.logfile = workdir / "postgres.log"
        self.port = free_port()
        self.mounts: list[Path] = []
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as exc:
                raise ServiceError("running as root and there is no postgres user to run PostgreSQL") from exc
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        result = subprocess.run(
            [*self._as_postgres, *argv], capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise ServiceError(f"{Path(argv[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")

    def _chown(self, path: Path) -> None:
        if self._as_postgres:
            shutil.chown(path, "postgres", "postgres")

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        self.datadir.mkdir()
        self._chown(self.datadir)
        self.logfile.touch()
        self._chown(self.logfile)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        # fsync off: the faults here are process crashes and restarts, never the host losing power, and the
        # machine is shared; a killed postmaster still recovers everything committed from its WAL.
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.datadir} -c fsync=off"
                   " -c max_connections=200 -c shared_buffers=64MB")  # fmt: skip
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60",
                  "-o", options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast``: sessions are disconnected, open transactions roll back, all committed stays."""
        if (self.datadir / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend, as a crash of the database host's processes."""
        pidfile = self.datadir / "postmaster.pid"
        pid = int(pidfile.read_text().split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        for child in process_children(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while port_answers("127.0.0.1", self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def create_database(self, name: str, tablespace: str | None = None) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}" + (f" TABLESPACE {tablespace}" if tablespace else ""))
        return self.url(name)

    def small_tablespace(self, name: str, size_mb: int) -> Path:
        """A tablespace on a tmpfs of ``size_mb`` we mount; returns the mount point (fill it to fill the disk).

        Raises ``ServiceError`` naming why when the filesystem cannot be made here (not root, or mounting
        is not allowed in this container): a disk-full fault is never silently skipped.
        """
        if os.geteuid() != 0:
            raise ServiceError("a small filesystem for the database needs root to mount a tmpfs (running as"
                               f" uid {os.geteuid()})")  # fmt: skip
        mount = self.workdir / f"small-{name}"
        mount.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(mount)],
                                capture_output=True, text=True, check=False)  # fmt: skip
        if result.returncode != 0:
            raise ServiceError(f"cannot mount a {size_mb} MB tmpfs for the database's disk: {result.stderr.strip()}")
        self.mounts.append(mount)
        location = mount / "pg"
        location.mkdir()
        self._chown(location)
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE TABLESPACE {name} LOCATION '{location}'")
        return mount

    def destroy(self) -> None:
        with contextlib.suppress(ServiceError, OSError, subprocess.TimeoutExpired):
            self.stop("immediate")
        for mount in self.mounts:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)
        self.mounts.clear()


def process_children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def fill_disk(mount: Path) -> int:
    """Fill the filesystem at ``mount`` with a file until it refuses more; return the bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with (mount / "filler").open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
                written += len(chunk)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            out.close()
    return written


def free_disk(mount: Path) -> None:
    (mount / "filler").unlink(missing_ok=True)


class Broker:
    """Mosquitto on a fixed port with persistence in ``workdir``; ``stop`` then ``start`` keeps port and data."""

    def __init__(self, workdir: Path, binary: Path) -> None:
        self.workdir, self.binary, self.port = workdir, binary, free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = workdir / "mosquitto.conf"
        user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
        self.conf.write_text(
            render_mosquitto_conf(
                port=self.port, persistence_dir=workdir, log_file=workdir / "mosquitto.log", user=user
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def autosave_interval_s(self) -> int:
        for line in self.conf.read_text().splitlines():
            if line.startswith("autosave_interval"):
                return int(line.split()[1])
        return 1800  # Mosquitto's default

    def start(self) -> None:
        out = (self.workdir / "stdout.log").open("ab")
        self.process = subprocess.Popen([str(self.binary), "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)  # fmt: skip
        out.close()
        deadline = time.monotonic() + 15
        while not port_answers("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise ServiceError(f"mosquitto did not start on port {self.port}")
            time.sleep(0.05)

    def save(self) -> None:
        """Write the persistence database now (SIGUSR1: what an autosave does), and wait until it is written."""
        assert self.process is not None  # noqa: S101
        db = self.workdir / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else 0
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while (db.stat().st_mtime_ns if db.exists() else 0) == before and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM saves the persistence database before exiting; SIGKILL keeps only the last autosave."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


class TcpProxy:
    """A TCP forwarder on a spare port to ``upstream``; ``cut()`` resets every connection and refuses new
    ones (as a network that drops out), ``restore()`` lets them through again."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port), backlog=128)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), name="proxy-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            victims = list(self._open)
            self._open.clear()
        for sock in victims:
            _reset(sock)

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()


def _reset(sock: socket.socket) -> None:
    """Drop the connection at once, as when a network path fails: the peer sees it end now.

    ``shutdown`` first: a bare ``close`` does not wake the pump thread blocked in ``recv`` on the same
    socket, and the kernel keeps the connection open until that call returns (the peers noticed the
    cut only when the network came back)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
