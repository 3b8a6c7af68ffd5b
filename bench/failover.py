"""Failover: two carewatch nodes, a replicated PostgreSQL and a broker, each failing under a steady fleet.

    python bench/failover.py [--homes 600] [--meters 600] [--load-rate 300] [--press-every-s 2]
                             [--phase-s 30] [--shared-ingest]

On this one machine (loopback, spare ports, data under a temporary directory):
- PostgreSQL 15 primary + synchronous standby managed by pg_auto_failover (a monitor and two nodes,
  bench/pgaf_cluster.py; Debian's ``postgresql-15-auto-failover``), carewatch connecting with the
  multi-host URL (``target_session_attrs=read-write``);
- a real Mosquitto with carewatch's configuration and persistence, on a fixed port (restartable);
- two ``carewatch run`` processes (nodes ``node-a`` and ``node-b``: their own client ids, each with its
  own full subscription as docs/operations.md says for Mosquitto, partition leases of 5 s, each with its
  API for ``/readyz``); ``--shared-ingest`` puts their telemetry in one share group instead (EMQX's way,
  which on Mosquitto loses what devices publish after a broker restart before the ingest subscribes
  again: Mosquitto 2.0 does not persist shared subscriptions; tests/ingest/test_broker_restart.py);
- the fleet: meters publishing readings at ``--load-rate`` per second and an ``sos`` press every
  ``--press-every-s`` seconds in a new home, over MQTT QoS 1 with persistent sessions (paho resends
  what the broker had not acknowledged after a reconnect); the caregivers' webhook in its own process.

Faults, ``--phase-s`` apart: SIGKILL the node holding most partitions (its whole process group, as a
dead host; restarted 10 s after the survivor took over, as its supervisor would: its session queued
what was published meanwhile, and with ``--shared-ingest`` that is the only copy of its share,
eclipse-mosquitto#2662);
SIGKILL the database primary (pg_autoctl and postgres; it is restarted later and rejoins as a
standby); restart the broker (SIGTERM: persistence saved, then started again on the same port).

Figures: ``node_takeover_s`` from the SIGKILL until the survivor's ``/readyz`` says it holds all 64
partitions; ``db_failover_s`` from the primary's SIGKILL until a write through the multi-host URL
commits; ``lost`` messages the broker acknowledged that are not stored; ``duplicated_alerts`` sos
pages beyond one per press; ``missed_alerts`` presses never paged (within 120 s after the run);
``sos_p99_ms`` publish → webhook outside the failover windows (from a fault until 5 s after its
recovery), ``sos_max_ms`` over every press. Targets (issue 17): takeover ≤ 15 s, database failover
≤ 30 s, lost = duplicated = missed = 0, every sos within 60 s, p99 ≤ 500 ms outside the windows.
The last line (one line, cut here at the space before ``missed_alerts``):

    failover: node_takeover_s=<n> db_failover_s=<n> lost=<n> duplicated_alerts=<n>
    missed_alerts=<n> sos_p99_ms=<n> sos_max_ms=<n>

Exit 2 when something it needs is missing (pg_autoctl, mosquitto, the postgres user), 1 when a
target is missed.
"""

from __future__ import annotations

import sys
from pathlib import Path

if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

import storage
from bench.alert_latency import RemoteReceiver, percentile, provision
from bench.pgaf_cluster import AutoFailoverCluster, ClusterError, pg_autoctl
from carewatch.embedded import find_mosquitto, free_port, port_answers, render_mosquitto_conf

ROOT = "bench/ha/v1"
TAKEOVER_TARGET_S, DB_FAILOVER_TARGET_S, SOS_P99_TARGET_MS, SOS_MAX_TARGET_MS = 15, 30, 500, 60_000


