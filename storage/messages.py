"""Idempotent storage of decoded device messages, in batches with binary ``COPY``; ingest health queries.

A batch is copied into temporary tables and moved into the real ones with ``ON CONFLICT DO NOTHING``:
``message_receipts`` (device, seq, device time) is the idempotency key, so a redelivered or replayed
message is recognised and stored once, and only first-time messages reach ``readings``, ``events`` and
``status_reports``. Rejected messages are copied into ``rejects`` in the same transaction, so a bad
message never costs the good ones next to it. The caller commits.

Hot-path choices (measured, see ``docs/ingest.md``): ``COPY ... (FORMAT BINARY)`` with declared types
costs the client about a fifth of the CPU of text ``COPY`` per row (no timestamp formatting); the
receipt insert returns only the staging row numbers of the rows it inserted, and they are read only
when some rows were duplicates (``rowcount`` says so), so the common all-new batch fetches nothing.

Also here, because they read what the ingest writes: ``sequence_gaps`` (lost uplinks per device, from
the receipts at query time) and ``meter_consumption`` (litres per reading from register differences,
see migration ``0002_ingest.sql``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from schemas.device import SEQ_MODULUS
from schemas.intake import Accepted, Rejected
from schemas.records import DeviceEvent, MeterSample, StatusReport

# Rejected payloads are kept for inspection; beyond this they are cut (the full size is recorded).
MAX_KEPT_PAYLOAD = 64 * 1024

_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS incoming_receipts (
    ord integer, device_id text, seq bigint, ts timestamptz, channel text, received_at timestamptz,
    clock_skewed boolean
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS incoming_readings (
    device_id text, ts timestamptz, register_l double precision, received_at timestamptz
) ON COMMIT DELETE ROWS;
"""

_RECEIPT_TYPES = ["int4", "text", "int8", "timestamptz", "text", "timestamptz", "bool"]
_READING_TYPES = ["text", "timestamptz", "float8", "timestamptz"]
_EVENT_TYPES = ["text", "timestamptz", "int8", "text", "text", "timestamptz", "text"]
_STATUS_TYPES = ["text", "timestamptz", "int8", "bool", "int4", "int4", "text", "timestamptz"]
_REJECT_TYPES = ["timestamptz", "text", "text", "text", "text", "bytea", "int4"]


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
    unique: dict[tuple[str, int, datetime], Accepted] = {}
    for item in accepted:
        message = item.message
        unique.setdefault((item.device.device_id, message.seq, message.ts), item)
    new = _insert_receipts(conn, list(unique.values())) if unique else []
    _insert_records(conn, new)
    _insert_rejects(conn, rejected)
    return StoreResult(new=new, duplicates=len(accepted) - len(new), rejects=len(rejected))


