"""The fault scenarios: each builds the whole system, streams a known fleet through one fault, and proves
from the database and the caregivers' receiver that nothing was lost and nothing was alerted twice.

One scenario, from scratch (nothing shared between scenarios, so one fault cannot hide in another's
leftovers): a private PostgreSQL (``services.PrivatePostgres``, migrated and provisioned), a private
Mosquitto with carewatch's configuration and persistence, optionally a TCP proxy in front of it (the
network fault), the webhook receiver in its own process, ``carewatch run`` (``node.Node``) and the fleet
(``fleet.Fleet``): meters at ``rate`` per second and an incident (an ``sos`` press or a smoke alarm,
alternately, each in its own household) every ``incident_every_s``. After ``lead_s`` the fault is
injected and recovered from; the stream goes on for ``tail_s``; then the fleet waits until the broker
acknowledged everything it sent, and the check waits (up to ``converge_s``) until every acknowledged
message is stored and every incident delivered.

What is proved (``Result``):
- ``lost``: messages the broker acknowledged (PUBACK) that are not in ``message_receipts``;
- ``stored_twice``: ``(device, seq)`` stored more than once;
- ``duplicated_alerts``: alerts of one kind raised more than once for a household, plus distinct
  ``new`` notifications (different idempotency keys) for one alert and caregiver at the receiver;
- ``missed_alerts``: ground-truth incidents whose expected alert was not delivered to the caregiver;
- ``undelivered``: notifications of the incidents' alerts that never reached the receiver;
- ``repeats``: deliveries the receiver saw again with the same idempotency key (allowed: at-least-once
  delivery with a stable key is the contract; reported, never counted as a duplicate).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

import storage
from bench.harness.fleet import Fleet
from bench.harness.node import PARTITIONS, Node
from bench.harness.receiver import RemoteReceiver, provision
from bench.harness.services import (
    Broker,
    PrivatePostgres,
    ServiceError,
    TcpProxy,
    fill_disk,
    free_disk,
    missing_binaries,
)
from carewatch.embedded import find_mosquitto
from simulator.scenarios import ScenarioKind

ROOT = "bench/faults/v1"
KINDS = (ScenarioKind.EMERGENCY_PRESS, ScenarioKind.FIRE)


@dataclass(frozen=True, slots=True)
class Timing:
    """How long each phase lasts and how much the fleet sends."""

    meters: int = 200
    rate: float = 100.0  # readings per second, the "normal" rate
    incident_every_s: float = 1.5
    lead_s: float = 10.0  # streaming before the fault
    tail_s: float = 10.0  # streaming after recovery
    outage_s: float = 3.0  # a restarted service is down this long
    cut_s: float = 60.0  # the network to the broker is down this long
    burst_s: float = 60.0  # 10x the rate this long
    hold_s: float = 30.0  # the database's disk is full this long
    converge_s: float = 120.0  # after the stream, how long everything may take to arrive


FULL = Timing()
QUICK = Timing(meters=60, rate=50.0, incident_every_s=1.0, lead_s=5.0, tail_s=5.0, outage_s=2.0, cut_s=15.0,
               burst_s=15.0, hold_s=10.0, converge_s=90.0)  # fmt: skip


@dataclass
class Result:
    name: str
    acked: int = 0
    stored: int = 0
    lost: int = 0
    stored_twice: int = 0
    incidents: int = 0
    alerts: int = 0
    duplicated_alerts: int = 0
    missed_alerts: int = 0
    undelivered: int = 0
    repeats: int = 0
    seconds: float = 0.0
    figures: dict[str, object] = field(default_factory=dict)
    error: str = ""

    @property
    def passed(self) -> bool:
        return (
            not self.error
            and self.lost == self.stored_twice == 0
            and self.duplicated_alerts == 0
            and (self.missed_alerts == self.undelivered == 0)
        )

    def line(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.figures.items())
        status = "PASS" if self.passed else "FAIL"
        text = (f"  {self.name:<16} {status} acked={self.acked} stored={self.stored} lost={self.lost}"
                f" stored_twice={self.stored_twice} incidents={self.incidents} alerts={self.alerts}"
                f" duplicated_alerts={self.duplicated_alerts} missed_alerts={self.missed_alerts}"
                f" undelivered={self.undelivered} repeats={self.repeats} ({self.seconds:.0f}s) {extra}")  # fmt: skip
        return text + (f"\n    error: {self.error}" if self.error else "")


class Stack:
    """One scenario's whole system; ``close`` tears everything down (also after a failure)."""

    def __init__(self, workdir: Path, timing: Timing, *, proxy: str = "", receiver_delay_s: float = 0.0,
                 small_disk_mb: int = 0, share_group: str = "") -> None:  # fmt: skip
        self.workdir, self.timing = workdir, timing
        mosquitto = find_mosquitto()
        if mosquitto is None:
            raise ServiceError("no mosquitto binary")
        self.pg = PrivatePostgres(workdir / "pg")
        self.broker = Broker(workdir / "mosquitto", mosquitto)
        self.proxy: TcpProxy | None = None
        self.receiver: RemoteReceiver | None = None
        self.node: Node | None = None
        self.fleet: Fleet | None = None
        self.disk: Path | None = None
        self._build(proxy, receiver_delay_s, small_disk_mb, share_group)

    def _build(self, proxy: str, receiver_delay_s: float, small_disk_mb: int, share_group: str) -> None:
        self.pg.init()
        self.pg.start()
        if small_disk_mb:
            self.disk = self.pg.small_tablespace("small", small_disk_mb)
        self.database_url = self.pg.create_database("carewatch", "small" if small_disk_mb else None)
        storage.migrate(self.database_url)
        self.receiver = RemoteReceiver(secrets.token_hex(16), delay_s=receiver_delay_s)
        homes = int(self.timing.lead_s + self.timing.tail_s + max(self.timing.cut_s, self.timing.burst_s,
                    self.timing.hold_s) + 60) * 2  # fmt: skip
        with psycopg.connect(self.database_url) as conn:
            provision(conn, homes, self.timing.meters, self.receiver, smoke_alarms=True)
        self.broker.start()
        if proxy:
            self.proxy = TcpProxy(self.broker.port)
        mqtt_url = self.proxy.url if self.proxy else self.broker.url
        self.mqtt_port = self.proxy.port if self.proxy else self.broker.port
        env = {**os.environ, "CAREWATCH_DATABASE_URL": self.database_url, "CAREWATCH_MQTT_URL": mqtt_url,
               "CAREWATCH_TOPIC_ROOT": ROOT, "CAREWATCH_APP_CHANNEL": "false", "CAREWATCH_LOG_LEVEL": "WARNING",
               "CAREWATCH_RETRY_BASE_S": "0.5", "CAREWATCH_RETRY_CAP_S": "5"}  # fmt: skip
        env.pop("CAREWATCH_CONFIG", None)
        # One node alone subscribes without a share group (carewatch's default); a group is a measurement.
        env["CAREWATCH_MQTT_SHARE_GROUP"] = share_group
        self.node = Node(f"faults-{uuid.uuid4().hex[:4]}", env, self.workdir)
        self.node.start()
        self.wait_ready()
        # The fleet goes through the proxy too unless only carewatch's link is to be cut.
        fleet_port = self.mqtt_port if proxy == "all" else self.broker.port
        self.fleet = Fleet(port=fleet_port, topic_root=ROOT, meters=self.timing.meters, rate=self.timing.rate)

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        assert self.node is not None  # noqa: S101
        deadline = time.monotonic() + timeout_s
        while self.node.partitions() != PARTITIONS:
            if time.monotonic() > deadline:
                raise ServiceError(f"carewatch run was not ready in {timeout_s:.0f}s (see {self.node.log_files[-1]})")
            if self.node.process is not None and self.node.process.poll() is not None:
                raise ServiceError(f"carewatch run exited ({self.node.log_files[-1]})")
            time.sleep(0.2)

    def stored_count(self) -> int:
        try:
            with psycopg.connect(self.database_url, connect_timeout=3) as conn:
                row = conn.execute("SELECT count(*) FROM message_receipts").fetchone()
                return int(row[0]) if row else 0
        except psycopg.Error:
            return -1

    def close(self) -> None:
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                self.fleet.close(timeout_s=0)
        if self.node is not None:
            with contextlib.suppress(Exception):
                self.node.stop()
        if self.proxy is not None:
            self.proxy.close()
        with contextlib.suppress(Exception):
            self.broker.stop()
        if self.receiver is not None:
            with contextlib.suppress(Exception):
                self.receiver.stop()
        if self.disk is not None:
            free_disk(self.disk)
        self.pg.destroy()


