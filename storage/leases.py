"""Partition leases with fencing tokens, and the nodes that hold them (migration 0018).

A lease row per partition: ``owner``, ``expires_at`` (the database's clock) and ``token``, a new number
from a sequence at every acquisition. Renewal keeps a tenure (owner and token unchanged) even past its
expiry as long as nobody took it over, so a database failover that outlasts the expiry does not make
every node reload every partition. Taking over needs the lease free or expired. ``fenced`` is the check a
writer runs inside its transaction: it locks the lease rows ``FOR SHARE``, so a takeover (an UPDATE)
waits until that transaction has committed, and the new owner then reads what was written.

Why a lease table and not advisory locks: a session-level advisory lock lives in one server's memory.
It is not replicated, so after a failover the new primary holds no locks at all while the old holders
may still believe they own their partitions until they notice the broken connection; and a lock gives
no token to check in the writing transaction. The lease rows are replicated synchronously like any
other data, and the token fences a node that was cut off (paused, partitioned) from writing findings.
Functions take a connection and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import psycopg

CHANNEL = "carewatch_leases"


def announce(conn: psycopg.Connection) -> None:
    """Wake every node's lease keeper (they LISTEN on ``CHANNEL``): partitions were released or a node
    joined, so a node below its share takes them now instead of at its next renewal (up to a second
    later, while the households of those partitions have no detector)."""
    conn.execute(f"NOTIFY {CHANNEL}")


def heartbeat(conn: psycopg.Connection, node_id: str, ttl: timedelta, api_url: str = "") -> int:
    """Announce ``node_id`` alive for ``ttl``; return how many nodes are alive now (itself included)."""
    conn.execute(
        "INSERT INTO detector_nodes (node_id, alive_until, api_url) VALUES (%s, clock_timestamp() + %s, %s)"
        " ON CONFLICT (node_id) DO UPDATE SET alive_until = excluded.alive_until, api_url = excluded.api_url",
        (node_id, ttl, api_url),
    )
    row = conn.execute("SELECT count(*) FROM detector_nodes WHERE alive_until > clock_timestamp()").fetchone()
    return int(row[0]) if row else 1


def leave(conn: psycopg.Connection, node_id: str) -> None:
    """A clean stop: the node is gone at once (the others rebalance without waiting for its expiry)."""
    conn.execute("DELETE FROM detector_nodes WHERE node_id = %s", (node_id,))


def renew(conn: psycopg.Connection, node_id: str, held: Mapping[int, int], ttl: timedelta) -> dict[int, int]:
    """Extend the tenures in ``held`` (partition → token) that are still ``node_id``'s; return those."""
    if not held:
        return {}
    rows = conn.execute(
        "UPDATE detector_leases SET expires_at = clock_timestamp() + %s"
        " WHERE owner = %s AND token = ANY(%s) RETURNING partition, token",
        (ttl, node_id, list(held.values())),
    ).fetchall()
    return {int(partition): int(token) for partition, token in rows if held.get(int(partition)) == int(token)}


def acquire(
    conn: psycopg.Connection, node_id: str, count: int, ttl: timedelta, *, expired: bool = True
) -> dict[int, int]:
    """Take up to ``count`` free partitions for ``node_id`` (and expired ones unless ``expired`` is
    false), each with a new token."""
    if count <= 0:
        return {}
    rows = conn.execute(
        "UPDATE detector_leases SET owner = %(node)s, token = nextval('detector_lease_token'),"
        " expires_at = clock_timestamp() + %(ttl)s, acquired_at = clock_timestamp()"
        " WHERE partition IN (SELECT partition FROM detector_leases"
        "   WHERE owner IS NULL OR (%(expired)s AND expires_at <= clock_timestamp())"
        "   ORDER BY partition LIMIT %(count)s FOR UPDATE SKIP LOCKED)"
        " RETURNING partition, token",
        {"node": node_id, "ttl": ttl, "count": count, "expired": expired},
    ).fetchall()
    return {int(partition): int(token) for partition, token in rows}


def release(conn: psycopg.Connection, node_id: str, tenures: Mapping[int, int]) -> None:
    """Give partitions up at once (after their last snapshot): another node may take them right away."""
    if tenures:
        conn.execute(
            "UPDATE detector_leases SET owner = NULL, expires_at = '-infinity' WHERE owner = %s AND token = ANY(%s)",
            (node_id, list(tenures.values())),
        )


def fenced(conn: psycopg.Connection, node_id: str, tenures: Mapping[int, int]) -> set[int]:
    """The partitions of ``tenures`` (partition → token) that are still ``node_id``'s, their lease rows
    locked ``FOR SHARE`` until the caller's transaction ends. Call it first in the transaction that
    writes what those partitions found; write only for the partitions it returns."""
    if not tenures:
        return set()
    rows = conn.execute(
        "SELECT partition, token FROM detector_leases WHERE partition = ANY(%s) AND owner = %s FOR SHARE",
        (list(tenures), node_id),
    ).fetchall()
    return {int(partition) for partition, token in rows if tenures.get(int(partition)) == int(token)}


def owners(conn: psycopg.Connection) -> dict[int, tuple[str | None, int, datetime]]:
    """Every partition's (owner, token, expires_at), for operations and tests."""
    rows = conn.execute("SELECT partition, owner, token, expires_at FROM detector_leases ORDER BY partition")
    return {int(p): (owner, int(token), expires_at) for p, owner, token, expires_at in rows}


def ranges(partitions: Iterable[int]) -> str:
    """``0-15,32-47``: a short text for a set of partition numbers (readiness, logs)."""
    ordered = sorted(set(partitions))
    parts: list[str] = []
    start = prev = None
    for number in ordered:
        if prev is not None and number == prev + 1:
            prev = number
            continue
        if start is not None:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
        start = prev = number
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(parts) or "none"
