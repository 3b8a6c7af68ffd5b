"""Partition leases on the machine's PostgreSQL: ownership moves when a node stops renewing (dies) and at
once on a clean stop; a node that lost its lease has its findings refused (no alert written); the
replay of a paging finding after a takeover never pages twice.

The end-to-end takeover with two real nodes is tests/test_node_takeover.py. The database failover
(pg_auto_failover) is checked by bench/failover.py, not here: setting up a monitor, a primary and a
synchronous standby and failing over takes longer than the suite's budget (docs/operations.md).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerting.service import AlertingConfig
from carewatch.detector_runner import DetectorRunner
from carewatch.partition_state import Partition
from carewatch.partitions import PARTITIONS, LeaseKeeper, partition_of
from detectors import DetectorSuiteConfig, Engine
from schemas import evidence as ev
from schemas.api import HouseholdCreate
from schemas.findings import Finding
from schemas.kinds import AlertKind, Severity
from storage import leases, registry
from tests.support import wait_until

pytestmark = pytest.mark.services

HOUSEHOLD = "hh-fence"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def free_leases(database_url: str) -> None:
    """Every test starts with no node and no owner (tests of this module share a database)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE detector_leases SET owner = NULL, expires_at = '-infinity'")
        conn.execute("DELETE FROM detector_nodes")


def _owners(database_url: str) -> dict[str | None, int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT CASE WHEN expires_at > clock_timestamp() THEN owner END, count(*) FROM detector_leases GROUP BY 1"
        ).fetchall()
    return {owner: int(count) for owner, count in rows}


class _HandOver:
    """What the runner does for a bare keeper: hand over at once whatever the keeper offers."""

    def __init__(self, *keepers: LeaseKeeper, database_url: str = "") -> None:
        self._keepers = keepers
        self._database_url = database_url  # given: wake the keeper once handed over, as the runner does
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = psycopg.connect(self._database_url, autocommit=True) if self._database_url else None
        while not self._stop.wait(0.05):
            for keeper in self._keepers:
                offered = keeper.offered()
                if offered:
                    tenures = keeper.tenures()
                    keeper.handed_over({p: tenures[p] for p in offered if p in tenures})
                    if conn is not None:
                        try:
                            keeper.wake(conn)
                        except psycopg.OperationalError:  # a test cut the connections: reconnect
                            conn.close()
                            conn = psycopg.connect(self._database_url, autocommit=True)
                            keeper.wake(conn)
        if conn is not None:
            conn.close()

    def __enter__(self) -> _HandOver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _keeper(database_url: str, node_id: str, ttl_s: float) -> LeaseKeeper:
    return LeaseKeeper(conninfo=database_url, node_id=node_id, ttl_s=ttl_s, renew_s=0.2)