class Broker:
    """Mosquitto on a fixed port with persistence in ``workdir``; ``restart`` keeps port and data."""

    def __init__(self, workdir: Path, binary: Path) -> None:
        self.workdir, self.binary, self.port = workdir, binary, free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            render_mosquitto_conf(
                port=self.port, persistence_dir=workdir, log_file=workdir / "mosquitto.log", user="root"
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([str(self.binary), "-c", str(self.conf)])
        deadline = time.monotonic() + 15
        while not port_answers("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # saves its persistence database
            self.process.wait(timeout=30)


class Node:
    """``carewatch run`` as a subprocess in its own process group (a SIGKILL takes its children)."""

    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name, self.workdir = name, workdir
        self.api_port = free_port()
        self.env = {**env, "CAREWATCH_NODE_ID": name, "CAREWATCH_API_PORT": str(self.api_port),
                    "CAREWATCH_MQTT_CLIENT_ID": f"cw-{name}"}  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from carewatch.cli import main; raise SystemExit(main(['run']))"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def partitions(self) -> int | None:
        """How many partitions its detectors hold, from its ``/readyz`` (None if it does not answer)."""
        try:
            body = httpx.get(f"http://127.0.0.1:{self.api_port}/readyz", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        for check in body.get("checks", []):
            if check["name"] == "partitions":
                found = re.search(r"holds (\d+)/", check["detail"])
                return int(found.group(1)) if found else None
        return None


class Fleet:
    """Meters at a steady rate and sos presses, QoS 1 with persistent sessions; remembers every PUBACK."""

    def __init__(self, broker_url: str, meters: int, rate: float) -> None:
        self._port = int(broker_url.rsplit(":", 1)[1])
        self._meters, self._rate = meters, rate
        self.acked: set[tuple[str, int]] = set()
        self.pressed: dict[str, float] = {}  # household → publish time (unix)
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], tuple[str, int]] = {}
        self._early: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        self._load = self._client("bench-ha-load", 0)
        self._press = self._client("bench-ha-press", 1)
        self._thread = threading.Thread(target=self._run_load, daemon=True)

    def _client(self, client_id: str, index: int) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(0.2, 1)
        client.on_publish = lambda c, u, mid, rc, props: self._on_publish(index, mid)
        client.connect("127.0.0.1", self._port)
        client.loop_start()
        return client

    def _on_publish(self, index: int, mid: int) -> None:
        with self._lock:
            key = self._pending.pop((index, mid), None)
            if key is not None:
                self.acked.add(key)
            else:  # acknowledged before publish() returned its mid
                self._early.add((index, mid))

    def _publish(
        self, index: int, client: mqtt.Client, topic: str, body: dict[str, object], key: tuple[str, int]
    ) -> None:
        # Never hold our lock inside paho: its network thread calls _on_publish under paho's own locks.
        info = client.publish(topic, json.dumps(body), qos=1)
        with self._lock:
            if (index, info.mid) in self._early:
                self._early.discard((index, info.mid))
                self.acked.add(key)
            else:
                self._pending[(index, info.mid)] = key

    def start(self) -> None:
        self._thread.start()

    def _run_load(self) -> None:
        registers, seq, sent, start = [1000.0] * self._meters, 0, 0, time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * self._rate)
            while sent < due:
                meter = sent % self._meters
                if meter == 0:
                    seq += 1
                registers[meter] += 0.5
                body = {"ts": int(time.time() * 1000), "seq": seq, "register_l": round(registers[meter], 1)}
                self._publish(0, self._load, f"{ROOT}/dev/m-{meter}/telemetry", body, (f"m-{meter}", seq))
                sent += 1
            time.sleep(0.01)

    def press(self, home: int) -> None:
        household = f"hh-{home}"
        self.pressed[household] = time.time()
        body = {"ts": int(time.time() * 1000), "seq": 1, "event": "sos"}
        self._publish(1, self._press, f"{ROOT}/dev/b-{home}/event", body, (f"b-{home}", 1))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        deadline = time.monotonic() + 60  # what the broker has not acknowledged yet is resent
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.2)
        for client in (self._load, self._press):
            client.disconnect()
            client.loop_stop()


def _write_ok(database_url: str) -> bool:
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=2) as conn:
            conn.execute("INSERT INTO detector_nodes (node_id, alive_until) VALUES ('bench-probe', now())"
                         " ON CONFLICT (node_id) DO UPDATE SET alive_until = now()")  # fmt: skip
        return True
    except psycopg.Error:
        return False