# --- the faults ------------------------------------------------------------------------------------
# Each takes the running stack and the result (for its own figures), injects the fault and recovers.
Inject = Callable[[Stack, Result], None]


def _broker_restart(sig: int) -> Inject:
    def inject(stack: Stack, result: Result) -> None:
        stack.broker.stop(sig)
        time.sleep(stack.timing.outage_s)
        stack.broker.start()
        result.figures["autosave_interval_s"] = stack.broker.autosave_interval_s

    return inject


def _broker_sigkill_backlog(stack: Stack, result: Result) -> None:
    """The ingest paused (SIGSTOP) so the broker queues for it, then the broker SIGKILLed: what it loses is
    everything it accepted since its last save and had not yet handed over."""
    assert stack.node is not None  # noqa: S101
    ingest, _ = stack.node.children(stack.mqtt_port)
    if ingest is None:
        raise ServiceError("could not find the ingest child process")
    assert stack.fleet is not None  # noqa: S101
    # Long and fast enough to fill the paused ingest's socket buffer (about 128 KiB: ~1,300 readings), so
    # the broker itself holds a backlog when it dies.
    stack.fleet.rate, published = stack.timing.rate * 10, stack.fleet.published
    os.kill(ingest, signal.SIGSTOP)
    try:
        time.sleep(10.0)
        stack.broker.stop(signal.SIGKILL)
        result.figures["sent_while_paused"] = stack.fleet.published - published
        stack.fleet.rate = stack.timing.rate
        stack.broker.start()
    finally:
        os.kill(ingest, signal.SIGCONT)


