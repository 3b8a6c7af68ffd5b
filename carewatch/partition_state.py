"""One detection partition held by this node: its engine, its tenure, and how far its engine has read.

A partition's state is stored in ``detector_state`` under its number: the engine's snapshots
(``dev:<id>``, ``hh:<id>``) and the runner's key ``__runner__:<n>`` with the feed positions the engine
had processed everything up to (``feed``: one per cursor, see carewatch.detector_runner) and where the
alert closures were last read. Loading a partition restores the engine from those snapshots and replays
the partition's rows between that position and the node's (storage.feed.replay); saving writes the
changed keys, under the fence, so a node that lost the partition never overwrites its new owner's state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from carewatch.partitions import partition_of
from detectors import DetectorSuiteConfig, Engine
from storage import detector_state
from storage.feed import FeedPosition, FeedRow, replay
from storage.replay import load_records_received_since

log = logging.getLogger(__name__)

RUNNER_KEY = "__runner__"
# Before partitions (migration 0018) the runner kept a receive-time watermark: a partition upgraded
# from it replays by receive time once, from a little before it.
LEGACY_REPLAY_MARGIN = timedelta(minutes=2)


def runner_key(partition: int) -> str:
    return f"{RUNNER_KEY}:{partition}"


@dataclass(slots=True)
class Partition:
    number: int
    token: int
    engine: Engine
    # The engine has processed every row these positions have seen (one per feed cursor).
    positions: dict[str, FeedPosition] = field(default_factory=dict)
    closures_from: datetime | None = None


@dataclass(frozen=True, slots=True)
class Loaded:
    partition: Partition
    replay: list[FeedRow]
    legacy_replay: int  # rows replayed by receive time (upgrade from a single runner)


def load(
    conn: psycopg.Connection,
    number: int,
    token: int,
    config: DetectorSuiteConfig,
    first_positions: dict[str, FeedPosition],
    node_positions: dict[str, FeedPosition],
    cursors: dict[str, tuple[str, ...]],
) -> Loaded:
    """Restore partition ``number`` and read what it must replay to reach ``node_positions`` (from the
    position stored with its snapshots, or from ``first_positions`` if it has none: never held before)."""
    snapshots = detector_state.load_partition_snapshots(conn, number)
    state: dict[str, Any] = snapshots.pop(runner_key(number), {})
    engine = Engine(config, snapshots)
    raw_closures = state.get("closures_from")
    partition = Partition(
        number, token, engine, closures_from=datetime.fromisoformat(raw_closures) if raw_closures else None
    )
    stored = state.get("feed") or {}
    rows: list[FeedRow] = []
    legacy = 0
    for cursor, tables in cursors.items():
        since = FeedPosition.from_json(stored.get(cursor)) or first_positions[cursor]
        upto = node_positions[cursor]
        rows.extend(replay(conn, since, upto, [number], tables=tables))
        partition.positions[cursor] = upto
    if not stored and state.get("watermark"):
        # The old single runner's watermark: replay by receive time once (rows from before the feed).
        since_time = datetime.fromisoformat(state["watermark"]) - LEGACY_REPLAY_MARGIN
        for record in load_records_received_since(conn, since_time):
            if partition_of(record.household_id) == number:
                rows.append(FeedRow(0, number, record))
                legacy += 1
    rows.sort(key=lambda row: row.xid)
    return Loaded(partition, rows, legacy)


def snapshot_state(partition: Partition, closures_from: datetime | None) -> dict[str, dict[str, Any]]:
    """The changed engine keys and the runner's key of one partition, ready to save."""
    snapshots = dict(partition.engine.snapshots())
    state: dict[str, Any] = {"feed": {cursor: pos.to_json() for cursor, pos in partition.positions.items()}}
    if closures_from is not None:
        state["closures_from"] = closures_from.isoformat()
    snapshots[runner_key(partition.number)] = state
    return snapshots
