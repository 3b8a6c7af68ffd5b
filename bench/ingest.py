"""Ingest benchmark: how close carewatch's ingest comes to what one Python process can drain from Mosquitto.

Runs against a private Mosquitto started with carewatch's own configuration (``carewatch.embedded``)
and the real PostgreSQL (a fresh database, 10,000 provisioned devices), and measures in one run:

1. **ceiling** — a bare paho subscriber (persistent session, auto-ack, no parsing, no storage) draining
   a backlog of N QoS 1 messages that were published while it was offline;
2. **drain** — carewatch's ingest (validation, rate limit, dedupe, COPY, commit, ack after commit)
   draining the *same* backlog (it was queued for both sessions) into committed rows;
3. **live** — a paced publisher at ``--rate`` messages/s for ``--seconds`` with the ingest running as
   a scaled-out deployment runs it: ``--workers`` ingest processes (default 2) sharing one MQTT 5
   subscription (``$share/bench-live/...``), each an ordinary ``IngestService``; latency is measured
   from the device timestamp (set at publish time) to the commit. The drained sessions are discarded
   first, so the broker does not also queue the live traffic for consumers that are gone.

Publishers run in a child process (``--publisher``) so their CPU does not count against the ingest's
GIL, but they share the machine's cores, as devices' traffic shares a real broker host's network.
The last line is::

    ingest: drain_per_s=<n> ceiling_per_s=<n> ratio=<r> live_per_s=<n> p50_ms=<n> p99_ms=<n> lost=<n> duplicated=<n>

``lost`` and ``duplicated`` compare every published message with ``message_receipts`` and the data
rows it should have produced. Exits non-zero with a clear message when Mosquitto or PostgreSQL is
missing. See ``docs/ingest.md`` for results and what limits them.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import CollectorRegistry
from psycopg import sql

# Run as ``python bench/ingest.py``: Python puts bench/ first on sys.path, where this very file would
# shadow the ``ingest`` package. Import from the repository root instead.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(_ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]

from bench.ingest_fleet import DEVICES, expected_rows, provision, publish_main  # noqa: E402
from carewatch import embedded  # noqa: E402
from carewatch.child import tune_gc  # noqa: E402
from carewatch.runtime import ingest_config  # noqa: E402
from carewatch.settings import Settings  # noqa: E402
from ingest.service import IngestConfig, IngestService  # noqa: E402
from schemas.intake import Accepted  # noqa: E402
from storage import migrate  # noqa: E402

log = logging.getLogger("bench.ingest")
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TOPIC_ROOT = "care/v1"


def fail(message: str) -> None:
    print(f"bench/ingest.py: FAILED: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _session_client(client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)


def _connect_props() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 65535
    return props


def create_ceiling_session(host: str, port: int, client_id: str) -> None:
    """Connect once with a persistent session and subscribe, so the backlog is queued for it."""
    client = _session_client(client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(host, port, clean_start=False, properties=_connect_props())
    client.loop_start()
    client.subscribe(f"{TOPIC_ROOT}/dev/+/+", qos=1)
    if not subscribed.wait(10):
        fail("ceiling subscriber could not subscribe")
    client.disconnect()
    client.loop_stop()


def run_ceiling(host: str, port: int, client_id: str, expected: int) -> float:
    """Reconnect the bare subscriber and time it draining ``expected`` queued messages."""
    client = _session_client(client_id)
    count = 0
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        nonlocal count
        count += 1
        if count >= expected:
            done.set()

    client.on_message = on_message
    started = time.perf_counter()
    client.connect(host, port, clean_start=False, properties=_connect_props())
    client.loop_start()
    if not done.wait(max(60.0, expected / 2000)):
        fail(f"ceiling subscriber received only {count} of {expected} queued messages")
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return expected / elapsed


def discard_session(host: str, port: int, client_id: str) -> None:
    """End a persistent session (clean start, no expiry): the broker stops queueing for it."""
    client = _session_client(client_id)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    client.connect(host, port, clean_start=True, properties=props)
    client.loop_start()
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


def _live_worker(config: IngestConfig, mqtt_url: str, database_url: str, out: Connection, control: Connection) -> None:
    """Child process: one carewatch ingest worker of the live phase; reports commits and latencies."""
    tune_gc()  # as carewatch's ingest processes do (carewatch.child.start_child, python -m ingest)
    recorder = Recorder()
    recorder.record_latency = True
    service = IngestService(
        config=config, mqtt_url=mqtt_url, database_url=database_url, on_committed=recorder, registry=CollectorRegistry()
    )
    service.start()
    out.send(("ready", service.connected.is_set()))

    def progress() -> None:
        with recorder.changed:
            latencies, recorder.latencies_ms = recorder.latencies_ms, []
            span = (recorder.first_batch, recorder.first_commit_wall, recorder.last_commit_wall)
            out.send(("progress", recorder.committed, latencies, span))

    while not control.poll(0.5):
        progress()
    service.stop()
    progress()
    out.send(("done",))


class LiveWorkers:
    """``workers`` ingest processes sharing one subscription (``$share``), as a scaled-out deployment runs.

    Not ``carewatch.ingest_process.IngestProcess``: that hands records to the detectors, and a batch
    upload's records carry reading times, not the message's publish time the latency is measured from.
    Each worker here is the same ``IngestService`` with the same configuration, reporting per message.
    """

    def __init__(self, workers: int, settings: Settings, mqtt_url: str, database_url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.committed: dict[int, int] = {}
        self.latencies_ms: list[float] = []
        self.last_commit_wall = 0.0
        # Per worker: (messages in its first batch, first commit, last commit), wall clock.
        self.spans: dict[int, tuple[int, float, float]] = {}
        self._lock = threading.Lock()
        self._controls: list[Connection] = []
        self._readers: list[threading.Thread] = []
        self._processes = []
        ready = []
        for k in range(workers):
            config = ingest_config(settings.model_copy(update={"mqtt_client_id": f"{settings.mqtt_client_id}-w{k}"}))
            out_r, out_w = context.Pipe(duplex=False)
            ctl_r, ctl_w = context.Pipe(duplex=False)
            process = context.Process(target=_live_worker, args=(config, mqtt_url, database_url, out_w, ctl_r))
            process.start()
            self._processes.append(process)
            self._controls.append(ctl_w)
            ready.append((k, out_r))
        for k, out_r in ready:
            if not out_r.poll(60) or not out_r.recv()[1]:
                fail(f"live ingest worker {k} did not connect to the broker")
            reader = threading.Thread(target=self._read, args=(k, out_r), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _read(self, k: int, out: Connection) -> None:
        while True:
            message = out.recv()
            if message[0] == "done":
                return
            _, committed, latencies, span = message
            with self._lock:
                self.committed[k] = committed
                self.latencies_ms.extend(latencies)
                self.spans[k] = span
                self.last_commit_wall = max(self.last_commit_wall, span[2])

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.committed.values())

    def commit_rate(self) -> float:
        """Messages committed per second while committing: per worker, the messages after its first
        batch over the time from its first commit to its last, summed. An ingest that keeps up with a
        paced publisher commits at the publish rate; one that falls behind stretches its last commit."""
        with self._lock:
            return sum(
                (self.committed[k] - first_batch) / (last - first)
                for k, (first_batch, first, last) in self.spans.items()
                if last > first
            )

    def wait_while_progressing(self, total: int, stall_s: float = 30.0) -> bool:
        last, since = -1, time.monotonic()
        while self.total < total:
            if self.total != last:
                last, since = self.total, time.monotonic()
            elif time.monotonic() - since > stall_s:
                return False
            time.sleep(0.2)
        return True

    def stop(self) -> None:
        for control in self._controls:
            control.send("stop")
        for reader in self._readers:
            reader.join(timeout=60)
        for process in self._processes:
            process.join(timeout=30)


def publish(mqtt_url: str, *, start: int, count: int, rate: float, seconds: float = 0.0) -> dict[str, float]:
    """Run the publisher child process; return its report (published count, seconds, achieved rate)."""
    argv = [
        sys.executable,
        __file__,
        "--publisher",
        json.dumps({"url": mqtt_url, "start": start, "count": count, "rate": rate, "seconds": seconds}),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        fail(f"publisher failed: {done.stderr.strip()[-2000:]}")
    report: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


class Recorder:
    """``on_committed`` hook: counts committed messages and records device-time → commit latency."""

    def __init__(self) -> None:
        self.committed = 0
        self.latencies_ms: list[float] = []
        self.record_latency = False
        self.last_commit = 0.0
        self.first_commit = 0.0
        self.first_commit_wall = 0.0
        self.first_batch = 0
        self.last_commit_wall = 0.0
        self.changed = threading.Condition()

    def __call__(self, batch: list[Accepted]) -> None:
        now = time.time()
        if self.record_latency:
            self.latencies_ms.extend((now - item.message.ts.timestamp()) * 1000 for item in batch)
        with self.changed:
            self.committed += len(batch)
            self.last_commit = time.perf_counter()
            self.last_commit_wall = now
            if not self.first_commit:
                self.first_commit, self.first_commit_wall, self.first_batch = self.last_commit, now, len(batch)
            self.changed.notify_all()

    def wait_for(self, total: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.committed < total:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.changed.wait(remaining)
        return True

    def wait_while_progressing(self, total: int, stall_s: float = 30.0) -> bool:
        """Wait for ``total`` commits as long as commits keep coming (a slow ingest is not a lost one)."""
        while not self.wait_for(total, stall_s):
            with self.changed:
                stalled = time.perf_counter() - self.last_commit > stall_s
            if stalled:
                return False
        return True


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def create_database(admin_url: str) -> str:
    name = f"cw_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        fail(f"PostgreSQL is not reachable at {admin_url} ({exc}); start it or pass --database-url")
    return name


# deploy/postgresql/carewatch.conf's settings that a superuser can give one database (ALTER DATABASE ... SET):
# the benchmark's own database gets them with --database-settings (by default it runs on the server as
# configured); the server's settings are read and printed, never changed.
DATABASE_SETTINGS = {"wal_compression": "lz4"}
_SHOWN_SETTINGS = ("wal_compression", "max_wal_size", "checkpoint_timeout", "shared_buffers", "synchronous_commit")


def tune_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for setting, value in DATABASE_SETTINGS.items():
            try:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                        sql.Identifier(name), sql.Identifier(setting), sql.Literal(value)
                    )
                )
            except psycopg.Error as exc:  # e.g. a server built without lz4, or not a superuser
                print(f"setup: could not set {setting} = {value} on the benchmark database ({exc})", flush=True)


def server_settings(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM unnest(%s::text[]) AS name", (list(_SHOWN_SETTINGS),)
        ).fetchall()
    return " ".join(f"{name}={value}" for name, value in rows)


def checkpoints(database_url: str) -> int:
    """Checkpoints the server has started so far (timed and requested)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").fetchone()
    return int(row[0]) if row else 0


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def with_dbname(admin_url: str, name: str) -> str:
    return psycopg.conninfo.make_conninfo(admin_url, dbname=name)


