"""The ingest in its own process: committed records come back to the detectors over a pipe.

Why a process: decoding and storing thousands of messages a second keeps the ingest's threads on the
GIL most of the time; the detector runner in the same process then waits behind them before and after
every database round trip, and an ``sos`` waited hundreds of milliseconds for its alert under load
(bench/alert_latency.py; docs/alerting.md has the figures). Apart, the ingest has a GIL of its own and
the detectors (and the alert they open) do not queue behind telemetry.

The child runs an ordinary :class:`ingest.service.IngestService` (both lanes, acknowledgement after
commit, unchanged) and sends, over one pipe, the records of every committed batch and, every second,
its status (connected, backlog) and its Prometheus metrics, which the parent serves from its own
registry. The parent restarts a child that dies (the broker redelivers what was not acknowledged) and
then calls ``on_restarted``: records the child committed but had not yet handed over are read back
from the database by the detector runner (it replays recent history; the engine ignores what it has
already seen). A parent that dies takes the child with it (EOF on the control pipe).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from ingest.service import IngestConfig, IngestService
from schemas.intake import Accepted
from schemas.records import Record

log = logging.getLogger(__name__)

_SPAWN = multiprocessing.get_context("spawn")
STATUS_EVERY_S = 1.0


class _ForwardedMetrics(Collector):
    """The child's metric families as last reported (the ingest's counters survive in the child only,
    so after a restart they start again from zero, as after any process restart)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)


class IngestProcess:
    """A supervised ingest child process (see the module docstring)."""

    def __init__(
        self,
        *,
        config: IngestConfig,
        mqtt_url: str,
        database_url: str,
        on_committed: Callable[[Sequence[Record]], None],
        on_restarted: Callable[[], None],
        registry: CollectorRegistry,
        log_level: str = "INFO",
        switch_interval_s: float = 0.001,
    ) -> None:
        self._args = (config, mqtt_url, database_url, log_level, switch_interval_s)
        self._on_committed = on_committed
        self._on_restarted = on_restarted
        self._metrics = _ForwardedMetrics()
        registry.register(self._metrics)
        self.connected = threading.Event()
        self.backlog = 0
        self.restarts = 0
        self._stopping = threading.Event()
        self._process: BaseProcess | None = None
        self._control: Connection | None = None
        self._reader: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, *, wait_connected_s: float = 30.0) -> None:
        data = self._spawn()
        self._reader = threading.Thread(target=self._read, args=(data,), name="ingest-process-reader", daemon=True)
        self._reader.start()
        if not self.connected.wait(wait_connected_s):
            log.warning("ingest process not yet connected to the broker after %.0fs; still trying", wait_connected_s)

    def _spawn(self) -> Connection:
        data_in, data_out = _SPAWN.Pipe(duplex=False)
        control_in, control_out = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(
            target=_child, args=(*self._args, data_out, control_in), name="carewatch-ingest", daemon=True
        )
        process.start()
        data_out.close()  # the child holds the only write end: its death is EOF here
        control_in.close()
        self._process, self._control = process, control_out
        return data_in

    def _read(self, data: Connection) -> None:
        while True:
            try:
                message = data.recv()
            except (EOFError, OSError):
                data.close()
                self.connected.clear()
                if self._stopping.is_set():
                    return
                process = self._process
                if process is not None:
                    process.join(timeout=5)
                log.error(
                    "ingest process exited (code %s); restarting it and replaying recent records to the detectors",
                    process.exitcode if process is not None else None,
                )
                self.restarts += 1
                data = self._spawn()
                self._on_restarted()
                continue
            kind = message[0]
            if kind == "records":
                self._on_committed(message[1])
            elif kind == "status":
                _, connected, backlog, families = message
                (self.connected.set if connected else self.connected.clear)()
                self.backlog = backlog
                self._metrics.families = families

    def stop(self) -> None:
        self._stopping.set()
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.send("stop")
        process = self._process
        if process is not None:
            process.join(timeout=30)
            if process.is_alive():
                log.error("ingest process did not stop in 30 s; terminating it (the broker redelivers)")
                process.terminate()
                process.join(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self._control is not None:
            self._control.close()


def _child(
    config: IngestConfig,
    mqtt_url: str,
    database_url: str,
    log_level: str,
    switch_interval_s: float,
    data: Connection,
    control: Connection,
) -> None:
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.setswitchinterval(switch_interval_s)
    send_lock = threading.Lock()
    stop = threading.Event()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            data.send(message)

    def committed(batch: list[Accepted]) -> None:
        records = [record for item in batch for record in item.records]
        if records:
            send(("records", records))  # blocks when the detectors fall behind: back-pressure to the broker

    registry = CollectorRegistry()
    service = IngestService(
        config=config, mqtt_url=mqtt_url, database_url=database_url, on_committed=committed, registry=registry
    )

    def watch_control() -> None:
        with contextlib.suppress(EOFError, OSError):
            control.recv()  # "stop", or EOF when the pipeline process is gone
        stop.set()

    threading.Thread(target=watch_control, name="control", daemon=True).start()
    service.start()
    while True:
        send(("status", service.connected.is_set(), service.backlog, list(registry.collect())))
        if stop.wait(STATUS_EVERY_S):
            break
    service.stop()  # the last batches commit and are sent before the pipe closes
    data.close()
