"""Idempotent storage of decoded device messages, in batches with ``COPY``.

A batch is copied into temporary tables and moved into the real ones with ``ON CONFLICT DO NOTHING``:
``message_receipts`` (device, seq, device time) is the idempotency key, so a redelivered or replayed
message is recognised and stored once, and only first-time messages reach ``readings``, ``events`` and
``status_reports``. Rejected messages are copied into ``rejects`` in the same transaction, so a bad
message never costs the good ones next to it. The caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from schemas.intake import Accepted, Rejected
from schemas.records import DeviceEvent, MeterSample, StatusReport

# Rejected payloads are kept for inspection; beyond this they are cut (the full size is recorded).
MAX_KEPT_PAYLOAD = 64 * 1024

_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS incoming_receipts (
    device_id text, seq bigint, ts timestamptz, channel text, received_at timestamptz, clock_skewed boolean
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS incoming_readings (
    device_id text, ts timestamptz, register_l double precision, received_at timestamptz
) ON COMMIT DELETE ROWS;
"""


@dataclass(frozen=True, slots=True)
class StoreResult:
    new: list[Accepted]
    duplicates: int
    rejects: int


def prepare_connection(conn: psycopg.Connection) -> None:
    """Create this session's staging tables (once per connection)."""
    conn.execute(_TEMP_TABLES)


def store_batch(conn: psycopg.Connection, accepted: Sequence[Accepted], rejected: Sequence[Rejected]) -> StoreResult:
    """Store a batch; return the messages seen for the first time. Needs ``prepare_connection`` first."""
    unique: dict[tuple[str, int, object], Accepted] = {}
    for item in accepted:
        unique.setdefault(item.key, item)
    new = _insert_receipts(conn, list(unique.values())) if unique else []
    _insert_records(conn, new)
    _insert_rejects(conn, rejected)
    return StoreResult(new=new, duplicates=len(accepted) - len(new), rejects=len(rejected))


def _insert_receipts(conn: psycopg.Connection, candidates: list[Accepted]) -> list[Accepted]:
    with conn.cursor() as cur:
        with cur.copy(
            "COPY incoming_receipts (device_id, seq, ts, channel, received_at, clock_skewed) FROM STDIN"
        ) as copy:
            for item in candidates:
                copy.write_row(
                    (
                        item.device.device_id,
                        item.message.seq,
                        item.message.ts,
                        item.channel.value,
                        item.received_at,
                        item.clock_skewed,
                    )
                )
        cur.execute(
            "INSERT INTO message_receipts (device_id, seq, ts, channel, received_at, clock_skewed)"
            " SELECT device_id, seq, ts, channel, received_at, clock_skewed FROM incoming_receipts"
            " ON CONFLICT DO NOTHING RETURNING device_id, seq, ts"
        )
        inserted = {(row[0], row[1], row[2]) for row in cur.fetchall()}
        cur.execute("TRUNCATE incoming_receipts")
    return [item for item in candidates if item.key in inserted]


def _insert_records(conn: psycopg.Connection, new: list[Accepted]) -> None:
    samples: list[MeterSample] = []
    events: list[DeviceEvent] = []
    statuses: list[StatusReport] = []
    for item in new:
        for record in item.records:
            if isinstance(record, MeterSample):
                samples.append(record)
            elif isinstance(record, DeviceEvent):
                events.append(record)
            else:
                statuses.append(record)
    with conn.cursor() as cur:
        if samples:
            # The same interval can arrive twice in different messages (live, then in a batch): first wins.
            with cur.copy("COPY incoming_readings (device_id, ts, register_l, received_at) FROM STDIN") as copy:
                for s in samples:
                    copy.write_row((s.device_id, s.ts, s.register_l, s.received_at))
            cur.execute(
                "INSERT INTO readings (device_id, ts, register_l, received_at)"
                " SELECT device_id, ts, register_l, received_at FROM incoming_readings"
                " ON CONFLICT DO NOTHING"
            )
            cur.execute("TRUNCATE incoming_readings")
        if events:
            # Unique by construction: (device, ts, seq) is part of the receipt key inserted above.
            with cur.copy("COPY events (device_id, ts, seq, kind, note, received_at) FROM STDIN") as copy:
                for e in events:
                    copy.write_row((e.device_id, e.ts, e.seq, e.kind, e.note, e.received_at))
        if statuses:
            with cur.copy(
                "COPY status_reports (device_id, ts, seq, online, battery_pct, rssi_dbm, fw, received_at) FROM STDIN"
            ) as copy:
                for st in statuses:
                    copy.write_row(
                        (
                            st.device_id,
                            st.ts,
                            st.seq,
                            st.online,
                            st.battery_pct,
                            st.rssi_dbm,
                            st.fw,
                            st.received_at,
                        )
                    )


def _insert_rejects(conn: psycopg.Connection, rejected: Sequence[Rejected]) -> None:
    if not rejected:
        return
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY rejects (received_at, topic, device_id, reason, detail, payload, payload_size) FROM STDIN"
        ) as copy,
    ):
        for r in rejected:
            copy.write_row(
                (
                    r.received_at,
                    r.topic[:1024],
                    r.device_id,
                    r.reason.value,
                    r.detail,
                    r.payload[:MAX_KEPT_PAYLOAD],
                    len(r.payload),
                )
            )
