"""Detector snapshots: JSON state per key, so detectors resume where they stopped after a restart."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def load_snapshots(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    return {row[0]: row[1] for row in conn.execute("SELECT state_key, state FROM detector_state")}


def save_snapshots(conn: psycopg.Connection, snapshots: Mapping[str, dict[str, Any]], now: datetime) -> None:
    if not snapshots:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO detector_state (state_key, state, updated_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (state_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            [(key, Jsonb(state), now) for key, state in sorted(snapshots.items())],
        )


def load_partition_snapshots(conn: psycopg.Connection, partition: int) -> dict[str, dict[str, Any]]:
    """The snapshots of one detection partition (migration 0018)."""
    rows = conn.execute("SELECT state_key, state FROM detector_state WHERE partition = %s", (partition,))
    return {row[0]: row[1] for row in rows}


def save_partition_snapshots(
    conn: psycopg.Connection, partition: int, snapshots: Mapping[str, dict[str, Any]], now: datetime
) -> None:
    if not snapshots:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO detector_state (state_key, state, updated_at, partition) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (state_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at,"
            " partition = excluded.partition",
            [(key, Jsonb(state), now, partition) for key, state in sorted(snapshots.items())],
        )


def first_time_findings(conn: psycopg.Connection, keys: Mapping[str, int]) -> set[str]:
    """Record findings (key → partition) as applied; return the keys not recorded before. A finding
    that pages is applied only if its key is new: the replay after a takeover never pages twice."""
    if not keys:
        return set()
    rows = conn.execute(
        "INSERT INTO detector_findings (finding_key, partition) SELECT * FROM unnest(%s::text[], %s::smallint[])"
        " ON CONFLICT (finding_key) DO NOTHING RETURNING finding_key",
        (list(keys), list(keys.values())),
    ).fetchall()
    return {row[0] for row in rows}


def prune_findings(conn: psycopg.Connection, before: datetime) -> None:
    conn.execute("DELETE FROM detector_findings WHERE recorded_at < %s", (before,))


def delete_snapshots(conn: psycopg.Connection, keys: list[str]) -> None:
    """Forget the snapshots of ``keys`` (decommissioned or erased devices)."""
    conn.execute("DELETE FROM detector_state WHERE state_key = ANY(%s)", (keys,))
