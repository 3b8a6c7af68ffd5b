"""Storage functions behind the ingest: idempotent batches, sequence gaps, meter consumption."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ingest.decode import DecodePolicy, decode
from schemas.device import SEQ_MODULUS
from schemas.intake import Accepted
from schemas.kinds import DeviceType
from schemas.records import DeviceInfo
from storage.messages import meter_consumption, prepare_connection, sequence_gaps, store_batch

NOW = datetime.now(UTC).replace(microsecond=0)
METER = DeviceInfo("sq-meter", DeviceType.WATER_METER, "hh-sq", 900)


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("INSERT INTO households (household_id, name) VALUES ('hh-sq', 'sq')")
        connection.execute(
            "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s)"
            " VALUES ('sq-meter', 'water_meter', 'hh-sq', 900)"
        )
        prepare_connection(connection)
        yield connection


def _accepted(device_id: str, seq: int, ts: datetime, register: float = 1.0) -> Accepted:
    info = DeviceInfo(device_id, DeviceType.WATER_METER, "hh-sq", 900)
    body = f'{{"ts": "{ts.isoformat()}", "seq": {seq}, "register_l": {register}}}'.encode()
    outcome = decode(f"care/v1/dev/{device_id}/telemetry", body, NOW, {device_id: info}.get, DecodePolicy())
    assert isinstance(outcome, Accepted), outcome
    return outcome


def _store(conn: psycopg.Connection, items: list[Accepted]) -> tuple[int, int]:
    with conn.transaction():
        result = store_batch(conn, items, [])
    return len(result.new), result.duplicates


def test_store_batch_is_idempotent_within_and_across_batches(conn: psycopg.Connection) -> None:
    first = [_accepted("idem-meter", seq, NOW - timedelta(minutes=seq)) for seq in range(5)]
    assert _store(conn, first + first[:2]) == (5, 2)  # duplicates inside one batch
    assert _store(conn, [*first[3:], _accepted("idem-meter", 9, NOW)]) == (1, 2)  # replays of stored ones
    rows = conn.execute("SELECT count(*) FROM message_receipts WHERE device_id = 'idem-meter'").fetchone()
    assert rows == (6,)


def test_sequence_gaps_counts_missing_messages_across_the_wrap(conn: psycopg.Connection) -> None:
    since = NOW - timedelta(seconds=1)  # receipts of this module are received at NOW
    top = SEQ_MODULUS - 1
    # Device time order: top-2, top-1, (top missing), 0, 1, (2..4 missing), 5; then a counter restart.
    seqs = [top - 2, top - 1, 0, 1, 5, 3_000_000]
    items = [_accepted("wrap-meter", seq, NOW - timedelta(minutes=60 - k)) for k, seq in enumerate(seqs)]
    items.append(_accepted("steady-meter", 1, NOW - timedelta(minutes=2)))
    items.append(_accepted("steady-meter", 2, NOW - timedelta(minutes=1)))
    _store(conn, list(reversed(items)))  # arrival order does not matter: device time does
    gaps = {g.device_id: g for g in sequence_gaps(conn, since)}
    assert "steady-meter" not in gaps
    wrap = gaps["wrap-meter"]
    assert (wrap.messages, wrap.missing, wrap.restarts) == (6, 4, 1)
    assert wrap.first_ts < wrap.last_ts
    assert sequence_gaps(conn, NOW + timedelta(seconds=1)) == []


def test_meter_consumption_starts_a_new_series_on_reset_or_impossible_jump(conn: psycopg.Connection) -> None:
    start = NOW - timedelta(hours=10)
    registers = [100.0, 105.0, 112.0, 3.0, 4.5, 90_000.0, 90_001.0]  # reset to 3, then a swapped meter
    rows = [("sq-meter", start + timedelta(minutes=15 * k), r, NOW) for k, r in enumerate(registers)]
    with conn.cursor() as cur:
        # Out of order on purpose: consumption follows device time, not insertion.
        cur.executemany(
            "INSERT INTO readings (device_id, ts, register_l, received_at) VALUES (%s, %s, %s, %s)", rows[::-1]
        )
    result = meter_consumption(conn, "sq-meter", start + timedelta(minutes=15), NOW)
    assert [c.register_l for c in result] == registers[1:]
    assert [c.consumption_l for c in result] == [5.0, 7.0, None, 1.5, None, 1.0]
    assert [c.series for c in result] == [0, 0, 1, 1, 2, 2]
    assert all(c.consumption_l is None or 0 <= c.consumption_l < 1000 for c in result)
