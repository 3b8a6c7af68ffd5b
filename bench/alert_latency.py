"""Alert latency under load: device publish of an ``sos`` → the caregiver's webhook, through everything.

    .venv/bin/python bench/alert_latency.py [--presses 1000] [--press-rate 50] [--load-rate 5000]
                                            [--workers 4] [--warmup-s 5]

Real parts only: a private Mosquitto with carewatch's configuration (``carewatch.embedded``), a fresh
database on the local PostgreSQL (127.0.0.1:5432; the run fails loudly if it is unreachable), and the
whole pipeline (``carewatch.runtime.Pipeline``: ingest → detectors → alerting → dispatcher workers).
A separate process publishes meter readings from provisioned meters at ``--load-rate`` per second
(paced in 10 ms ticks, QoS 1); this process presses ``sos`` on ``--presses`` call buttons of as many
households (``--press-rate`` per second), each household with its own caregiver whose webhook is a
``WebhookReceiver`` in a child process (a caregiver's endpoint is never inside carewatch's process,
so it must not compete for carewatch's GIL). Latency = receiver's arrival time - the press's publish
time (one wall clock, one machine).

The last line is ``alert_latency: delivered=<n>/<n> p50_ms=<n> p99_ms=<n> max_ms=<n> duplicates=<n>``;
duplicates are distinct sos notifications beyond one per household; repeats of one idempotency key are
counted separately by the receiver and reported on the line before, with the load actually achieved.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, ``bench/`` is sys.path[0], where ``bench/ingest.py`` would shadow the ``ingest``
# package: put the repository root there instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import json
import logging
import multiprocessing
import secrets
import select
import tempfile
import time
import uuid

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg import sql

import storage
from bench.harness.receiver import RemoteReceiver, percentile, provision
from carewatch.embedded import start_mosquitto
from carewatch.runtime import Pipeline
from carewatch.settings import Settings
from simulator.wire import WireConnection

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
ROOT = "bench/care/v1"


def _client(url: str, name: str) -> mqtt.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, int(port))
    client.loop_start()
    return client


def load_publisher(url: str, meters: int, rate: float, stop: multiprocessing.synchronize.Event, sent: object) -> None:
    """Child process: meter readings at ``rate``/s round-robin over ``meters`` meters, in 10 ms ticks.

    On the simulator's wire publisher, not paho: the load stands for thousands of devices on other
    machines, so the harness should spend as little of this machine's CPU on it as it can (paho's QoS 1
    publishing costs about 3.5 times as much per message; simulator/wire.py).
    """
    host, port = url.removeprefix("mqtt://").split(":")
    conn = WireConnection(f"bench-load-{uuid.uuid4().hex[:6]}")
    conn.open(host, int(port))
    registers = [1000.0] * meters
    seqs = [0] * meters
    index = 0
    start = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - start) * rate)
        while conn.sent < due and conn.in_flight < 20_000:
            meter = index % meters
            index += 1
            registers[meter] += 0.5
            seqs[meter] += 1
            body = {"ts": int(time.time() * 1000), "seq": seqs[meter], "register_l": round(registers[meter], 1)}
            conn.publish(f"{ROOT}/dev/m-{meter}/telemetry", json.dumps(body).encode())
        conn.flush()
        while select.select([conn], [], [], 0)[0]:
            conn.read()
        conn.keepalive()
        sent.value = conn.sent  # type: ignore[attr-defined]
        time.sleep(0.01)
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presses", type=int, default=1000)
    parser.add_argument("--press-rate", type=float, default=50.0)
    parser.add_argument("--load-rate", type=float, default=5000.0)
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute("SELECT 1")
    except psycopg.Error as exc:
        print(f"alert_latency: PostgreSQL at {ADMIN_URL} is unreachable: {exc}", file=sys.stderr)
        return 2
    dbname = f"cw_bench_{secrets.token_hex(4)}"
    database_url = f"postgresql://postgres@127.0.0.1:5432/{dbname}"
    workdir = Path(tempfile.mkdtemp(prefix="carewatch-bench-"))
    broker = start_mosquitto(workdir)
    receiver = RemoteReceiver(secrets.token_hex(16))
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    stop_load = multiprocessing.Event()
    sent = multiprocessing.Value("q", 0)
    loader = multiprocessing.Process(
        target=load_publisher, args=(broker.url, args.meters, args.load_rate, stop_load, sent), daemon=True
    )
    pipeline: Pipeline | None = None
    received: dict[str, float] = {}
    stages: tuple[list[float] | None, list[float] | None] | None = None
    stored: tuple[int] | None = None
    try:
        storage.migrate(database_url)
        with psycopg.connect(database_url) as conn:
            provision(conn, args.presses, args.meters, receiver)
        settings = Settings(
            topic_root=ROOT,
            mqtt_client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}",
            dispatch_workers=args.workers,
            app_channel=False,
            device_rate_per_s=100.0,
            log_level="WARNING",
        )
        pipeline = Pipeline(settings=settings, mqtt_url=broker.url, database_url=database_url, serve_api=False)
        pipeline.start()
        loader.start()
        time.sleep(args.warmup_s)
        load_started, load_sent_at_start = time.monotonic(), sent.value

        presser = _client(broker.url, "bench-press")
        pressed_at: dict[str, float] = {}
        start = time.monotonic()
        for i in range(args.presses):
            delay = start + i / args.press_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps({"ts": int(time.time() * 1000), "seq": 1, "event": "sos"})
            pressed_at[f"hh-{i}"] = time.time()
            presser.publish(f"{ROOT}/dev/b-{i}/event", body, qos=1)
        receiver.wait_for(args.presses, timeout=60)
        load_rate = (sent.value - load_sent_at_start) / (time.monotonic() - load_started)
        time.sleep(1.0)  # late repeats would arrive now
        presser.disconnect()
        presser.loop_stop()
    finally:
        stop_load.set()
        if loader.is_alive():
            loader.join(timeout=10)
        if pipeline is not None:
            pipeline.stop()
        with psycopg.connect(database_url) as conn:
            stored = conn.execute("SELECT count(*) FROM readings").fetchone()
            # Other alerts the background load raised compete with the presses for the dispatcher.
            other_alerts = conn.execute(
                "SELECT kind, count(*) FROM alerts WHERE kind <> 'sos' GROUP BY kind ORDER BY kind"
            ).fetchall()
            print(f"other alerts during the run: {dict(other_alerts) or 'none'}", flush=True)
            # Where the time goes, from the database's own stamps: publish → event committed (broker +
            # ingest), → alert opened (detectors), → first delivery (alerting).
            received = dict(
                conn.execute(
                    "SELECT 'hh-' || substr(device_id, 3), extract(epoch FROM received_at)::float8 FROM events"
                    " WHERE kind = 'sos'"
                ).fetchall()
            )
            stages = conn.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM a.opened_at"
                " - e.received_at)), percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY"
                " extract(epoch FROM a.first_notified_at - a.opened_at))"
                " FROM alerts a JOIN events e ON e.device_id = 'b-' || substr(a.household_id, 4) AND e.kind = 'sos'"
                " WHERE a.kind = 'sos'"
            ).fetchone()
        deliveries, repeats = receiver.results()
        receiver.stop()
        broker.stop()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))

    first: dict[str, float] = {}
    sos_notifications = 0
    for notification, received_unix in deliveries:
        if notification.get("kind") != "sos" or notification.get("reason") != "new":
            continue
        sos_notifications += 1
        household = str(notification["household_id"])
        first.setdefault(household, received_unix)
    latencies = [(first[h] - pressed_at[h]) * 1000 for h in first if h in pressed_at]
    duplicates = sos_notifications - len(first)
    ingest_ms = [(at - pressed_at[h]) * 1000 for h, at in received.items() if h in pressed_at]
    if ingest_ms and stages and stages[0] and stages[1]:
        print(
            f"stages p50/p99 ms: publish→ingested {percentile(ingest_ms, 0.5):.0f}/{percentile(ingest_ms, 0.99):.0f},"
            f" ingested→alert opened {stages[0][0] * 1000:.0f}/{stages[0][1] * 1000:.0f},"
            f" opened→delivered {stages[1][0] * 1000:.0f}/{stages[1][1] * 1000:.0f}"
        )
    print(
        f"load: {load_rate:.0f} readings/s published during the presses ({stored[0] if stored else 0} stored);"
        f" presses {args.presses} at {args.press_rate:.0f}/s; dispatcher workers {args.workers};"
        f" receiver repeats (same key) {repeats}"
    )
    if not latencies:
        print(f"alert_latency: delivered=0/{args.presses} p50_ms=0 p99_ms=0 max_ms=0 duplicates={duplicates}")
        return 1
    print(
        f"alert_latency: delivered={len(latencies)}/{args.presses} p50_ms={percentile(latencies, 0.5):.0f}"
        f" p99_ms={percentile(latencies, 0.99):.0f} max_ms={max(latencies):.0f} duplicates={duplicates}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