def _postgres_restart(stack: Stack, result: Result) -> None:
    stack.pg.stop("fast")
    time.sleep(stack.timing.outage_s)
    stack.pg.start()


def _postgres_sigkill(stack: Stack, result: Result) -> None:
    stack.pg.kill()
    time.sleep(stack.timing.outage_s)
    started = time.monotonic()
    stack.pg.start()  # crash recovery from the WAL
    result.figures["recovery_s"] = round(time.monotonic() - started, 1)


def _ingest_sigkill(stack: Stack, result: Result) -> None:
    assert stack.node is not None  # noqa: S101
    assert stack.fleet is not None  # noqa: S101
    # Batches in flight all the time: kill while the fleet sends at ten times its rate.
    stack.fleet.rate = stack.timing.rate * 10
    time.sleep(2.0)
    ingest, _ = stack.node.children(stack.mqtt_port)
    if ingest is None:
        raise ServiceError("could not find the ingest child process")
    before = stack.stored_count()
    os.kill(ingest, signal.SIGKILL)
    result.figures["stored_at_kill"] = before
    time.sleep(1.0)
    stack.fleet.rate = stack.timing.rate


def _dispatcher_kill(stack: Stack, result: Result) -> None:
    assert stack.node is not None  # noqa: S101
    assert stack.receiver is not None  # noqa: S101
    # The receiver answers 3 s after taking a delivery (Stack receiver_delay_s): killed now, the dispatcher
    # dies with the request in flight; the caregiver has the message, carewatch does not know it.
    seen = len(stack.receiver.results()[0])
    deadline = time.monotonic() + 30
    while len(stack.receiver.results()[0]) == seen:
        if time.monotonic() > deadline:
            raise ServiceError("no delivery started within 30 s")
        time.sleep(0.02)
    _, dispatcher = stack.node.children(stack.mqtt_port)
    if dispatcher is None:
        raise ServiceError("could not find the dispatcher child process")
    os.kill(dispatcher, signal.SIGKILL)
    result.figures["killed_mid_delivery"] = "yes"
    time.sleep(1.0)
    stack.receiver.set_delay(0.2)


