"""The commit-ordered feed (storage.feed) on the machine's PostgreSQL: a transaction that commits after a
later one is read when it commits, never skipped; nothing is read twice; replay between positions."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from carewatch.partitions import partition_of
from schemas.api import DeviceCreate, HouseholdCreate
from schemas.kinds import DeviceType
from storage import feed, registry
from storage.feed import FeedPosition

pytestmark = pytest.mark.services

T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(database_url: str) -> str:
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        for n in range(3):
            registry.insert_household(conn, HouseholdCreate(household_id=f"hh-feed-{n}", name="x"))
            registry.insert_device(
                conn,
                DeviceCreate(
                    device_id=f"feed-meter-{n}", device_type=DeviceType.WATER_METER, household_id=f"hh-feed-{n}"
                ),
            )
    return database_url


def _insert_reading(conn: psycopg.Connection, n: int, minute: int) -> None:
    ts = T0 + timedelta(minutes=minute)
    conn.execute(
        "INSERT INTO readings (device_id, ts, register_l, received_at) VALUES (%s, %s, %s, %s)",
        (f"feed-meter-{n}", ts, float(minute), ts),
    )


def _xid(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
    assert row is not None
    return int(row[0])


def _read(conn: psycopg.Connection, position: FeedPosition, partitions: list[int]) -> feed.FeedRead:
    with feed.snapshot_transaction(conn):
        return feed.read(conn, position, partitions)


def test_the_partition_rule_is_the_same_in_python_and_in_sql(db: str) -> None:
    ids = [f"hh-{n}" for n in range(500)] + ["", "居委会-7", "x" * 300]
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT h, carewatch_partition(h) FROM unnest(%s::text[]) AS h", (ids,)).fetchall()
    assert dict(rows) == {h: partition_of(h) for h in ids}
    assert len({partition_of(h) for h in ids}) == 64  # every partition gets households
    assert partition_of("hh-1") == int(hashlib.md5(b"hh-1").hexdigest()[:8], 16) % 64  # noqa: S324


def test_a_transaction_that_commits_late_is_read_when_it_commits(db: str) -> None:
    everything = list(range(64))
    with (
        psycopg.connect(db, autocommit=True) as reader,
        psycopg.connect(db) as early,
        psycopg.connect(db) as late,
    ):
        start = feed.current_position(reader)
        _insert_reading(early, 0, 1)  # the first transaction takes its id first ...
        _insert_reading(late, 1, 2)  # ... the second one after it ...
        early_xid, late_xid = (_xid(early), _xid(late))
        assert early_xid < late_xid
        late.commit()  # ... and commits first
        first = _read(reader, start, everything)
        assert [row.record.device_id for row in first.rows] == ["feed-meter-1"]
        assert first.caught_up
        assert early_xid in first.position.pending  # still running: remembered, not skipped
        assert first.position.seen(late_xid)
        again = _read(reader, first.position, everything)
        assert again.rows == []  # nothing twice, and nothing from the uncommitted one
        early.commit()
        second = _read(reader, again.position, everything)
        assert [row.record.device_id for row in second.rows] == ["feed-meter-0"]
        assert second.position.seen(early_xid)
        assert _read(reader, second.position, everything).rows == []


def test_an_aborted_transaction_leaves_the_pending_set(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as reader, psycopg.connect(db) as aborted:
        start = feed.current_position(reader)
        _insert_reading(aborted, 2, 3)
        xid = _xid(aborted)
        first = _read(reader, start, list(range(64)))
        assert not first.position.seen(xid)
        aborted.rollback()
        second = _read(reader, first.position, list(range(64)))
        assert second.rows == []
        assert xid not in second.position.pending


def test_rows_are_read_only_for_the_partitions_asked(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        start = feed.current_position(conn)
        _insert_reading(conn, 0, 10)
        _insert_reading(conn, 1, 10)
        mine = partition_of("hh-feed-0")
        result = _read(conn, start, [mine])
        assert {row.record.device_id for row in result.rows} == {"feed-meter-0"} | (
            {"feed-meter-1"} if partition_of("hh-feed-1") == mine else set()
        )
        assert all(row.partition == mine for row in result.rows)


def test_a_backlog_is_read_a_bounded_number_of_transactions_at_a_time(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        start = feed.current_position(conn)
        for minute in range(20, 30):
            _insert_reading(conn, 2, minute)  # ten transactions
        position, seen = start, []
        for _ in range(20):
            with feed.snapshot_transaction(conn):
                result = feed.read(conn, position, list(range(64)), max_xids=3)
            seen.extend(row.record.ts for row in result.rows)
            position = result.position
            if result.caught_up:
                break
        assert seen == [T0 + timedelta(minutes=m) for m in range(20, 30)]


def test_replay_returns_what_one_position_has_seen_and_the_other_has_not(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn, psycopg.connect(db) as held:
        since = feed.current_position(conn)
        _insert_reading(held, 0, 40)  # running at "since2": pending there
        _insert_reading(conn, 1, 41)
        upto = _read(conn, since, list(range(64))).position
        held.commit()
        _insert_reading(conn, 2, 42)  # after "upto": the feed's business, not the replay's
        upto_final = _read(conn, upto, list(range(64))).position
        with feed.snapshot_transaction(conn):
            rows = feed.replay(conn, since, upto, list(range(64)))
            assert [r.record.device_id for r in rows] == ["feed-meter-1"]
            rows = feed.replay(conn, since, upto_final, list(range(64)))
            assert sorted(r.record.device_id for r in rows) == ["feed-meter-0", "feed-meter-1", "feed-meter-2"]
            assert feed.replay(conn, upto_final, upto_final, list(range(64))) == []


def test_positions_round_trip_and_rewind() -> None:
    position = FeedPosition(1000, (990, 995))
    assert FeedPosition.from_json(position.to_json()) == position
    assert FeedPosition.from_json(None) is None
    assert position.seen(989)
    assert not position.seen(990)
    assert not position.seen(1000)
    assert position.rewound(100) == FeedPosition(900, (990, 995))
