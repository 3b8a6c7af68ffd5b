"""The commit-ordered feed of stored records: what any node's ingest committed, for any node's detectors.

Every row of ``readings``, ``events`` and ``status_reports`` carries ``feed_xid``, the id of the
transaction that wrote it (``pg_current_xact_id()``, migration 0018). A reader's position is
``(lo, pending)``: every transaction below ``lo`` has been read, except those in ``pending``, which were
still running when it was last read. One read, in one REPEATABLE READ snapshot, returns the rows of the
transactions that have become visible since: those in ``[lo, hi)`` that committed, and those of
``pending`` that committed since. The new position is ``(hi, still running of pending and [lo, hi))``.

So no row is ever skipped, however late its transaction commits (one that started first and commits
last is read when it commits), and none is read twice; rows come in the order their transactions
became visible, at the granularity of a read. An unrelated long transaction does not hold the feed
back (unlike reading below ``pg_snapshot_xmin``): it only stays in ``pending``. ``hi`` is at most
``max_xids`` past ``lo``, which bounds one read after a backlog.

A database failover can make the new primary reuse transaction ids the old one had handed out but
never replicated (a transaction that aborted, or never committed, before the crash): a reader that
reconnects rewinds its position (``rewound``) and reads those ids again; the detector runner treats
what it may have seen before as a replay (it never pages twice, see carewatch.detector_runner).

Functions take a connection and never commit; ``read`` and ``replay`` expect to run in a REPEATABLE
READ transaction (:func:`snapshot_transaction`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from schemas.kinds import DeviceType
from schemas.records import DeviceEvent, MeterSample, Record, StatusReport

TABLES = ("readings", "events", "status_reports")
EVENTS = ("events",)
TELEMETRY = ("readings", "status_reports")


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Every transaction id below ``lo`` has been read, except those in ``pending``."""

    lo: int
    pending: tuple[int, ...] = ()

    def seen(self, xid: int) -> bool:
        return xid < self.lo and xid not in self.pending

    def rewound(self, by: int) -> FeedPosition:
        return FeedPosition(max(1, self.lo - by), self.pending)

    def to_json(self) -> dict[str, Any]:
        return {"lo": self.lo, "pending": list(self.pending)}

    @classmethod
    def from_json(cls, raw: Any) -> FeedPosition | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("lo"), int):
            return None
        return cls(int(raw["lo"]), tuple(int(x) for x in raw.get("pending", ())))


@dataclass(frozen=True, slots=True)
class FeedRow:
    xid: int
    partition: int
    record: Record


@dataclass(frozen=True, slots=True)
class FeedRead:
    rows: list[FeedRow]
    position: FeedPosition
    caught_up: bool  # the read reached the snapshot's end (nothing visible left unread)


