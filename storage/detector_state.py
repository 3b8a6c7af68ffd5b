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


def delete_snapshots(conn: psycopg.Connection, keys: list[str]) -> None:
    """Forget the snapshots of ``keys`` (decommissioned or erased devices)."""
    conn.execute("DELETE FROM detector_state WHERE state_key = ANY(%s)", (keys,))