def _run_sigkill(stack: Stack, result: Result) -> None:
    assert stack.node is not None  # noqa: S101
    stack.node.kill()
    time.sleep(stack.timing.outage_s)
    started = time.monotonic()
    stack.node.start()
    stack.wait_ready()
    result.figures["restart_ready_s"] = round(time.monotonic() - started, 1)


def _network_cut(stack: Stack, result: Result) -> None:
    assert stack.proxy is not None  # noqa: S101
    stack.proxy.cut()
    time.sleep(stack.timing.cut_s)
    stack.proxy.restore()
    result.figures["cut_s"] = stack.timing.cut_s


def _burst(stack: Stack, result: Result) -> None:
    assert stack.fleet is not None  # noqa: S101
    stack.fleet.rate = stack.timing.rate * 10
    published = stack.fleet.published
    time.sleep(stack.timing.burst_s)
    result.figures["burst_rate"] = round((stack.fleet.published - published) / stack.timing.burst_s)
    result.figures["burst_s"] = stack.timing.burst_s
    stack.fleet.rate = stack.timing.rate


def _disk_full(stack: Stack, result: Result) -> None:
    assert stack.disk is not None  # noqa: S101
    assert stack.fleet is not None  # noqa: S101
    fill_disk(stack.disk)
    time.sleep(2.0)  # batches already past their insert commit; what follows must wait
    stored, acked = stack.stored_count(), len(stack.fleet.acked)
    time.sleep(stack.timing.hold_s)
    stored_after, acked_after = stack.stored_count(), len(stack.fleet.acked)
    # While the disk is full the ingest must neither store (it cannot) nor acknowledge (the broker holds).
    result.figures["held_acked"] = acked_after - acked
    result.figures["stored_while_full"] = stored_after - stored
    free_disk(stack.disk)
    started = time.monotonic()
    while stack.stored_count() < acked_after and time.monotonic() - started < 120:
        time.sleep(0.5)
    result.figures["caught_up_s"] = round(time.monotonic() - started, 1)
    if stored_after != stored:
        result.error = f"{stored_after - stored} messages stored while the disk was full (the fill did not bite)"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    what: str
    inject: Inject
    # Who reaches the broker through the TCP proxy: "all" (devices and carewatch), "carewatch", or nobody.
    proxy: str = ""
    receiver_delay_s: float = 0.0
    small_disk_mb: int = 0
    # Write the broker's persistence database before the stream (SIGUSR1, what an autosave does): the
    # state of any broker that has been up for more than autosave_interval since the ingest subscribed.
    broker_saved_first: bool = False
    share_group: str = ""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("broker_sigterm", "Mosquitto stopped with SIGTERM mid-stream and started again", _broker_restart(15)),
        Scenario(
            "broker_sigkill",
            "Mosquitto killed with SIGKILL mid-stream (after an autosave), started again",
            _broker_restart(9),
            broker_saved_first=True,
        ),
        Scenario("postgres_restart", "PostgreSQL stopped (fast) mid-stream and started again", _postgres_restart),
        Scenario(
            "postgres_sigkill", "PostgreSQL's postmaster and backends SIGKILLed, started again", _postgres_sigkill
        ),
        Scenario("ingest_sigkill", "the ingest child killed with SIGKILL mid-batch", _ingest_sigkill),
        Scenario(
            "dispatcher_kill",
            "the dispatcher child killed with SIGKILL mid-delivery",
            _dispatcher_kill,
            receiver_delay_s=3.0,
        ),
        Scenario("run_sigkill", "carewatch run's process group killed with SIGKILL, started again", _run_sigkill),
        Scenario(
            "network_cut", "every connection to the broker reset and refused (TCP proxy)", _network_cut, proxy="all"
        ),
        Scenario(
            "network_cut_carewatch",
            "carewatch's connections to the broker reset and refused; devices go on publishing (the broker queues)",
            _network_cut,
            proxy="carewatch",
        ),
        Scenario("burst", "ten times the normal rate", _burst),
        Scenario(
            "disk_full",
            "the database's filesystem full (tmpfs tablespace), then space back",
            _disk_full,
            small_disk_mb=96,
        ),
    )
}


