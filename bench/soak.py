"""Soak: the whole system at the ingest's live rate for a long time; memory must stay flat, lag must not grow.

    python bench/soak.py --minutes 30 [--rate 15000] [--window-min 5] [--press-every-s 5]
                         [--ingest-processes 2] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Real parts only: a private Mosquitto with carewatch's configuration and persistence (spare loopback
port), a fresh database on the local PostgreSQL, and ``carewatch run`` as a subprocess with its child
processes (ingest, detectors, dispatcher, API). The fleet is the ingest benchmark's 10,000 devices
(8,000 water meters sending two-reading NB-IoT batches and status heartbeats, 2,000 alarms and buttons
sending status), published at ``--rate`` messages per second by a raw-socket QoS 1 publisher in its own
process, plus an ``sos`` press every ``--press-every-s`` seconds in a home whose volunteer's webhook is
a receiver in its own process: detectors run, alerts open and deliveries are made all along.

Every 10 s it samples the resident set size (RSS) of every process (carewatch's, each by its role, and
the broker's), the broker's stored-message count (``$SYS/broker/store/messages/count``) and the
detectors' feed lag (``/metrics``). Afterwards it prints, per ``--window-min`` window, the ingest lag
(device timestamp, set at publish, to the ingest's receipt: ``message_receipts``) p50/p99/max, the sos
publish → webhook p50/max, and the RSS of each process at the window's end.

Verdicts (issue 16): memory flat: each process's RSS at the end within 10 % of its RSS at the end of
the first window (warm-up; a process under 50 MiB may grow by 5 MiB); lag not growing: the last
window's p99 at most twice the second window's p99 plus 250 ms; nothing lost (every message the broker
acknowledged is stored) and every sos delivered. The last line:

    soak: minutes=<n> rate_per_s=<n> rss_growth_pct=<n> lag_p99_first_ms=<n> lag_p99_last_ms=<n>
    broker_queued_max=<n> lost=<n> sos=<delivered>/<pressed>

Exit 2 when something it needs is missing, 1 when a verdict fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import json
import math
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

import storage
from bench.alert_latency import RemoteReceiver, percentile
from bench.alert_latency import provision as provision_care_homes
from bench.failover import Broker, Node
from bench.ingest import create_database, drop_database, with_dbname
from bench.ingest_fleet import DEVICES, TOPIC_ROOT
from bench.ingest_fleet import provision as provision_fleet
from carewatch.embedded import find_mosquitto

SAMPLE_S = 10.0
RSS_GROWTH_LIMIT, SMALL_PROCESS_MIB, SMALL_GROWTH_MIB = 0.10, 50.0, 5.0
LAG_GROWTH_FACTOR, LAG_SLACK_MS = 2.0, 250.0


@dataclass
class Sample:
    at: float  # unix time
    rss_mib: dict[str, float]  # process role → RSS
    broker_queued: int | None
    feed_lag_s: float | None


@dataclass
class Samples:
    items: list[Sample] = field(default_factory=list)
    broker_queued: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    except OSError:
        return []
    return found


def _role(pid: int) -> str:
    """A stable name for a process of the tree: carewatch names its children (``cw-ingest``...)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"pid-{pid}"
    if comm.startswith("cw-"):
        return comm
    if b"resource_tracker" in argv:
        return "mp-resource-tracker"
    return comm or f"pid-{pid}"


def process_tree_rss(root: int) -> dict[str, float]:
    """RSS of ``root`` and every descendant, keyed by role (a role used twice gets ``#2``...)."""
    out: dict[str, float] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        rss = _rss_mib(pid)
        if rss is not None:
            role = "carewatch run" if pid == root else _role(pid)
            name, n = role, 1
            while name in out:
                n += 1
                name = f"{role}#{n}"
            out[name] = rss
        stack += sorted(_children(pid))
    return out


