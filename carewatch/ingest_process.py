"""The ingest in its own process; it tells the detectors over a pipe when it has committed something.

Why a process: decoding and storing thousands of messages a second keeps the ingest's threads on the
GIL most of the time; the detector runner in the same process then waits behind them before and after
every database round trip, and an ``sos`` waited hundreds of milliseconds for its alert under load
(bench/alert_latency.py; docs/alerting.md has the figures). Apart, the ingest has a GIL of its own and
the detectors (and the alert they open) do not queue behind telemetry.

Each child runs an ordinary :class:`ingest.service.IngestService` (both lanes, acknowledgement after
commit, unchanged); several children share one subscription (``ingest_processes``), the way to use
more than one core for the ingest. The detectors read committed records from the database's
commit-ordered feed (storage.feed), whichever node's ingest wrote them; a child sends, over its pipe,
only a hint after every committed batch (``on_committed``: read the feed now) and, every second, its
status (connected, backlog) and its Prometheus metrics, which the parent serves from its own registry
(summed over children). The hint is a fast path, never needed for correctness: the feed is read every
``feed_poll_s`` anyway, and an event's commit wakes every node through NOTIFY. Sending the records
themselves (as before the feed) cost a pickling per record and bought nothing measurable over the
NOTIFY-woken feed (docs/operations.md, "Several nodes"). The parent restarts a child that dies (the
broker redelivers what was not acknowledged) and then calls ``on_restarted``. A parent that dies
takes the child with it (EOF on the control pipe).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from carewatch.child import start_child
from ingest.mqtt_source import BrokerAddress
from ingest.service import IngestConfig, IngestService
from schemas.intake import Accepted
from schemas.records import Record

log = logging.getLogger(__name__)

_SPAWN = multiprocessing.get_context("spawn")
STATUS_EVERY_S = 1.0


class _ForwardedMetrics(Collector):
    """The children's metric families as last reported, summed over workers (the ingest's counters live
    in the children, so after a child restarts its share starts again from zero, as after any process
    restart; Prometheus' ``rate()`` treats that as a counter reset)."""

    def __init__(self, workers: int) -> None:
        self._latest: list[list[Metric]] = [[] for _ in range(workers)]

    def update(self, worker: int, families: list[Metric]) -> None:
        self._latest[worker] = families

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for families in list(self._latest):
            for family in families:
                into = merged.get(family.name)
                if into is None:
                    into = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                into.samples.extend(family.samples)
        for family in merged.values():
            family.samples = _summed(family.samples)
        return list(merged.values())


def _summed(samples: list[Any]) -> list[Any]:
    """One sample per (name, labels): counters, gauges and histogram buckets add up across workers;
    ``_created`` timestamps keep the earliest."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    for sample in samples:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        seen = out.get(key)
        if seen is None:
            out[key] = sample
        elif sample.name.endswith("_created"):
            out[key] = seen._replace(value=min(seen.value, sample.value))
        else:
            out[key] = seen._replace(value=seen.value + sample.value)
    return list(out.values())


class _Worker:
    """One ingest child: its process, the control pipe's write end, and the thread reading its data."""

    __slots__ = ("backlog", "connected", "control", "index", "process", "reader")

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.control: Connection | None = None
        self.reader: threading.Thread | None = None
        self.connected = False
        self.backlog = 0


