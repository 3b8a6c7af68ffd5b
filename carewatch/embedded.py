"""Embedded MQTT broker and PostgreSQL for the demo and for machines without either installed.

Used when ``CAREWATCH_MQTT_URL`` / ``CAREWATCH_DATABASE_URL`` are not set (the demo) and by the test
suite's fallbacks. Nothing here is meant for production: production points carewatch at a real broker
and a real database by URL.

* :func:`start_broker` runs a ``mosquitto`` binary from ``PATH`` (or ``/usr/sbin``) as a child process
  on a free loopback port with carewatch's own broker configuration (``carewatch/mosquitto.conf``,
  rendered by :func:`render_mosquitto_conf`), persistence in the work directory. Without a binary it
  runs amqtt's pure-Python broker in a background thread: MQTT 3.1.1 only (no ``$share``
  subscriptions, no MQTT 5 session expiry), in-memory only, slow, but enough for a demo.
* :func:`start_postgres` runs PostgreSQL from the ``pgserver`` wheel with its data directory in the
  work directory, reachable over a Unix socket only. As root, pgserver runs the server as a system
  user ``pgserver`` (created on first use) and opens up traversal permissions on the parents of the
  data directory.

Each returns an :class:`EmbeddedService`: ``.url`` to connect to, ``.stop()`` (idempotent, also run at
interpreter exit), usable as a context manager. Which implementation is used is logged.

Errors: :class:`EmbeddedServiceError` when a service cannot be started (its ``service`` attribute says
which); the original exception is chained.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

log = logging.getLogger(__name__)

# Package data next to this module (a plain path: the package is never imported from a zip).
BROKER_CONFIG = Path(__file__).with_name("mosquitto.conf")
_LOOPBACK = "127.0.0.1"
_START_TIMEOUT_S = 15.0


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not be started."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


class EmbeddedService:
    """A running embedded service: where to reach it and how to stop it.

    Attributes:
        kind: ``"mosquitto"``, ``"amqtt"`` or ``"pgserver"``.
        url: ``mqtt://127.0.0.1:PORT`` for a broker, a libpq URI for PostgreSQL.
        workdir: the directory holding the service's data, configuration and log.
    """

    __slots__ = ("_lock", "_stop", "_stopped", "kind", "url", "workdir")

    def __init__(self, *, kind: str, url: str, workdir: Path, stop: Callable[[], None]) -> None:
        self.kind = kind
        self.url = url
        self.workdir = workdir
        self._stop = stop
        self._stopped = False
        self._lock = threading.Lock()
        atexit.register(self.stop)

    @property
    def running(self) -> bool:
        return not self._stopped

    def stop(self) -> None:
        """Stop the service; safe to call more than once."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        atexit.unregister(self.stop)
        log.info("stopping embedded %s at %s", self.kind, self.url)
        self._stop()

    def __enter__(self) -> EmbeddedService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedService(kind={self.kind!r}, url={self.url!r}, {state})"


# --- helpers ---------------------------------------------------------------------------------------