def count_stored(database_url: str) -> tuple[int, int, int]:
    """(receipts, distinct (device, seq) receipts, data rows in readings + status_reports)."""
    with psycopg.connect(database_url) as conn:
        receipts, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, seq)) FROM message_receipts"
        ).fetchone() or (0, 0)
        rows = conn.execute("SELECT (SELECT count(*) FROM readings) + (SELECT count(*) FROM status_reports)").fetchone()
        rejects = conn.execute("SELECT count(*) FROM rejects").fetchone()
    if rejects and rejects[0]:
        print(f"warning: {rejects[0]} messages were rejected", flush=True)
    return int(receipts), int(distinct), int(rows[0] if rows else 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000, help="backlog size N (default 200,000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="live phase duration (default 60)")
    parser.add_argument("--rate", type=float, default=15_000.0, help="live publish rate, messages/s (default 15,000)")
    parser.add_argument(
        "--workers", type=int, default=2, help="ingest processes sharing one subscription in the live phase (default 2)"
    )
    parser.add_argument("--quick", action="store_true", help="a short run: 30,000 messages, 10 s live")
    parser.add_argument("--database-url", default=os.environ.get("CAREWATCH_BENCH_DATABASE_URL", DEFAULT_ADMIN_URL))
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database and broker directory")
    parser.add_argument(
        "--database-settings",
        action="store_true",
        help="give the benchmark database carewatch's per-database settings (wal_compression=lz4, "
        "deploy/postgresql/carewatch.conf); by default the server runs as configured",
    )
    parser.add_argument("--publisher", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        return publish_main(json.loads(args.publisher))
    if args.quick:
        args.messages, args.seconds = 30_000, 10.0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if embedded.find_mosquitto() is None:
        fail("no mosquitto binary on PATH or in /usr/sbin: install mosquitto (apt-get install mosquitto)")
    workdir = Path(tempfile.mkdtemp(prefix="carewatch-bench-"))
    broker = embedded.start_mosquitto(workdir)
    host, port = broker.url.removeprefix("mqtt://").split(":")
    dbname = create_database(args.database_url)
    database_url = with_dbname(args.database_url, dbname)
    try:
        if args.database_settings:
            tune_database(args.database_url, dbname)
        mode = migrate(database_url)
        provision(database_url)
        print(
            f"setup: mosquitto {broker.url} (carewatch config), PostgreSQL db {dbname} ({mode.value}), "
            f"{DEVICES} devices; PostgreSQL: {server_settings(database_url)}",
            flush=True,
        )
        recorder = Recorder()
        settings = Settings(topic_root=TOPIC_ROOT, mqtt_client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}")
        config = ingest_config(settings)

        # Both persistent sessions exist before the backlog is published, so it is queued for both.
        ceiling_id = f"bench-ceiling-{uuid.uuid4().hex[:6]}"
        create_ceiling_session(host, int(port), ceiling_id)

        def drain_service() -> IngestService:
            return IngestService(
                config=config,
                mqtt_url=broker.url,
                database_url=database_url,
                on_committed=recorder,
                registry=CollectorRegistry(),
            )

        service = drain_service()
        for source in service.sources:  # every lane's session
            source.start()
        service.connected.wait(10)
        time.sleep(0.5)  # SUBACK
        for source in service.sources:
            source.stop()

        n = args.messages
        queued = publish(broker.url, start=0, count=n, rate=0)
        print(
            f"backlog: {n} messages queued at {queued['rate']:.0f}/s, mean payload {queued['mean_bytes']:.0f} bytes",
            flush=True,
        )

        cpu = time.process_time()
        ceiling = run_ceiling(host, int(port), ceiling_id, n)
        ceiling_cpu_us = (time.process_time() - cpu) / n * 1e6
        print(f"ceiling: bare paho drained {n} in {n / ceiling:.2f}s = {ceiling:.0f}/s", flush=True)

        tune_gc()  # the drain stands for an ingest process; the bare ceiling above is paho as shipped
        service = drain_service()
        started, cpu = time.perf_counter(), time.process_time()
        service.start()
        if not recorder.wait_for(n, timeout=max(120.0, n / 1000)):
            fail(f"ingest committed only {recorder.committed} of {n} queued messages")
        drain = n / (recorder.last_commit - started)
        drain_cpu_us = (time.process_time() - cpu) / n * 1e6
        # CPU per message is what the ratio would be on an idle machine; wall time includes contention.
        print(
            f"cpu: ceiling {ceiling_cpu_us:.1f} us/msg, drain {drain_cpu_us:.1f} us/msg "
            f"(cpu ratio {ceiling_cpu_us / drain_cpu_us:.2f})",
            flush=True,
        )
        print(
            f"drain: carewatch ingest committed {n} in {n / drain:.2f}s = {drain:.0f}/s (ratio {drain / ceiling:.2f};"
            f" first commit after {recorder.first_commit - started:.2f}s)",
            flush=True,
        )

        service.stop()
        # Sessions that no longer consume would make the broker queue the live traffic for them too.
        discard_session(host, int(port), ceiling_id)
        for source_id in (config.client_id, f"{config.client_id}-urgent"):
            discard_session(host, int(port), source_id)

        live_count = int(args.rate * args.seconds)
        live_settings = settings.model_copy(
            update={
                "mqtt_share_group": "bench-live" if args.workers > 1 else "",
                "mqtt_client_id": f"{config.client_id}-live",
            }
        )
        workers = LiveWorkers(args.workers, live_settings, broker.url, database_url)
        checkpoints_before = checkpoints(database_url)
        report = publish(broker.url, start=n, count=live_count, rate=args.rate, seconds=args.seconds)
        if not workers.wait_while_progressing(live_count):
            print(f"live: only {workers.total} of {live_count} committed; no progress for 30 s", flush=True)
        workers.stop()
        live_checkpoints = checkpoints(database_url) - checkpoints_before
        # Throughput. An ingest that kept up stored the offered load: every message committed, and the
        # last one no later after its publication than the run's 99th-percentile latency (a backlog that
        # grew would make the last messages the slowest of all). Then live_per_s is the publisher's
        # achieved rate. Otherwise it is what was committed over the time from the first publish to the
        # last commit. Both, and the commit rate over the span of commits (LiveWorkers.commit_rate), are
        # printed on the live: line: with a publisher at exactly 15,000/s the last two scatter by a few
        # per second either side of it (the first and the last batch's latencies).
        p50, p99 = percentile(workers.latencies_ms, 0.5), percentile(workers.latencies_ms, 0.99)
        publish_end = report["started_at"] + report["seconds"]
        live_elapsed = max(workers.last_commit_wall, publish_end) - report["started_at"]
        tail_ms = (workers.last_commit_wall - publish_end) * 1000
        kept_up = workers.total == live_count and tail_ms <= p99
        live = report["rate"] if kept_up else workers.total / live_elapsed
        print(
            f"live: {args.workers} ingest process(es) on one shared subscription; published {live_count} at "
            f"{report['rate']:.0f}/s, committed {workers.total}; kept up: {'yes' if kept_up else 'no'} (last "
            f"commit {tail_ms:.0f} ms after the last publish); {workers.commit_rate():.0f}/s over the span of "
            f"commits, {workers.total / live_elapsed:.0f}/s from first publish to last commit; latency p50 "
            f"{p50:.0f} ms p99 {p99:.0f} ms max {max(workers.latencies_ms, default=0):.0f} ms; "
            f"PostgreSQL checkpoints started meanwhile: {live_checkpoints}",
            flush=True,
        )

        total = n + live_count
        receipts, distinct, rows = count_stored(database_url)
        lost = total - distinct
        duplicated = (receipts - distinct) + max(0, rows - expected_rows(0, total))
        print(
            f"ingest: drain_per_s={drain:.0f} ceiling_per_s={ceiling:.0f} ratio={drain / ceiling:.2f} "
            f"live_per_s={live:.0f} p50_ms={p50:.0f} p99_ms={p99:.0f} lost={lost} duplicated={duplicated}",
            flush=True,
        )
        return 0 if lost == 0 and duplicated == 0 else 1
    finally:
        broker.stop()
        if not args.keep:
            drop_database(args.database_url, dbname)
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
