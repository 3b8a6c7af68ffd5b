"""The ingest writer: drains the inbox in batches, stores them, commits, then acknowledges.

A batch closes at ``batch_rows`` messages or ``flush_ms`` after its first message, whichever comes
first, which bounds both per-row cost and latency. The order for every batch is fixed:

1. rate-limit per device (a flood is rejected, counted and kept, not stored as data);
2. resolve the batch's device ids, decode, store readings/events/rejects in one transaction, commit;
3. acknowledge the batch to the broker (only now: a crash before this means redelivery, not loss);
4. hand the first-time messages to ``on_committed`` (detectors see only committed data).

If PostgreSQL is down or slow, step 2 is retried with exponential backoff on a fresh connection,
holding the batch and acknowledging nothing; the bounded inbox fills and back-pressure reaches the
broker (see ``mqtt_source``). Nothing accepted is ever dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from ingest.decode import DecodePolicy, decode, parse_topic
from ingest.metrics import IngestMetrics
from ingest.mqtt_source import Inbound
from ingest.ratelimit import RateLimiter
from ingest.registry import RegistryCache
from schemas.intake import Accepted, Rejected
from schemas.kinds import RejectReason
from storage.messages import StoreResult, prepare_connection, store_batch

log = logging.getLogger(__name__)

CommittedHandler = Callable[[list[Accepted]], None]
AckHandler = Callable[[list[Inbound]], int]


class BatchWriter:
    def __init__(
        self,
        *,
        conninfo: str,
        inbox: queue.Queue[Inbound],
        ack: AckHandler,
        on_committed: CommittedHandler,
        policy: DecodePolicy,
        limiter: RateLimiter,
        metrics: IngestMetrics,
        batch_rows: int = 1000,
        flush_ms: int = 50,
    ) -> None:
        self._conninfo = conninfo
        self._inbox = inbox
        self._ack = ack
        self._on_committed = on_committed
        self._policy = policy
        self._limiter = limiter
        self._metrics = metrics
        self._batch_rows = batch_rows
        self._flush_s = flush_ms / 1000
        self._registry = RegistryCache()
        self._conn: psycopg.Connection | None = None
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        """Thread body: runs until ``stop``; the batch in hand is finished or left unacknowledged."""
        try:
            while not self._stopping.is_set():
                batch = self._collect()
                if batch:
                    self._handle(batch)
        finally:
            if self._conn is not None:
                self._conn.close()

    def _collect(self) -> list[Inbound]:
        try:
            first = self._inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self._flush_s
        while len(batch) < self._batch_rows:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._inbox.get(timeout=remaining) if remaining > 0 else self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _handle(self, batch: list[Inbound]) -> None:
        self._metrics.received.inc(len(batch))
        now = time.monotonic()
        limited = [not self._limiter.allow(_device_of(m.topic, self._policy), now) for m in batch]
        result = self._store_with_retry(batch, limited)
        if result is None:
            return  # stopping while the database is away: the broker redelivers the unacknowledged batch
        self._ack(batch)
        self._observe(result)
        if result.new:
            self._on_committed(result.new)

    def _store_with_retry(self, batch: list[Inbound], limited: list[bool]) -> StoreResult | None:
        delay = 0.1
        while True:
            try:
                return self._store(batch, limited)
            except psycopg.Error as exc:
                self._metrics.store_failures.inc()
                log.warning("storing a batch of %d failed (%s); retrying in %.1fs", len(batch), exc, delay)
                self._drop_connection()
                if self._stopping.wait(delay):
                    return None
                delay = min(delay * 2, 5.0)

    def _store(self, batch: list[Inbound], limited: list[bool]) -> StoreResult:
        conn = self._connection()
        started = time.perf_counter()
        self._registry.resolve(conn, {_device_of(m.topic, self._policy) for m in batch})
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for message, over_limit in zip(batch, limited, strict=True):
            if over_limit:
                rejected.append(
                    Rejected(
                        RejectReason.RATE_LIMITED,
                        "device exceeds its message rate limit",
                        message.topic,
                        message.payload,
                        message.received_at,
                        _device_of(message.topic, self._policy) or None,
                    )
                )
                continue
            outcome = decode(message.topic, message.payload, message.received_at, self._registry.get, self._policy)
            (accepted if isinstance(outcome, Accepted) else rejected).append(outcome)  # type: ignore[arg-type]
        with conn.transaction():
            result = store_batch(conn, accepted, rejected)
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

    def _observe(self, result: StoreResult) -> None:
        self._metrics.batch_size.observe(len(result.new) + result.duplicates + result.rejects)
        self._metrics.duplicates.inc(result.duplicates)
        committed_at = datetime.now(UTC)
        for item in result.new:
            self._metrics.stored.labels(item.channel.value).inc()
            self._metrics.lag_seconds.observe(max(0.0, (committed_at - item.message.ts).total_seconds()))
            if item.clock_skewed:
                self._metrics.clock_skewed.inc()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            prepare_connection(self._conn)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _device_of(topic: str, policy: DecodePolicy) -> str:
    parsed = parse_topic(topic, policy.topic_root)
    return parsed[0] if parsed else ""