# Measurements of known losses, run only when named (docs/operations.md, "Faults"): they show what the
# broker itself loses, which no setting of carewatch can win back.
MEASUREMENTS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "broker_sigkill_unsaved",
            "Mosquitto SIGKILLed before any autosave since the ingest subscribed",
            _broker_restart(9),
        ),
        Scenario(
            "broker_sigkill_backlog",
            "Mosquitto SIGKILLed while it queues for a paused ingest (after an autosave)",
            _broker_sigkill_backlog,
            broker_saved_first=True,
        ),
        Scenario(
            "broker_sigterm_shared",
            "Mosquitto 2.0 restarted (SIGTERM) under a $share subscription",
            _broker_restart(15),
            share_group="faults",
        ),
    )
}


def run_scenario(scenario: Scenario, timing: Timing, workroot: Path | None = None, keep: bool = False) -> Result:
    """Build the system, stream through the fault, prove the invariants; never raises (errors go in ``error``)."""
    result = Result(scenario.name)
    started = time.monotonic()
    missing = missing_binaries()
    if missing:
        result.error = f"missing: {', '.join(missing)}"
        return result
    workdir = Path(tempfile.mkdtemp(prefix=f"carewatch-faults-{scenario.name}-", dir=workroot))
    workdir.chmod(0o755)  # PostgreSQL runs as the postgres user under it
    stack: Stack | None = None
    try:
        stack = Stack(workdir, timing, proxy=scenario.proxy, receiver_delay_s=scenario.receiver_delay_s,
                      small_disk_mb=scenario.small_disk_mb, share_group=scenario.share_group)  # fmt: skip
        _stream(stack, scenario, result)
        _prove(stack, result)
    except (ServiceError, psycopg.Error, OSError, RuntimeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        if stack is not None:
            stack.close()
        result.seconds = time.monotonic() - started
        if not keep and result.passed:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not result.passed:
            result.figures["workdir"] = str(workdir)
    return result


def _stream(stack: Stack, scenario: Scenario, result: Result) -> None:
    fleet, timing = stack.fleet, stack.timing
    assert fleet is not None  # noqa: S101
    stop = threading.Event()
    count = 0

    def incidents() -> None:
        nonlocal count
        while not stop.wait(timing.incident_every_s):
            fleet.incident(count, KINDS[count % len(KINDS)])
            count += 1

    presser = threading.Thread(target=incidents, name="incidents", daemon=True)
    if scenario.broker_saved_first:
        stack.broker.save()
    fleet.start()
    presser.start()
    try:
        time.sleep(timing.lead_s)
        fault_started = time.monotonic()
        scenario.inject(stack, result)
        result.figures.setdefault("fault_s", round(time.monotonic() - fault_started, 1))
        time.sleep(timing.tail_s)
    finally:
        stop.set()
        presser.join()
    fleet.close(timeout_s=timing.converge_s)
    if fleet.pending:
        result.figures["never_acknowledged_by_broker"] = fleet.pending


def _prove(stack: Stack, result: Result) -> None:
    fleet, receiver = stack.fleet, stack.receiver
    assert fleet is not None  # noqa: S101
    assert receiver is not None  # noqa: S101
    acked = set(fleet.acked)
    truths = list(fleet.truths)
    result.acked, result.incidents = len(acked), len(truths)

    def snapshot() -> tuple[Counter[tuple[str, int]], list[tuple[int, str, str]], list[tuple[str, int, str]]]:
        with psycopg.connect(stack.database_url, connect_timeout=5) as conn:
            stored = Counter({(d, int(s)): int(n) for d, s, n in conn.execute(
                "SELECT device_id, seq, count(*) FROM message_receipts GROUP BY 1, 2")})  # fmt: skip
            alerts = [(int(a), h, k) for a, h, k in conn.execute("SELECT alert_id, household_id, kind FROM alerts")]
            notes = [(key, int(a), st) for key, a, st in conn.execute(
                "SELECT idempotency_key, alert_id, status FROM notifications")]  # fmt: skip
        return stored, alerts, notes

    def incident_alerts(alerts: list[tuple[int, str, str]]) -> dict[int, set[int]]:
        by_truth: dict[int, set[int]] = {}
        for i, truth in enumerate(truths):
            want = truth.expected_alert.value if truth.expected_alert else None
            by_truth[i] = {a for a, h, k in alerts if h == truth.household_id and k == want}
        return by_truth

    deadline = time.monotonic() + stack.timing.converge_s
    while True:
        try:
            stored, alerts, notes = snapshot()
            delivered = {key for key, _ in receiver.keys()[0]}
            wanted = incident_alerts(alerts)
            ids = set().union(*wanted.values()) if wanted else set()
            done = acked <= set(stored) and all(wanted.values()) and all(
                key in delivered for key, a, _ in notes if a in ids)  # fmt: skip
        except psycopg.Error:
            done = False
        if done or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    time.sleep(3.0)  # late duplicates would arrive now
    stored, alerts, notes = snapshot()
    deliveries, result.repeats = receiver.keys()
    delivered = {key for key, _ in deliveries}
    result.stored = sum(stored.values())
    result.lost = len(acked - set(stored))
    result.stored_twice = sum(n - 1 for n in stored.values() if n > 1)
    result.alerts = len(alerts)
    per_kind = Counter((h, k) for _, h, k in alerts)
    result.duplicated_alerts = sum(n - 1 for n in per_kind.values() if n > 1)
    new_pages = Counter(
        (body.get("alert_id"), body.get("caregiver_id")) for _, body in deliveries if body.get("reason") == "new"
    )
    result.duplicated_alerts += sum(n - 1 for n in new_pages.values() if n > 1)
    wanted = incident_alerts(alerts)
    ids = set().union(*wanted.values()) if wanted else set()
    keys_of: dict[int, set[str]] = {}
    for key, alert_id, _ in notes:
        keys_of.setdefault(alert_id, set()).add(key)
    result.missed_alerts = sum(
        1 for found in wanted.values() if not any(keys_of.get(a, set()) & delivered for a in found)
    )
    result.undelivered = sum(1 for key, a, _ in notes if a in ids and key not in delivered)
    first: dict[tuple[str, str], float] = {}
    for body, at in receiver.results()[0]:
        page = (str(body.get("household_id")), str(body.get("kind")))
        first[page] = min(at, first.get(page, at))
    waits = [first[(t.household_id, str(t.expected_alert))] - t.start_ms / 1000 for t in truths
             if t.expected_alert is not None and (t.household_id, str(t.expected_alert)) in first]  # fmt: skip
    if waits:
        # Press (or alarm) published → its caregiver's webhook, the worst over the run (faults included).
        result.figures["alert_max_s"] = round(max(waits), 1)
    if result.lost:
        result.figures["lost_devices"] = ",".join(sorted({d for d, _ in acked - set(stored)})[:5])