def free_port(host: str = _LOOPBACK) -> int:
    """A TCP port that was free a moment ago (the caller retries if it races)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_mosquitto() -> Path | None:
    """The ``mosquitto`` broker binary on ``PATH``, or in ``/usr/sbin`` (often not on a user's PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


def render_mosquitto_conf(
    *,
    port: int,
    persistence_dir: Path,
    log_file: Path,
    bind_address: str = _LOOPBACK,
    user: str | None = None,
) -> str:
    """carewatch's broker configuration with the listener, persistence and log paths filled in.

    ``user`` adds a ``user`` line: Mosquitto started as root otherwise drops to the ``mosquitto`` user,
    which cannot write to a work directory owned by root.
    """
    template = BROKER_CONFIG.read_text(encoding="utf-8")
    # Mosquitto wants a trailing slash on persistence_location.
    text = (
        template.replace("@PORT@", str(port))
        .replace("@BIND_ADDRESS@", bind_address)
        .replace("@PERSISTENCE_DIR@", f"{persistence_dir}/")
        .replace("@LOG_FILE@", str(log_file))
    )
    if "@" in "".join(line.split("#", 1)[0] for line in text.splitlines()):
        raise ValueError("mosquitto.conf template has an unreplaced @MARKER@")
    if user is not None:
        text = f"# Added by carewatch.embedded: stay this user instead of dropping privileges.\nuser {user}\n\n{text}"
    return text


# --- MQTT broker -----------------------------------------------------------------------------------


def start_broker(workdir: Path, *, prefer_mosquitto: bool = True) -> EmbeddedService:
    """Start an embedded MQTT broker: Mosquitto with carewatch's configuration if installed, else amqtt."""
    binary = find_mosquitto() if prefer_mosquitto else None
    if binary is not None:
        return start_mosquitto(workdir, binary=binary)
    if prefer_mosquitto:
        log.info("no mosquitto binary on PATH or in /usr/sbin: using amqtt's embedded broker")
    return start_amqtt(workdir)


def start_mosquitto(workdir: Path, *, binary: Path | None = None, attempts: int = 3) -> EmbeddedService:
    """Run ``mosquitto`` as a child process with carewatch's configuration on a free loopback port."""
    binary = binary or find_mosquitto()
    if binary is None:
        raise EmbeddedServiceError("mosquitto", "no mosquitto binary found")
    brokerdir = workdir / "mosquitto"
    brokerdir.mkdir(parents=True, exist_ok=True)
    user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        conf = brokerdir / "mosquitto.conf"
        log_file = brokerdir / "mosquitto.log"
        conf.write_text(
            render_mosquitto_conf(port=port, persistence_dir=brokerdir, log_file=log_file, user=user),
            encoding="utf-8",
        )
        output = (brokerdir / "stdout.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, binary found by path lookup
            [str(binary), "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it cleanly
        )
        output.close()
        if _wait_for_port(port, proc):
            url = f"mqtt://{_LOOPBACK}:{port}"
            log.info("embedded MQTT broker: mosquitto %s (pid %d) at %s, config %s", binary, proc.pid, url, conf)
            log.warning(
                "embedded MQTT broker at %s allows anonymous clients (loopback only, for the demo and tests);"
                " production brokers refuse them: deploy/mosquitto/carewatch.conf",
                url,
            )
            return EmbeddedService(
                kind="mosquitto", url=url, workdir=brokerdir, stop=functools.partial(_stop_process, proc, "mosquitto")
            )
        _stop_process(proc, "mosquitto")
        last_error = _tail(log_file) or _tail(brokerdir / "stdout.log")
        log.warning("mosquitto did not start on port %d (retrying): %s", port, last_error)
    raise EmbeddedServiceError("mosquitto", f"did not start after {attempts} attempts: {last_error}")


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if port_answers(_LOOPBACK, port, timeout=0.2):
            return True
        time.sleep(0.05)
    return False


def _stop_process(proc: subprocess.Popen[bytes], name: str) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()  # mosquitto saves its persistence database on SIGTERM
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        log.warning("%s (pid %d) ignored SIGTERM: killing it", name, proc.pid)
        proc.kill()
        proc.wait(timeout=5)


def _quieten(*logger_names: str) -> None:
    """Raise third-party loggers to WARNING unless the application configured them explicitly."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def start_amqtt(workdir: Path) -> EmbeddedService:
    """Run amqtt's broker on a free loopback port in a daemon thread with its own event loop."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ready = threading.Event()
    state: dict[str, Any] = {}

    thread = threading.Thread(target=_run_amqtt, args=(port, ready, state), name=f"amqtt-broker-{port}", daemon=True)
    thread.start()
    if not ready.wait(_START_TIMEOUT_S) or "error" in state:
        error = state.get("error")
        raise EmbeddedServiceError("amqtt", f"broker did not start on port {port}: {error!r}") from error
    loop: asyncio.AbstractEventLoop = state["loop"]
    broker = state["broker"]

    def stop() -> None:
        future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
        try:
            future.result(timeout=10)
        except Exception:  # a failed shutdown must not hide the caller's own error
            log.exception("amqtt broker shutdown failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    # The query tells carewatch's MQTT clients to speak 3.1.1 (amqtt has no MQTT 5).
    url = f"mqtt://{_LOOPBACK}:{port}?protocol=3.1.1"
    log.info("embedded MQTT broker: amqtt (in-process, MQTT 3.1.1, in-memory) at %s", url)
    log.warning("embedded MQTT broker at %s allows anonymous clients (loopback only, demo and tests)", url)
    return EmbeddedService(kind="amqtt", url=url, workdir=workdir, stop=stop)


def _run_amqtt(port: int, ready: threading.Event, state: dict[str, Any]) -> None:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        # amqtt (and the state-machine library under it) logs every connection at INFO, and warns
        # about its own plugin loading on import/creation.
        _quieten("amqtt", "transitions")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from amqtt.broker import Broker  # noqa: PLC0415 - optional dependency, imported on use

            config = {
                "listeners": {"default": {"type": "tcp", "bind": f"{_LOOPBACK}:{port}", "max_connections": -1}},
                # Only anonymous auth: the default plugin set adds $SYS publishing and packet logging.
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
            broker = Broker(config, loop=loop)
            loop.run_until_complete(broker.start())
    except Exception as exc:  # reported to the starting thread, which raises it
        state["error"] = exc
        ready.set()
        loop.close()
        return
    state["loop"] = loop
    state["broker"] = broker
    ready.set()
    try:
        loop.run_forever()
    finally:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


# --- PostgreSQL ------------------------------------------------------------------------------------


def start_postgres(workdir: Path, *, cleanup: Literal["stop", "delete"] = "stop") -> EmbeddedService:
    """Run PostgreSQL from the ``pgserver`` wheel with its data in ``workdir/pgdata``.

    ``cleanup="stop"`` keeps the data directory for the next start (the demo); ``"delete"`` removes it
    when stopped (tests). The URL connects over a Unix socket in the data directory as ``postgres``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    pgdata = workdir / "pgdata"
    try:
        _quieten("pgserver")  # logs every pg_ctl command line and its output at INFO
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            from pgserver.postgres_server import get_server  # noqa: PLC0415 - optional, imported on use

            server = get_server(pgdata, cleanup_mode=cleanup)
    except Exception as exc:
        raise EmbeddedServiceError("pgserver", f"PostgreSQL did not start in {pgdata}: {exc}") from exc
    url: str = server.get_uri()

    def stop() -> None:
        server.cleanup()

    log.info("embedded PostgreSQL: pgserver, data %s, %s", pgdata, url)
    return EmbeddedService(kind="pgserver", url=url, workdir=pgdata, stop=stop)