def _feed_lag(api_port: int) -> float | None:
    try:
        text = httpx.get(f"http://127.0.0.1:{api_port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return None
    found = re.search(r"^carewatch_feed_lag_seconds(?:\{[^}]*\})? ([-0-9.e+]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _watch_broker(url: str, samples: Samples) -> mqtt.Client:
    host, port = url.removeprefix("mqtt://").split(":")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-sys-{uuid.uuid4().hex[:6]}")

    def on_message(_c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        with samples.lock:
            samples.broker_queued = int(message.payload)

    client.on_connect = lambda c, *_: c.subscribe("$SYS/broker/store/messages/count")
    client.on_message = on_message
    client.connect(host, int(port))
    client.loop_start()
    return client


def _publish(broker_url: str, count: int, rate: float) -> subprocess.Popen[str]:
    spec = json.dumps({"url": broker_url, "start": 0, "count": count, "rate": rate})
    code = (
        f"import json, sys; from bench.ingest_fleet import publish_main; sys.exit(publish_main(json.loads({spec!r})))"
    )
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen([sys.executable, "-c", code], cwd=root, stdout=subprocess.PIPE, text=True)


class Presser:
    """An ``sos`` in a new home every ``every_s`` seconds (QoS 1); remembers when each was published."""

    def __init__(self, broker_url: str, homes: int, every_s: float) -> None:
        host, port = broker_url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"soak-press-{uuid.uuid4().hex[:6]}")
        self.client.connect(host, int(port))
        self.client.loop_start()
        self.homes, self.every_s = homes, every_s
        self.pressed: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        home = 0
        while not self._stop.wait(self.every_s) and home < self.homes:
            body = {"ts": int(time.time() * 1000), "seq": 1, "event": "sos"}
            self.pressed[f"hh-{home}"] = time.time()
            self.client.publish(f"{TOPIC_ROOT}/dev/b-{home}/event", json.dumps(body), qos=1).wait_for_publish(10)
            home += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()


def _sampler(node: Node, broker: Broker, samples: Samples, stop: threading.Event) -> None:
    while not stop.wait(SAMPLE_S):
        rss = process_tree_rss(node.process.pid) if node.process else {}
        if broker.process is not None and (broker_rss := _rss_mib(broker.process.pid)) is not None:
            rss["mosquitto"] = broker_rss
        with samples.lock:
            samples.items.append(Sample(time.time(), rss, samples.broker_queued, _feed_lag(node.api_port)))


def _lag_windows(database_url: str, start: float, window_s: float) -> list[tuple[int, int, float, float, float]]:
    """Per window: (index, messages, p50 ms, p99 ms, max ms) of receipt - device time."""
    query = """
        SELECT floor((extract(epoch FROM ts) - %(start)s) / %(window)s)::int AS w, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
               max(lag)
        FROM (SELECT ts, extract(epoch FROM received_at - ts) * 1000 AS lag FROM message_receipts
              WHERE channel <> 'event') m
        GROUP BY 1 ORDER BY 1"""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(query, {"start": start, "window": window_s}).fetchall()
    return [(int(w), int(n), float(p50), float(p99), float(mx)) for w, n, p50, p99, mx in rows if w >= 0]


def _stored_messages(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM message_receipts WHERE device_id NOT LIKE 'b-%%'").fetchone()
    return int(row[0]) if row else 0


def _rss_at(samples: list[Sample], until: float) -> dict[str, float]:
    before = [s for s in samples if s.at <= until]
    return before[-1].rss_mib if before else {}


def _growth_pct(warm: dict[str, float], end: dict[str, float]) -> tuple[float, list[str]]:
    """The largest relative growth, and the processes whose growth breaks the flat-memory verdict."""
    worst, broken = 0.0, []
    for role, start_mib in warm.items():
        if role not in end or start_mib <= 0:
            continue
        grown = end[role] - start_mib
        worst = max(worst, grown / start_mib * 100)
        allowed = SMALL_GROWTH_MIB if start_mib < SMALL_PROCESS_MIB else start_mib * RSS_GROWTH_LIMIT
        if grown > allowed:
            broken.append(f"{role} {start_mib:.0f}→{end[role]:.0f} MiB")
    return worst, broken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=15_000.0)
    parser.add_argument("--window-min", type=float, default=5.0)
    parser.add_argument("--press-every-s", type=float, default=5.0)
    parser.add_argument("--ingest-processes", type=int, default=2)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args()
    mosquitto = find_mosquitto()
    if mosquitto is None:
        print("soak: cannot run: mosquitto (Debian mosquitto) is not installed", file=sys.stderr)
        return 2
    try:
        dbname = create_database(args.database_url)
    except psycopg.Error as exc:
        print(f"soak: cannot run: PostgreSQL at {args.database_url} is unreachable: {exc}", file=sys.stderr)
        return 2
    database_url = with_dbname(args.database_url, dbname)
    workdir = Path(tempfile.mkdtemp(prefix="carewatch-soak-"))
    print(f"work directory: {workdir}; database {dbname}", flush=True)
    seconds, window_s = args.minutes * 60, args.window_min * 60
    homes = int(seconds / args.press_every_s) + 1
    storage.migrate(database_url)
    provision_fleet(database_url)
    receiver = RemoteReceiver(secrets.token_hex(16))
    with psycopg.connect(database_url) as conn:
        provision_care_homes(conn, homes, 0, receiver)
    broker = Broker(workdir, mosquitto)
    broker.start()
    env = {**os.environ, "CAREWATCH_DATABASE_URL": database_url, "CAREWATCH_MQTT_URL": broker.url,
           "CAREWATCH_TOPIC_ROOT": TOPIC_ROOT, "CAREWATCH_APP_CHANNEL": "false", "CAREWATCH_LOG_LEVEL": "WARNING",
           "CAREWATCH_INGEST_PROCESSES": str(args.ingest_processes)}  # fmt: skip
    node = Node("soak", env, workdir)
    samples, stop_sampling = Samples(), threading.Event()
    watcher = _watch_broker(broker.url, samples)
    publisher: subprocess.Popen[str] | None = None
    presser: Presser | None = None
    try:
        node.start()
        deadline = time.monotonic() + 90
        while (node.partitions() or 0) < 64:
            if time.monotonic() > deadline:
                raise RuntimeError(f"carewatch run did not become ready (log in {workdir})")
            time.sleep(0.5)
        sampler = threading.Thread(target=_sampler, args=(node, broker, samples, stop_sampling), daemon=True)
        sampler.start()
        count = int(args.rate * seconds)
        start = time.time()
        publisher = _publish(broker.url, count, args.rate)
        presser = Presser(broker.url, homes, args.press_every_s)
        presser.start()
        print(f"soak: {count} messages at {args.rate:.0f}/s over {args.minutes:g} min from {DEVICES} devices,"
              f" an sos every {args.press_every_s:g} s", flush=True)  # fmt: skip
        out, _ = publisher.communicate(timeout=seconds + 600)
        if publisher.returncode != 0:
            raise RuntimeError(f"the publisher failed (exit {publisher.returncode})")
        report = json.loads(out.strip().splitlines()[-1])
        presser.stop()
        end = time.time()
        drained = time.monotonic() + 300
        while _stored_messages(database_url) < count and time.monotonic() < drained:
            time.sleep(2)
        wanted = set(presser.pressed)
        paged = time.monotonic() + 120
        while time.monotonic() < paged:
            got = {str(b.get("household_id")) for b, _ in receiver.results()[0] if b.get("kind") == "sos"}
            if wanted <= got:
                break
            time.sleep(1)
        stored = _stored_messages(database_url)
        windows = _lag_windows(database_url, start, window_s)
    finally:
        stop_sampling.set()
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
        if presser is not None:
            presser._stop.set()
        node.stop()
        watcher.disconnect()
        watcher.loop_stop()
        broker.stop()
    deliveries, _repeats = receiver.results()
    receiver.stop()
    assert presser is not None  # noqa: S101 - set before the run could finish
    if not args.keep_database:
        drop_database(args.database_url, dbname)

    first_page: dict[str, float] = {}
    for body, received in deliveries:
        if body.get("kind") == "sos":
            first_page.setdefault(str(body["household_id"]), received)
    sos_ms = {h: (first_page[h] - at) * 1000 for h, at in presser.pressed.items() if h in first_page}
    history = samples.items
    print(f"publisher: {report['published']} messages at {report['rate']:.0f}/s achieved", flush=True)
    print("window  messages   lag_p50_ms  lag_p99_ms  lag_max_ms  sos_p50_ms  sos_max_ms  feed_lag_s  queued  rss_mib")
    for w, n, p50, p99, mx in windows:
        lo, hi = start + w * window_s, start + (w + 1) * window_s
        in_window = [ms for h, ms in sos_ms.items() if lo <= presser.pressed[h] < hi]
        at_end = [s for s in history if lo <= s.at < hi]
        lag = max((s.feed_lag_s or 0.0 for s in at_end), default=0.0)
        queued = max((s.broker_queued or 0 for s in at_end), default=0)
        rss = ", ".join(f"{k}={v:.0f}" for k, v in sorted(_rss_at(history, hi).items()))
        sos_p50 = percentile(in_window, 0.5) if in_window else float("nan")
        sos_max = max(in_window) if in_window else float("nan")
        print(f"{w:>6}  {n:>8}  {p50:>10.0f}  {p99:>10.0f}  {mx:>10.0f}  {sos_p50:>10.0f}  {sos_max:>10.0f}"
              f"  {lag:>10.1f}  {queued:>6}  {rss}")  # fmt: skip

    warm = _rss_at(history, start + window_s)
    growth, broken = _growth_pct(warm, history[-1].rss_mib if history else {})
    full = [w for w in windows if start + (w[0] + 1) * window_s <= end + 1]
    base = full[1] if len(full) > 2 else (full[0] if full else None)
    last = full[-1] if full else None
    lag_ok = base is not None and last is not None and last[3] <= base[3] * LAG_GROWTH_FACTOR + LAG_SLACK_MS
    lost = max(0, count - stored)
    queued_max = max((s.broker_queued or 0 for s in history), default=0)
    if broken:
        print(f"memory grew beyond the verdict: {'; '.join(broken)}")
    if not lag_ok:
        print("lag grew: the last window's p99 is more than twice the baseline window's plus 250 ms")
    print(
        f"soak: minutes={args.minutes:g} rate_per_s={report['rate']:.0f} rss_growth_pct={growth:.1f}"
        f" lag_p99_first_ms={base[3] if base else math.nan:.0f} lag_p99_last_ms={last[3] if last else math.nan:.0f}"
        f" broker_queued_max={queued_max} lost={lost} sos={len(sos_ms)}/{len(presser.pressed)}"
    )
    ok = not broken and lag_ok and lost == 0 and len(sos_ms) == len(presser.pressed)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