def _wait(predicate: object, timeout_s: float, step: float = 0.1) -> float | None:
    """Seconds until ``predicate()`` is true, or None after ``timeout_s``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(step)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--homes", type=int, default=600)
    parser.add_argument("--meters", type=int, default=600)
    parser.add_argument("--load-rate", type=float, default=300.0)
    parser.add_argument("--press-every-s", type=float, default=2.0)
    parser.add_argument("--phase-s", type=float, default=30.0)
    parser.add_argument("--shared-ingest", action="store_true", help="one share group for the nodes' telemetry")
    args = parser.parse_args()
    mosquitto = find_mosquitto()
    missing = [what for what, ok in (("pg_autoctl (Debian postgresql-15-auto-failover)", pg_autoctl()),
               ("mosquitto (Debian mosquitto)", mosquitto), ("runuser", os.path.exists("/usr/sbin/runuser")
               or os.path.exists("/sbin/runuser"))) if not ok]  # fmt: skip
    if missing or os.geteuid() != 0:
        print(f"failover: cannot run: missing {', '.join(missing) or 'root (to run pg_autoctl as postgres)'}",
              file=sys.stderr)  # fmt: skip
        return 2
    assert mosquitto is not None  # noqa: S101
    workdir = Path(tempfile.mkdtemp(prefix="carewatch-failover-"))
    print(f"work directory: {workdir}", flush=True)
    workdir.chmod(0o755)  # the postgres user (pg_autoctl) works in workdir/pg
    (workdir / "pg").mkdir()
    cluster = AutoFailoverCluster(workdir / "pg")
    broker = Broker(workdir, mosquitto)
    receiver = RemoteReceiver(secrets.token_hex(16))
    nodes: list[Node] = []
    fleet: Fleet | None = None
    windows: list[tuple[float, float]] = []
    moments: list[tuple[float, str]] = []  # (unix time, what happened): to say where slow presses fell
    takeover_s = db_failover_s = float("nan")
    try:
        started = time.monotonic()
        cluster.start()
        print(f"pg_auto_failover: primary + synchronous standby up in {time.monotonic() - started:.0f}s", flush=True)
        database_url = cluster.database_url
        storage.migrate(database_url)
        with psycopg.connect(database_url) as conn:
            provision(conn, args.homes, args.meters, receiver)
        broker.start()
        env = {**os.environ, "CAREWATCH_DATABASE_URL": database_url, "CAREWATCH_MQTT_URL": broker.url,
               "CAREWATCH_TOPIC_ROOT": ROOT,
               "CAREWATCH_MQTT_SHARE_GROUP": f"ha{uuid.uuid4().hex[:4]}" if args.shared_ingest else "",
               "CAREWATCH_LEASE_TTL_S": "5", "CAREWATCH_APP_CHANNEL": "false", "CAREWATCH_LOG_LEVEL": "WARNING",
               "CAREWATCH_DEVICE_RATE_PER_S": "100"}  # fmt: skip
        nodes = [Node("node-a", env, workdir), Node("node-b", env, workdir)]
        for node in nodes:
            node.start()
        if _wait(lambda: [n.partitions() for n in nodes] == [32, 32], 90) is None:
            raise RuntimeError(f"the nodes did not split the partitions: {[n.partitions() for n in nodes]}")
        fleet = Fleet(broker.url, args.meters, args.load_rate)
        fleet.start()
        presses = 0
        stop_pressing = threading.Event()

        def press_loop() -> None:
            nonlocal presses
            while not stop_pressing.wait(args.press_every_s) and presses < args.homes:
                fleet.press(presses)  # type: ignore[union-attr]
                presses += 1

        presser = threading.Thread(target=press_loop, daemon=True)
        presser.start()

        time.sleep(args.phase_s)
        victim = max(nodes, key=lambda n: n.partitions() or 0)
        survivor = next(n for n in nodes if n is not victim)
        fault = time.monotonic()
        moments.append((time.time(), f"{victim.name} killed"))
        victim.kill()
        took = _wait(lambda: survivor.partitions() == 64, 60)
        takeover_s = took if took is not None else float("inf")
        windows.append((time.time() - (time.monotonic() - fault), time.time() + 5))
        print(f"node: SIGKILLed {victim.name}; {survivor.name} holds 64 partitions after {takeover_s:.1f}s", flush=True)
        time.sleep(10)
        victim.start()  # its supervisor restarts it: it comes back and takes its share again
        moments.append((time.time(), f"{victim.name} restarted"))

        time.sleep(args.phase_s)
        primary = cluster.primary()
        if primary is None:
            raise RuntimeError("no primary before the database fault")
        fault_unix, fault = time.time(), time.monotonic()
        moments.append((fault_unix, f"{primary.name} killed"))
        cluster.kill(primary)
        took = _wait(lambda: _write_ok(database_url), 120, step=0.2)
        db_failover_s = took if took is not None else float("inf")
        windows.append((fault_unix, time.time() + 5))
        print(f"database: SIGKILLed {primary.name}; writes commit again after {db_failover_s:.1f}s", flush=True)
        time.sleep(5)
        moments.append((time.time() - 5, "writes commit"))
        cluster.restart(primary)  # the old primary's host is back: it rejoins as a standby

        time.sleep(args.phase_s)
        fault_unix = time.time()
        moments.append((fault_unix, "broker restarted"))
        broker.stop()
        broker.start()
        windows.append((fault_unix, time.time() + 5))
        print("broker: restarted (SIGTERM, persistence saved)", flush=True)

        time.sleep(args.phase_s)
        stop_pressing.set()
        presser.join()
        fleet.stop()
        print(f"fleet: {len(fleet.acked)} messages acknowledged by the broker, {presses} sos presses", flush=True)
        pressed = set(fleet.pressed)

        def all_paged() -> bool:
            bodies = receiver.results()[0]
            return pressed <= {str(b.get("household_id")) for b, _ in bodies if b.get("kind") == "sos"}

        _wait(all_paged, 120, step=1.0)
        time.sleep(3)  # late duplicates would arrive now
        print(f"database after the run:\n{cluster.state()}", flush=True)
        with psycopg.connect(database_url) as conn:
            stored = {(d, int(s)) for d, s in conn.execute("SELECT device_id, seq FROM message_receipts")}
            alerts = Counter(h for (h,) in conn.execute("SELECT household_id FROM alerts WHERE kind = 'sos'"))
    finally:
        if fleet is not None:
            fleet._stop.set()
        for node in nodes:
            node.stop()
        broker.stop()
        cluster.stop()
    deliveries, repeats = receiver.results()
    receiver.stop()

    assert fleet is not None  # noqa: S101
    lost = len(fleet.acked - stored)
    first: dict[str, float] = {}
    pages: Counter[str] = Counter()
    for body, received_unix in deliveries:
        if body.get("kind") == "sos" and body.get("reason") == "new":
            household = str(body["household_id"])
            pages[household] += 1
            first.setdefault(household, received_unix)
    duplicated = sum(n - 1 for n in pages.values() if n > 1) + sum(n - 1 for n in alerts.values() if n > 1)
    missed = sum(1 for h in fleet.pressed if h not in first)
    latencies = {h: (first[h] - at) * 1000 for h, at in fleet.pressed.items() if h in first}
    calm = [ms for h, ms in latencies.items() if not any(lo <= fleet.pressed[h] <= hi for lo, hi in windows)]
    p99 = percentile(calm, 0.99) if calm else float("inf")
    for household, ms in sorted(latencies.items(), key=lambda item: fleet.pressed[item[0]]):
        at = fleet.pressed[household]
        if ms > SOS_P99_TARGET_MS:
            since = [(at - when, what) for when, what in moments if when <= at]
            where = f"{since[-1][0]:.1f}s after {since[-1][1]}" if since else "before any fault"
            outside = "outside" if not any(lo <= at <= hi for lo, hi in windows) else "inside"
            print(f"slow sos: {household} {ms:.0f}ms, pressed {where} ({outside} the windows)", flush=True)
    worst = max(latencies.values()) if latencies else float("inf")
    print(
        f"sos: {len(latencies)}/{len(fleet.pressed)} paged, {len(calm)} outside the failover windows"
        f" (p50 {percentile(calm, 0.5) if calm else float('nan'):.0f} ms);"
        f" receiver repeats (same key) {repeats}",
        flush=True,
    )
    print(
        f"failover: node_takeover_s={takeover_s:.1f} db_failover_s={db_failover_s:.1f} lost={lost}"
        f" duplicated_alerts={duplicated} missed_alerts={missed} sos_p99_ms={p99:.0f} sos_max_ms={worst:.0f}"
    )
    met = (
        takeover_s <= TAKEOVER_TARGET_S
        and db_failover_s <= DB_FAILOVER_TARGET_S
        and lost == duplicated == missed == 0
        and p99 <= SOS_P99_TARGET_MS
        and worst <= SOS_MAX_TARGET_MS
    )
    return 0 if met else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what it started (finally blocks)
    try:
        sys.exit(main())
    except ClusterError as exc:
        print(f"failover: pg_auto_failover failed: {exc}", file=sys.stderr)
        sys.exit(2)