def test_partitions_move_to_the_survivor_when_a_node_stops_renewing(database_url: str) -> None:
    a, b = _keeper(database_url, "node-a", 2.0), _keeper(database_url, "node-b", 2.0)
    with _HandOver(a, b):
        a.start()
        wait_until(lambda: len(a.tenures()) == PARTITIONS, timeout=10)
        b.start()  # a second node: the first hands over half
        wait_until(lambda: len(a.tenures()) == len(b.tenures()) == PARTITIONS // 2, timeout=15)
        assert _owners(database_url) == {"node-a": 32, "node-b": 32}
        before = b.tenures()
        # Node b dies: its renewals stop, nothing is released.
        b._stopping.set()
        assert b._thread is not None
        b._thread.join()
        died = time.monotonic()
        wait_until(lambda: len(a.tenures()) == PARTITIONS, timeout=15)
        took = time.monotonic() - died
        assert took >= 1.0  # not before the lease expired ...
        assert took < 2.0 + 3.0  # ... and soon after (expiry 2 s, a renewal cycle, the node expiry)
        after = a.tenures()
        assert all(after[p] > token for p, token in before.items())  # every takeover is a new tenure
        assert _owners(database_url) == {"node-a": 64}
        a.stop()
    assert _owners(database_url) == {None: 64}


def test_a_clean_stop_releases_the_partitions_at_once(database_url: str) -> None:
    a, b = _keeper(database_url, "node-a", 30.0), _keeper(database_url, "node-b", 30.0)
    with _HandOver(a, b):
        a.start()
        b.start()
        wait_until(lambda: len(a.tenures()) == len(b.tenures()) == PARTITIONS // 2, timeout=15)
        stopped = time.monotonic()
        b.stop()  # releases, and leaves the node table: a takes everything without waiting 30 s
        wait_until(lambda: len(a.tenures()) == PARTITIONS, timeout=10)
        assert time.monotonic() - stopped < 5.0
        a.stop()


def test_a_joining_node_gets_its_share_without_waiting_for_renewals(database_url: str) -> None:
    """A node that joins is announced, the others offer, hand over and release at once, and the joining
    node takes the partitions when they are released: well within one renewal period (5 s here),
    where it used to take up to three (notice the node, release, acquire)."""
    renew_s = 5.0
    a = LeaseKeeper(conninfo=database_url, node_id="node-a", ttl_s=30.0, renew_s=renew_s)
    b = LeaseKeeper(conninfo=database_url, node_id="node-b", ttl_s=30.0, renew_s=renew_s)
    with _HandOver(a, b, database_url=database_url):
        a.start()
        wait_until(lambda: len(a.tenures()) == PARTITIONS, timeout=10)
        joined = time.monotonic()
        b.start()
        wait_until(lambda: len(a.tenures()) == len(b.tenures()) == PARTITIONS // 2, timeout=15, interval=0.02)
        assert time.monotonic() - joined < renew_s / 2
        assert _owners(database_url) == {"node-a": 32, "node-b": 32}
        b.stop()
        a.stop()


def test_leases_stay_with_their_nodes_when_the_database_comes_back(database_url: str) -> None:
    """A database failover that outlasts the lease: every lease and heartbeat expired while nobody
    could renew, and every keeper reconnects. Each keeps its own tenures; nobody takes the others'
    expired leases (which used to move half the partitions right after every failover)."""
    a, b = _keeper(database_url, "node-a", 2.0), _keeper(database_url, "node-b", 2.0)
    with _HandOver(a, b, database_url=database_url):
        a.start()
        b.start()
        wait_until(lambda: len(a.tenures()) == len(b.tenures()) == PARTITIONS // 2, timeout=15)
        before = (a.tenures(), b.tenures())
        with psycopg.connect(database_url, autocommit=True) as conn:
            # The outage, as the nodes find the database when it is back: connections gone, every
            # lease and every node's heartbeat expired.
            conn.execute("UPDATE detector_leases SET expires_at = clock_timestamp() - interval '1 second'")
            conn.execute("DELETE FROM detector_nodes")
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        time.sleep(2.0 + 1.0)  # past the grace period (one lease period), renewals on both sides
        assert (a.tenures(), b.tenures()) == before
        assert _owners(database_url) == {"node-a": 32, "node-b": 32}
        b.stop()
        a.stop()


def _runner(database_url: str, node_id: str) -> DetectorRunner:
    return DetectorRunner(
        conninfo=database_url,
        config=DetectorSuiteConfig(),
        alerting=AlertingConfig(),
        on_alerts=lambda _: None,
        leases=LeaseKeeper(conninfo=database_url, node_id=node_id),
    )


def _sos(minute: int) -> Finding:
    at = T0 + timedelta(minutes=minute)
    return Finding(
        kind=AlertKind.SOS,
        severity=Severity.CRITICAL,
        household_id=HOUSEHOLD,
        device_id="fence-button",
        at=at,
        detected_at=at,
        evidence=ev.Evidence(message=ev.SosPressed(at=at), tz="UTC", as_of=at),
        detector="call_button",
        notify_again=True,
    )


def _alerts(conn: psycopg.Connection) -> list[tuple[int, int]]:
    return [
        (int(a), int(o))
        for a, o in conn.execute(
            "SELECT alert_id, occurrences FROM alerts WHERE household_id = %s ORDER BY alert_id", (HOUSEHOLD,)
        )
    ]


def test_a_node_that_lost_its_lease_writes_no_findings(database_url: str) -> None:
    number = partition_of(HOUSEHOLD)
    with psycopg.connect(database_url, autocommit=True) as conn:
        registry.insert_household(conn, HouseholdCreate(household_id=HOUSEHOLD, name="Zhao Nainai"))
        stale_token = leases.acquire(conn, "stale", PARTITIONS, timedelta(milliseconds=1))[number]
        time.sleep(0.05)  # the stale node's lease expires (it was paused, cut off, ...)
        fresh_token = leases.acquire(conn, "fresh", PARTITIONS, timedelta(seconds=30))[number]
        assert fresh_token > stale_token

        stale = _runner(database_url, "stale")
        stale._parts[number] = Partition(number, stale_token, Engine(DetectorSuiteConfig()))
        stale._write(conn, [_sos(0)], T0)
        assert _alerts(conn) == []  # refused: no alert written
        assert number not in stale._parts  # and the partition is dropped from the stale node
        assert stale.fenced_total == 1
        assert stale.leases.tenures() == {}

        fresh = _runner(database_url, "fresh")
        fresh._parts[number] = Partition(number, fresh_token, Engine(DetectorSuiteConfig()))
        fresh._write(conn, [_sos(0)], T0)
        assert len(_alerts(conn)) == 1
        # The same press again, as the replay after a takeover reads it: it does not page twice
        # (not even an occurrence); a new press does.
        fresh._write(conn, [_sos(0)], T0)
        assert [o for _, o in _alerts(conn)] == [1]
        fresh._write(conn, [_sos(5)], T0)
        assert [o for _, o in _alerts(conn)] == [2]
        leases.release(conn, "fresh", {number: fresh_token})