@contextmanager
def snapshot_transaction(conn: psycopg.Connection) -> Iterator[None]:
    """A read-only REPEATABLE READ transaction: the snapshot ``read`` and ``replay`` rely on."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def current_position(conn: psycopg.Connection) -> FeedPosition:
    """The position of "now": everything committed has been read, what is running is pending."""
    row = conn.execute(
        "SELECT pg_snapshot_xmax(s)::text, ARRAY(SELECT pg_snapshot_xip(s)::text) FROM pg_current_snapshot() AS s"
    ).fetchone()
    assert row is not None  # noqa: S101 - a SELECT without FROM-filter returns one row
    return FeedPosition(int(row[0]), tuple(sorted(int(x) for x in row[1])))


def read(
    conn: psycopg.Connection,
    position: FeedPosition,
    partitions: Sequence[int],
    *,
    tables: Sequence[str] = TABLES,
    max_xids: int = 200,
) -> FeedRead:
    """The rows of ``partitions`` that became visible since ``position`` (see the module docstring)."""
    now = current_position(conn)
    hi = min(now.lo, position.lo + max_xids) if now.lo > position.lo else position.lo
    running = set(now.pending)
    pending = tuple(
        sorted({x for x in position.pending if x in running} | {x for x in running if position.lo <= x < hi})
    )
    rows = _rows(conn, "({x} >= %(lo)s::xid8 AND {x} < %(hi)s::xid8) OR {x} = ANY(%(pending)s::xid8[])", {
        "lo": str(position.lo), "hi": str(hi), "pending": [str(x) for x in position.pending],
    }, partitions, tables)  # fmt: skip
    return FeedRead(rows, FeedPosition(hi, pending), caught_up=hi >= now.lo)


def replay(
    conn: psycopg.Connection,
    since: FeedPosition,
    upto: FeedPosition,
    partitions: Sequence[int],
    *,
    tables: Sequence[str] = TABLES,
) -> list[FeedRow]:
    """The rows of ``partitions`` that ``upto`` has seen and ``since`` has not (a partition taken over,
    from its snapshot's position up to the node's feed position)."""
    where = (
        "({x} < %(upto_lo)s::xid8 AND NOT {x} = ANY(%(upto_pending)s::xid8[]))"
        " AND ({x} >= %(since_lo)s::xid8 OR {x} = ANY(%(since_pending)s::xid8[]))"
    )
    params = {
        "upto_lo": str(upto.lo),
        "upto_pending": [str(x) for x in upto.pending],
        "since_lo": str(since.lo),
        "since_pending": [str(x) for x in since.pending],
    }
    return _rows(conn, where, params, partitions, tables)


def _on(where: str, alias: str) -> str:
    return where.replace("{x}", f"{alias}.feed_xid")


def _rows(
    conn: psycopg.Connection, where: str, params: dict[str, Any], partitions: Sequence[int], tables: Sequence[str]
) -> list[FeedRow]:
    """Readings, events and status reports matching ``where`` (over ``{x}``, the row's transaction id),
    in transaction then receive then device-time order."""
    if not partitions:
        return []
    args = {**params, "partitions": list(partitions)}
    owned = "carewatch_partition(d.household_id) = ANY(%(partitions)s::smallint[])"
    out: list[tuple[int, Any, Any, FeedRow]] = []
    if "readings" in tables:
        out.extend(_readings(conn, where, args, owned))
    if "events" in tables:
        out.extend(_events(conn, where, args, owned))
    if "status_reports" in tables:
        out.extend(_status(conn, where, args, owned))
    out.sort(key=lambda item: (item[0], item[1], item[2]))
    return [row for *_, row in out]


_Sortable = tuple[int, Any, Any, FeedRow]


def _readings(conn: psycopg.Connection, where: str, args: dict[str, Any], owned: str) -> list[_Sortable]:
    out: list[_Sortable] = []
    for xid, part, device_id, household_id, ts, register_l, received_at in conn.execute(
        "SELECT r.feed_xid::text, carewatch_partition(d.household_id), r.device_id, d.household_id, r.ts,"
        " r.register_l, r.received_at"
        f" FROM readings r JOIN devices d USING (device_id) WHERE ({_on(where, 'r')}) AND {owned}",
        args,
    ):
        record = MeterSample(device_id, household_id, ts, register_l, received_at)
        out.append((int(xid), received_at, ts, FeedRow(int(xid), int(part), record)))
    return out


def _events(conn: psycopg.Connection, where: str, args: dict[str, Any], owned: str) -> list[_Sortable]:
    out: list[_Sortable] = []
    for xid, part, device_id, household_id, device_type, ts, seq, kind, note, received_at, checkin_id in conn.execute(
        "SELECT e.feed_xid::text, carewatch_partition(d.household_id), e.device_id, d.household_id,"
        " d.device_type, e.ts, e.seq, e.kind, e.note, e.received_at, e.checkin_id"
        f" FROM events e JOIN devices d USING (device_id) WHERE ({_on(where, 'e')}) AND {owned}",
        args,
    ):
        event = DeviceEvent(
            device_id, household_id, DeviceType(device_type), ts, seq, kind, received_at, note, checkin_id
        )
        out.append((int(xid), received_at, ts, FeedRow(int(xid), int(part), event)))
    return out


def _status(conn: psycopg.Connection, where: str, args: dict[str, Any], owned: str) -> list[_Sortable]:
    out: list[_Sortable] = []
    for row in conn.execute(
        "SELECT s.feed_xid::text, carewatch_partition(d.household_id), s.device_id, d.household_id,"
        " d.device_type, s.ts, s.seq, s.online, s.received_at, s.battery_pct, s.rssi_dbm, s.fw"
        f" FROM status_reports s JOIN devices d USING (device_id) WHERE ({_on(where, 's')}) AND {owned}",
        args,
    ):
        xid, part, device_id, household_id, device_type, ts, seq, online, received_at, battery, rssi, fw = row
        status = StatusReport(
            device_id, household_id, DeviceType(device_type), ts, seq, online, received_at, battery, rssi, fw
        )
        out.append((int(xid), received_at, ts, FeedRow(int(xid), int(part), status)))
    return out