def _insert_receipts(conn: psycopg.Connection, candidates: list[Accepted]) -> list[Accepted]:
    with conn.cursor() as cur:
        with cur.copy(
            "COPY incoming_receipts (ord, device_id, seq, ts, channel, received_at, clock_skewed)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(_RECEIPT_TYPES)
            write = copy.write_row
            for ord_, item in enumerate(candidates):
                message = item.message
                write(
                    (
                        ord_,
                        item.device.device_id,
                        message.seq,
                        message.ts,
                        item.channel.value,
                        item.received_at,
                        item.clock_skewed,
                    )
                )
        # The rows actually inserted, as staging row numbers; fetched only when some were duplicates.
        cur.execute(
            "WITH inserted AS ("
            " INSERT INTO message_receipts (device_id, seq, ts, channel, received_at, clock_skewed)"
            " SELECT device_id, seq, ts, channel, received_at, clock_skewed FROM incoming_receipts"
            " ON CONFLICT DO NOTHING RETURNING device_id, seq, ts)"
            " SELECT i.ord FROM incoming_receipts i JOIN inserted USING (device_id, seq, ts)"
        )
        new = candidates if cur.rowcount == len(candidates) else [candidates[row[0]] for row in cur.fetchall()]
        cur.execute("DELETE FROM incoming_receipts")
    return new


def _insert_records(conn: psycopg.Connection, new: list[Accepted]) -> None:
    samples: list[MeterSample] = []
    events: list[DeviceEvent] = []
    statuses: list[StatusReport] = []
    for item in new:
        for record in item.records:
            if type(record) is MeterSample:
                samples.append(record)
            elif type(record) is StatusReport:
                statuses.append(record)
            else:
                events.append(record)  # type: ignore[arg-type]
    with conn.cursor() as cur:
        if samples:
            # The same interval can arrive twice in different messages (live, then in a batch): first wins.
            with cur.copy(
                "COPY incoming_readings (device_id, ts, register_l, received_at) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(_READING_TYPES)
                write = copy.write_row
                for s in samples:
                    write((s.device_id, s.ts, s.register_l, s.received_at))
            cur.execute(
                "INSERT INTO readings (device_id, ts, register_l, received_at)"
                " SELECT device_id, ts, register_l, received_at FROM incoming_readings"
                " ON CONFLICT DO NOTHING"
            )
            cur.execute("DELETE FROM incoming_readings")
        if events:
            # Unique by construction: (device, ts, seq) is part of the receipt key inserted above.
            with cur.copy(
                "COPY events (device_id, ts, seq, kind, note, received_at, checkin_id) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(_EVENT_TYPES)
                for e in events:
                    copy.write_row((e.device_id, e.ts, e.seq, e.kind, e.note, e.received_at, e.checkin_id))
        if statuses:
            with cur.copy(
                "COPY status_reports (device_id, ts, seq, online, battery_pct, rssi_dbm, fw, received_at)"
                " FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(_STATUS_TYPES)
                write = copy.write_row
                for st in statuses:
                    write((st.device_id, st.ts, st.seq, st.online, st.battery_pct, st.rssi_dbm, st.fw, st.received_at))


def _insert_rejects(conn: psycopg.Connection, rejected: Sequence[Rejected]) -> None:
    if not rejected:
        return
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY rejects (received_at, topic, device_id, reason, detail, payload, payload_size)"
            " FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(_REJECT_TYPES)
        for r in rejected:
            copy.write_row(
                (
                    r.received_at,
                    _storable(r.topic[:1024]),
                    r.device_id,
                    r.reason.value,
                    _storable(r.detail),
                    r.payload[:MAX_KEPT_PAYLOAD],
                    len(r.payload),
                )
            )


def _storable(text: str) -> str:
    """Text PostgreSQL accepts: a NUL or an unpaired surrogate would fail the whole batch."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    return text.encode("utf-8", "replace").decode("utf-8")


# --- Ingest health -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SequenceGaps:
    """Lost uplinks of one device among the messages received since a moment.

    ``missing`` messages were numbered by the device but never arrived; ``restarts`` counts jumps too
    large to be losses (the device restarted its counter or was replaced).
    """

    device_id: str
    messages: int
    missing: int
    restarts: int
    first_ts: datetime
    last_ts: datetime


def sequence_gaps(conn: psycopg.Connection, since: datetime, *, max_gap: int = 10_000) -> list[SequenceGaps]:
    """Per-device sequence gaps among receipts received since ``since``; devices with gaps, worst first.

    Receipts are ordered by device time (then ``seq``), so late or out-of-order arrival and several
    workers sharing a subscription do not matter. ``step = (seq - previous) mod 2**32`` handles the wrap
    from ``2**32 - 1`` to 0; a step of 0 (a repeat with a new timestamp) or in the upper half (a device
    clock that went back) counts nothing; a step above ``max_gap`` is a counter restart, not losses.
    """
    rows = conn.execute(
        "WITH ordered AS ("
        " SELECT device_id, ts, seq, lag(seq) OVER (PARTITION BY device_id ORDER BY ts, seq) AS previous"
        " FROM message_receipts WHERE received_at >= %(since)s"
        "), steps AS ("
        " SELECT device_id, ts, mod(mod(seq - previous, %(m)s) + %(m)s, %(m)s) AS step FROM ordered"
        ")"
        " SELECT device_id, count(*) AS messages,"
        " coalesce(sum(step - 1) FILTER (WHERE step BETWEEN 2 AND %(max_gap)s), 0) AS missing,"
        " count(*) FILTER (WHERE step > %(max_gap)s AND step <= %(half)s) AS restarts,"
        " min(ts), max(ts)"
        " FROM steps GROUP BY device_id"
        " HAVING coalesce(sum(step - 1) FILTER (WHERE step BETWEEN 2 AND %(max_gap)s), 0) > 0"
        " OR count(*) FILTER (WHERE step > %(max_gap)s AND step <= %(half)s) > 0"
        " ORDER BY missing DESC, device_id",
        {"since": since, "m": SEQ_MODULUS, "max_gap": max_gap, "half": SEQ_MODULUS // 2},
    ).fetchall()
    return [SequenceGaps(r[0], int(r[1]), int(r[2]), int(r[3]), r[4], r[5]) for r in rows]


@dataclass(frozen=True, slots=True)
class Consumption:
    """One meter reading with the litres used since the previous reading of the same series.

    ``consumption_l`` is None where a series starts (the first reading, or after the register went
    backwards or jumped impossibly far): unknown, never negative or huge.
    """

    ts: datetime
    register_l: float
    series: int
    consumption_l: float | None


def meter_consumption(
    conn: psycopg.Connection,
    device_id: str,
    start: datetime,
    end: datetime,
    *,
    max_flow_l_per_s: float = 1.5,
    slack_l: float = 10.0,
) -> list[Consumption]:
    """Readings of ``device_id`` in ``[start, end)`` in device-time order with their consumption.

    The reading just before ``start`` is used for the first difference but not returned.
    """
    rows = conn.execute(
        "SELECT ts, register_l, series, consumption_l FROM meter_consumption(%s, %s, %s, %s, %s) WHERE in_range",
        (device_id, start, end, max_flow_l_per_s, slack_l),
    ).fetchall()
    return [Consumption(r[0], float(r[1]), int(r[2]), None if r[3] is None else float(r[3])) for r in rows]
