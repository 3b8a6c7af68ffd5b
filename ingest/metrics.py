"""Prometheus metrics of the ingest. Created per registry so tests and several workers stay isolated.

What each answers (all names start ``carewatch_ingest_``; counters get ``_total`` when exposed):

- ``received`` / ``stored{channel}`` / ``rejected{reason}`` / ``duplicates``: where every message went.
  ``received`` = stored + rejected + duplicates once the batches in hand are committed.
- ``sequence_gaps``: messages a device numbered but that never arrived (lost uplinks), counted live
  per worker; ``storage.messages.sequence_gaps`` is the exact per-device figure.
- ``clock_skewed``: accepted messages whose device clock is off by more than the tolerance.
- ``batch_size`` / ``commit_seconds``: how the writer batches and how long store + commit takes.
- ``lag_seconds``: device time → commit, the end-to-end lag (hours for late NB-IoT batch uploads).
- ``backlog``: messages received and waiting for the writer (bounded by ``max_backlog``; full means
  the database is behind and back-pressure is holding messages in the broker).
- ``store_failures``: failed batch commits, retried (a database outage shows here first).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600, 86400, 172800)
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter("carewatch_ingest_received", "MQTT messages received", registry=registry)
        self.stored = Counter(
            "carewatch_ingest_stored", "Messages stored for the first time", ["channel"], registry=registry
        )
        self.rejected = Counter(
            "carewatch_ingest_rejected", "Messages rejected, by reason", ["reason"], registry=registry
        )
        self.duplicates = Counter(
            "carewatch_ingest_duplicates",
            "Redelivered or replayed messages already stored",
            registry=registry,
        )
        self.sequence_gaps = Counter(
            "carewatch_ingest_sequence_gaps",
            "Messages missing from devices' sequence numbers (lost uplinks), as seen by this worker",
            registry=registry,
        )
        self.clock_skewed = Counter(
            "carewatch_ingest_clock_skewed", "Accepted messages whose device clock is off", registry=registry
        )
        self.batch_size = Histogram(
            "carewatch_ingest_batch_size",
            "Messages per committed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000),
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "carewatch_ingest_commit_seconds",
            "Time to decode, store and commit one batch",
            buckets=_COMMIT_BUCKETS,
            registry=registry,
        )
        self.lag_seconds = Histogram(
            "carewatch_ingest_lag_seconds",
            "Device time to commit (end-to-end lag)",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.backlog = Gauge(
            "carewatch_ingest_backlog", "Messages received and waiting for the writer", registry=registry
        )
        self.store_failures = Counter(
            "carewatch_ingest_store_failures", "Failed batch commits (retried)", registry=registry
        )
