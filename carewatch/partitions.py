"""Detection partitions and the thread that keeps this node's leases on them.

Households are split into ``PARTITIONS`` partitions by a stable hash of the household id
(:func:`partition_of`; the database has the same rule, ``carewatch_partition``). Each partition is
detected by exactly one node at a time, the holder of its lease (storage.leases: a lease row with an
owner, an expiry on the database's clock and a fencing token).

:class:`LeaseKeeper` runs in its own thread with its own connection, every ``renew_s``:
1. announces the node alive and counts the living nodes;
2. renews the tenures it holds (a tenure that did not come back was taken over: it is *lost*);
3. aims at ``ceil(PARTITIONS / nodes)``: takes free or expired partitions up to that, and offers the
   ones above it for hand-over, ``HANDOVER_BATCH`` at a time (the runner snapshots them, then
   :meth:`handed_over` releases them at once, so a node that joins gets its share within seconds
   and nothing is replayed twice).
The detector runner reads :meth:`tenures` every round, loads what is new and drops what is gone; it
writes findings only under the fence (``storage.leases.fenced``), so a node that lost a lease without
noticing yet (paused, cut off) cannot write for that partition. A node that dies stops renewing: its
leases expire after ``ttl_s`` and the survivors take them. A clean stop releases everything at once.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from datetime import timedelta
from functools import lru_cache

import psycopg

from storage import leases

log = logging.getLogger(__name__)

PARTITIONS = 64
HANDOVER_BATCH = 8  # partitions offered for hand-over at once (see LeaseKeeper._cycle)


@lru_cache(maxsize=1_000_000)
def partition_of(household_id: str) -> int:
    """The partition of a household: the first 32 bits of md5(household_id) modulo ``PARTITIONS``
    (the same rule as SQL ``carewatch_partition``; stable across processes, unlike ``hash``)."""
    return int(hashlib.md5(household_id.encode(), usedforsecurity=False).hexdigest()[:8], 16) % PARTITIONS


class LeaseKeeper:
    """This node's leases (see the module docstring). Thread-safe accessors for the runner and the API."""

    def __init__(
        self,
        *,
        conninfo: str,
        node_id: str,
        ttl_s: float = 5.0,
        renew_s: float = 1.0,
        api_url: str = "",
    ) -> None:
        self.node_id = node_id
        self._conninfo = conninfo
        self._ttl = timedelta(seconds=ttl_s)
        self.renew_s = renew_s
        self._api_url = api_url
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # partition → token
        self._offered: set[int] = set()  # over our share: the runner hands them over
        self._to_release: dict[int, int] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.nodes = 0
        self.renewed_at: float | None = None  # monotonic time of the last successful cycle
        self._connected_at = 0.0  # monotonic time this keeper's connection was opened
        self.changed = threading.Event()  # set when the held set changes (the runner looks at once)

    def tenures(self) -> dict[int, int]:
        with self._lock:
            return dict(self._held)

    def offered(self) -> set[int]:
        with self._lock:
            return set(self._offered)

    def handed_over(self, tenures: dict[int, int]) -> None:
        """The runner stored its last snapshot of these partitions and dropped them: release them."""
        with self._lock:
            for partition, token in tenures.items():
                if self._held.get(partition) == token:
                    del self._held[partition]
                    self._to_release[partition] = token
                self._offered.discard(partition)

    def lost(self, partitions: set[int]) -> None:
        """The fence refused these partitions: another node holds them now."""
        with self._lock:
            for partition in partitions:
                self._held.pop(partition, None)
                self._offered.discard(partition)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and release what is held (call after the runner stored its last snapshots)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            held, self._held = {**self._held, **self._to_release}, {}
            self._to_release = {}
        try:
            with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                leases.release(conn, self.node_id, held)
                leases.leave(conn, self.node_id)
            log.info("node %s released %d partition(s)", self.node_id, len(held))
        except psycopg.Error as exc:
            log.warning("node %s could not release its leases (%s); they expire by themselves", self.node_id, exc)

    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        joined = False
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=3)
                    conn.execute(f"LISTEN {leases.CHANNEL}")
                    self._connected_at = time.monotonic()
                self._cycle(conn)
                self.renewed_at = time.monotonic()
                if not joined:  # the others make room for this node now, not at their next renewal
                    leases.announce(conn)
                    joined = True
                # Until the next renewal, or at once when a node releases partitions or joins.
                for _ in conn.notifies(timeout=max(0.0, self.renew_s - (time.monotonic() - started)), stop_after=1):
                    pass
            except psycopg.Error as exc:
                log.warning("node %s could not renew its leases (%s); retrying", self.node_id, exc)
                if conn is not None:
                    conn.close()
                conn = None
                self._stopping.wait(max(0.0, self.renew_s - (time.monotonic() - started)))
        if conn is not None:
            conn.close()

    def wake(self, conn: psycopg.Connection) -> None:
        """The runner handed partitions over: run a cycle now (it releases them), through any
        connection (this keeper LISTENs on its own)."""
        leases.announce(conn)

    def _cycle(self, conn: psycopg.Connection) -> None:
        with self._lock:
            held = dict(self._held)
            to_release, self._to_release = self._to_release, {}
        if to_release:
            leases.release(conn, self.node_id, to_release)
            leases.announce(conn)  # whoever is below its share takes them at once
            log.info("node %s handed over partitions %s", self.node_id, leases.ranges(to_release))
        self.nodes = leases.heartbeat(conn, self.node_id, self._ttl, self._api_url)
        kept = leases.renew(conn, self.node_id, held, self._ttl)
        lost = set(held) - set(kept)
        share = math.ceil(PARTITIONS / max(1, self.nodes))
        # Just (re)connected, after a database failover say: every node's leases and heartbeat may have
        # expired while nobody could renew them, and the others are reconnecting too. Taking their
        # expired leases now would move every partition (each reloaded, findings refused meanwhile);
        # for one lease period take only free ones, and leave the others time to renew theirs. A
        # node that really died is taken over one lease period later than otherwise.
        patient = time.monotonic() - self._connected_at < self._ttl.total_seconds()
        taken = (
            leases.acquire(conn, self.node_id, share - len(kept), self._ttl, expired=not patient)
            if len(kept) < share
            else {}
        )
        with self._lock:
            for partition in lost:
                if self._held.get(partition) == held[partition]:
                    del self._held[partition]
            self._held.update(taken)
            # A few at a time: each offered partition has no detector from its last snapshot here
            # until the other node has loaded it, and a small batch is snapshotted, released, taken
            # and loaded in a fraction of the time of half the partitions at once. The release wakes
            # every keeper (NOTIFY), this one included, so the next batch follows at once.
            excess = sorted(self._held)[share:]
            self._offered = set(excess[:HANDOVER_BATCH])
        if lost:
            log.warning("node %s lost partitions %s (taken over)", self.node_id, leases.ranges(lost))
        if taken:
            log.info("node %s took partitions %s (%d node(s) alive)", self.node_id, leases.ranges(taken), self.nodes)
        if lost or taken or self._offered:
            self.changed.set()