class IngestProcess:
    """``workers`` supervised ingest child processes (see the module docstring). With more than one they
    share the subscription (``$share/<share_group>/...``; the group defaults to ``carewatch``), each with
    its own stable client id (``<client_id>-<n>``), and all hand their records to the same detectors."""

    def __init__(
        self,
        *,
        config: IngestConfig,
        mqtt_url: str,
        database_url: str,
        on_committed: Callable[[Sequence[Record]], None],
        on_restarted: Callable[[], None],
        registry: CollectorRegistry,
        workers: int = 1,
        log_level: str = "INFO",
        switch_interval_s: float = 0.001,
    ) -> None:
        if workers > 1 and BrokerAddress.parse(mqtt_url).protocol != "5":
            raise ValueError(
                f"{workers} ingest processes need MQTT 5 shared subscriptions, but the broker URL asks for "
                "MQTT 3.1.1: each process would get every message (or none), not its share"
            )
        self._configs = [config] if workers <= 1 else [
            replace(config, client_id=f"{config.client_id}-{k}", share_group=config.share_group or "carewatch")
            for k in range(workers)
        ]  # fmt: skip
        self._common = (mqtt_url, database_url, log_level, switch_interval_s)
        self._on_committed = on_committed
        self._on_restarted = on_restarted
        self._metrics = _ForwardedMetrics(len(self._configs))
        registry.register(self._metrics)
        self._workers = [_Worker(k) for k in range(len(self._configs))]
        self.connected = _AllWorkersConnected(self._workers)
        self.restarts = 0
        self._stopping = threading.Event()

    @property
    def backlog(self) -> int:
        return sum(worker.backlog for worker in self._workers)

    @property
    def alive(self) -> bool:
        return all(w.process is not None and w.process.is_alive() for w in self._workers)

    @property
    def pids(self) -> list[int | None]:
        return [w.process.pid if w.process is not None else None for w in self._workers]

    def start(self, *, wait_connected_s: float = 30.0) -> None:
        for worker in self._workers:
            data = self._spawn(worker)
            worker.reader = threading.Thread(
                target=self._read, args=(worker, data), name=f"ingest-{worker.index}-reader", daemon=True
            )
            worker.reader.start()
        if not self.connected.wait(wait_connected_s):
            log.warning("ingest processes not yet connected to the broker after %.0fs; still trying", wait_connected_s)

    def _spawn(self, worker: _Worker) -> Connection:
        data_in, data_out = _SPAWN.Pipe(duplex=False)
        control_in, control_out = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(
            target=_child,
            args=(self._configs[worker.index], *self._common, data_out, control_in),
            name=f"carewatch-ingest-{worker.index}",
            daemon=True,
        )
        process.start()
        data_out.close()  # the child holds the only write end: its death is EOF here
        control_in.close()
        worker.process, worker.control = process, control_out
        return data_in

    def _read(self, worker: _Worker, data: Connection) -> None:
        while True:
            try:
                message = data.recv()
            except (EOFError, OSError):
                data.close()
                worker.connected = False
                if self._stopping.is_set():
                    return
                process = worker.process
                if process is not None:
                    process.join(timeout=5)
                log.error(
                    "ingest process %d exited (code %s); restarting it and replaying recent records to the detectors",
                    worker.index,
                    process.exitcode if process is not None else None,
                )
                self.restarts += 1
                data = self._spawn(worker)
                self._on_restarted()
                continue
            kind = message[0]
            if kind == "committed":
                self._on_committed(())
            elif kind == "status":
                _, worker.connected, worker.backlog, families = message
                self._metrics.update(worker.index, families)
                self.connected.changed()

    def stop(self) -> None:
        self._stopping.set()
        for worker in self._workers:
            if worker.control is not None:
                with contextlib.suppress(OSError):
                    worker.control.send("stop")
        for worker in self._workers:
            process = worker.process
            if process is not None:
                process.join(timeout=30)
                if process.is_alive():
                    log.error(
                        "ingest process %d did not stop in 30 s; terminating it (the broker redelivers)", worker.index
                    )
                    process.terminate()
                    process.join(timeout=5)
            if worker.reader is not None:
                worker.reader.join(timeout=10)
            if worker.control is not None:
                worker.control.close()


class _AllWorkersConnected:
    """``is_set``/``wait`` as on a ``threading.Event``: connected means every worker reported so."""

    def __init__(self, workers: list[_Worker]) -> None:
        self._workers = workers
        self._cond = threading.Condition()

    def is_set(self) -> bool:
        return all(worker.connected for worker in self._workers)

    def changed(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(self.is_set, timeout)


def _child(
    config: IngestConfig,
    mqtt_url: str,
    database_url: str,
    log_level: str,
    switch_interval_s: float,
    data: Connection,
    control: Connection,
) -> None:
    stop = start_child("ingest", log_level, control)
    sys.setswitchinterval(switch_interval_s)
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            data.send(message)

    def committed(batch: list[Accepted]) -> None:
        if batch:
            send(("committed",))  # a hint: the detectors read the records from the database's feed

    registry = CollectorRegistry()
    service = IngestService(
        config=config, mqtt_url=mqtt_url, database_url=database_url, on_committed=committed, registry=registry
    )

    service.start()
    while True:
        send(("status", service.connected.is_set(), service.backlog, list(registry.collect())))
        if stop.wait(STATUS_EVERY_S):
            break
    service.stop()  # the last batches commit and are sent before the pipe closes
    data.close()
