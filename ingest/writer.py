"""The ingest writer: drains the inbox in batches, stores them, commits, then acknowledges.

A batch closes at ``batch_rows`` messages or ``flush_ms`` after its first message, whichever comes
first, which bounds both per-row cost and latency. The order for every batch is fixed:

1. rate-limit per device (a flood is rejected, counted and kept, not stored as data);
2. resolve the batch's device ids, decode, store readings/events/rejects in one transaction, commit;
3. acknowledge the batch to the broker (only now: a crash before this means redelivery, not loss);
4. hand the first-time messages to ``on_committed`` (detectors see only committed data).

Two writer threads (``writers``) share the inbox: while one waits for PostgreSQL to commit its batch
(the GIL is released), the other decodes the next one. Batches are numbered when they are taken from
the inbox and acknowledged strictly in that order (MQTT wants PUBACKs in the order the PUBLISHes
arrived), which also keeps ``on_committed`` in arrival order; the rate limiter runs under the same lock
as the taking, and the metrics and sequence tracker under the acknowledging one. Each thread has its
own connection. Two concurrent batches holding the same redelivered message can deadlock on its key;
PostgreSQL aborts one, and it is retried like any other transient failure.

Failures in step 2, by kind:

- the database is down, restarting or slow (``OperationalError``, ``InterfaceError``, anything not
  listed below): retried with exponential backoff on a fresh connection, holding the batch and
  acknowledging nothing; the bounded inbox fills and back-pressure reaches the broker (see
  ``mqtt_source``). Nothing accepted is ever dropped, and memory stays bounded by the inbox.
- the data itself is refused (``DataError``, ``IntegrityError``): retrying cannot help, and one such
  message must not hold up every other device (a poison message). The batch is stored again one
  message at a time; the message that fails alone is kept as a ``storage_refused`` reject. The decoder
  already refuses what it knows PostgreSQL cannot store; this is the net under it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import psycopg
from psycopg import errors

from ingest.decode import DecodePolicy, decode, is_downlink, parse_topic, storable_text
from ingest.inbox import Inbox
from ingest.metrics import IngestMetrics
from ingest.mqtt_source import Inbound
from ingest.ratelimit import RateLimiter
from ingest.registry import RegistryCache
from ingest.sequence import SequenceTracker
from schemas.intake import Accepted, Rejected
from schemas.kinds import RejectReason
from storage.messages import StoreResult, prepare_connection, store_batch

log = logging.getLogger(__name__)

CommittedHandler = Callable[[list[Accepted]], None]
AckHandler = Callable[[list[Inbound]], int]

# Errors about the data, not the connection: retrying the same rows would fail forever.
_DATA_ERRORS = (errors.DataError, errors.IntegrityError)
# At most a second between attempts: an sos waits for the next one after the database is back (a
# failover's end), and a few writer threads trying once a second cost a recovering server nothing.
# 5 s made presses wait 2-5 s after a database failover had ended (bench/failover.py).
_MAX_BACKOFF_S = 1.0


class BatchWriter:
    def __init__(
        self,
        *,
        conninfo: str,
        inbox: Inbox[Inbound],
        ack: AckHandler,
        on_committed: CommittedHandler,
        policy: DecodePolicy,
        limiter: RateLimiter,
        metrics: IngestMetrics,
        batch_rows: int = 1000,
        flush_ms: int = 50,
        writers: int = 2,
        skip_channels: frozenset[str] = frozenset(),
    ) -> None:
        self._conninfo = conninfo
        self._inbox = inbox
        self._ack = ack
        self._on_committed = on_committed
        self._policy = policy
        self._limiter = limiter
        self._metrics = metrics
        self._batch_rows = batch_rows
        # Channels another lane (its own MQTT session) stores: acknowledged here, never stored twice.
        self._skip_channels = skip_channels
        self._flush_s = flush_ms / 1000
        self._registry = RegistryCache()
        self._sequences = SequenceTracker()
        self.writers = writers
        self._local = threading.local()  # each writer thread's own connection
        self._stopping = threading.Event()
        self._taking = threading.Lock()  # taking a batch, numbering it and rate-limiting it
        self._next_ticket = 0
        self._turn = threading.Condition()  # acknowledging, in ticket order
        self._ack_ticket = 0

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        """Thread body (``writers`` threads run it): until ``stop``, take a batch and handle it."""
        try:
            self._connect_early()
            while not self._stopping.is_set():
                with self._taking:
                    taken = self._collect()
                    if not taken:
                        continue
                    batch, skipped = self._split(taken)
                    ticket = self._next_ticket
                    self._next_ticket += 1
                    now = time.monotonic()
                    root = self._policy.topic_root
                    devices = [_device_of(m.topic, root) for m in batch]
                    allow = self._limiter.allow
                    limited = [not allow(device_id, now) for device_id in devices]
                self._handle(ticket, batch, devices, limited, skipped)
        finally:
            conn: psycopg.Connection | None = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()

    def _split(self, taken: list[Inbound]) -> tuple[list[Inbound], list[Inbound]]:
        """(messages to store here, messages acknowledged without storing: those another lane stores,
        and carewatch's own downlink commands, which a ``dev/#`` subscription also receives)."""
        root = self._policy.topic_root
        if not self._skip_channels and not any(is_downlink(message.topic, root) for message in taken):
            return taken, []
        keep: list[Inbound] = []
        skip: list[Inbound] = []
        for message in taken:
            parsed = parse_topic(message.topic, root)
            mine = parsed is not None and parsed[1].value in self._skip_channels
            (skip if mine or is_downlink(message.topic, root) else keep).append(message)
        return keep, skip

    def _collect(self) -> list[Inbound]:
        batch = self._inbox.take(self._batch_rows, 0.2)
        if not batch:
            return batch
        deadline = time.monotonic() + self._flush_s
        while len(batch) < self._batch_rows:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self._inbox.qsize() == 0:
                # Let a few messages gather instead of waking for each one (bounded by flush_ms).
                time.sleep(min(remaining, 0.002))
            batch.extend(self._inbox.take(self._batch_rows - len(batch), 0))
        return batch

    def _handle(
        self, ticket: int, batch: list[Inbound], devices: list[str], limited: list[bool], skipped: list[Inbound]
    ) -> None:
        self._metrics.received.inc(len(batch))
        result = self._store_with_retry(batch, devices, limited) if batch else StoreResult([], 0, 0)
        with self._turn:
            while self._ack_ticket != ticket:
                if self._stopping.is_set():
                    return  # unacknowledged: the broker redelivers, storage deduplicates
                self._turn.wait(0.1)
            try:
                if result is not None:  # None: stopping while the database is away; redelivered later
                    self._ack(batch + skipped if skipped else batch)
                    self._observe(result)
                    if result.new:
                        self._hand_off(result.new)
            finally:
                self._ack_ticket += 1
                self._turn.notify_all()

    def _hand_off(self, new: list[Accepted]) -> None:
        try:
            self._on_committed(new)
        except Exception:  # the messages are committed and acknowledged; a failing consumer must not stop ingest
            log.exception("on_committed handler failed for a batch of %d committed messages", len(new))

    def _store_with_retry(self, batch: list[Inbound], devices: list[str], limited: list[bool]) -> StoreResult | None:
        delay = 0.1
        while True:
            try:
                return self._store(batch, devices, limited)
            except psycopg.Error as exc:
                self._metrics.store_failures.inc()
                log.warning("storing a batch of %d failed (%s); retrying in %.1fs", len(batch), exc, delay)
                self._drop_connection()
                if self._stopping.wait(delay):
                    return None
                delay = min(delay * 2, _MAX_BACKOFF_S)

    def _store(self, batch: list[Inbound], devices: list[str], limited: list[bool]) -> StoreResult:
        conn = self._connection()
        started = time.perf_counter()
        self._registry.resolve(conn, set(devices))
        outcomes = self._decode(batch, devices, limited)
        accepted = [o for o in outcomes if isinstance(o, Accepted)]
        rejected = [o for o in outcomes if isinstance(o, Rejected)]
        try:
            with conn.transaction():
                result = store_batch(conn, accepted, rejected)
        except _DATA_ERRORS as exc:
            log.error("a batch of %d was refused by PostgreSQL (%s): storing it message by message", len(batch), exc)
            result = self._store_one_by_one(conn, batch, outcomes)
            rejected = [o for o in outcomes if isinstance(o, Rejected)]
        self._metrics.commit_seconds.observe(time.perf_counter() - started)
        for reject in rejected:
            self._metrics.rejected.labels(reject.reason.value).inc()
            log.info(
                "rejected message from %s on %s: %s (%s)",
                reject.device_id or "?",
                reject.topic[:200],
                reject.reason.value,
                reject.detail[:200],
            )
        return result

    def _decode(self, batch: list[Inbound], devices: list[str], limited: list[bool]) -> list[Accepted | Rejected]:
        lookup, policy = self._registry.get, self._policy
        outcomes: list[Accepted | Rejected] = []
        for message, device_id, over_limit in zip(batch, devices, limited, strict=True):
            if over_limit:
                outcomes.append(
                    Rejected(
                        RejectReason.RATE_LIMITED,
                        "device exceeds its message rate limit",
                        message.topic,
                        message.payload,
                        message.received_at,
                        device_id or None,
                    )
                )
            else:
                outcomes.append(decode(message.topic, message.payload, message.received_at, lookup, policy))
        return outcomes

    def _store_one_by_one(
        self, conn: psycopg.Connection, batch: list[Inbound], outcomes: list[Accepted | Rejected]
    ) -> StoreResult:
        """Poison-message path: one transaction per message; refused ones become rejects (in place)."""
        new: list[Accepted] = []
        duplicates = 0
        for index, (message, outcome) in enumerate(zip(batch, outcomes, strict=True)):
            try:
                with conn.transaction():
                    if isinstance(outcome, Accepted):
                        single = store_batch(conn, [outcome], [])
                        new.extend(single.new)
                        duplicates += single.duplicates
                    else:
                        store_batch(conn, [], [outcome])
            except _DATA_ERRORS as exc:
                refused = Rejected(
                    RejectReason.INVALID_VALUE,
                    storable_text(f"PostgreSQL refused the message: {exc.sqlstate} {exc}")[:300],
                    message.topic,
                    message.payload,
                    message.received_at,
                    outcome.device.device_id if isinstance(outcome, Accepted) else outcome.device_id,
                )
                with conn.transaction():
                    store_batch(conn, [], [refused])
                outcomes[index] = refused
        rejects = sum(1 for o in outcomes if isinstance(o, Rejected))
        return StoreResult(new=new, duplicates=duplicates, rejects=rejects)

    def _observe(self, result: StoreResult) -> None:
        metrics = self._metrics
        metrics.batch_size.observe(len(result.new) + result.duplicates + result.rejects)
        if result.duplicates:
            metrics.duplicates.inc(result.duplicates)
        committed_at = time.time()
        per_channel: Counter[str] = Counter()
        skewed = gaps = 0
        observe_lag = metrics.lag_seconds.observe
        track = self._sequences.observe
        for item in result.new:
            message = item.message
            per_channel[item.channel.value] += 1
            observe_lag(max(0.0, committed_at - message.ts.timestamp()))
            gaps += track(item.device.device_id, message.seq)
            skewed += item.clock_skewed
        for channel, count in per_channel.items():
            metrics.stored.labels(channel).inc(count)
        if skewed:
            metrics.clock_skewed.inc(skewed)
        if gaps:
            metrics.sequence_gaps.inc(gaps)

    def _connection(self) -> psycopg.Connection:
        conn: psycopg.Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            prepare_connection(conn)
            self._local.conn = conn
        return conn

    def _connect_early(self) -> None:
        """Open this thread's connection before the first batch arrives, so that batch (often the
        start of a broker backlog after a restart) does not also wait for a connection and its staging
        tables. A database that is down now is not an error here: the batch retry loop reconnects."""
        try:
            self._connection()
        except psycopg.Error as exc:
            log.warning("ingest writer could not connect to PostgreSQL yet (%s); will retry with the first batch", exc)
            self._drop_connection()

    def _drop_connection(self) -> None:
        conn: psycopg.Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()


def _device_of(topic: str, topic_root: str) -> str:
    parsed = parse_topic(topic, topic_root)
    return parsed[0] if parsed else ""
