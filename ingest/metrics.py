"""Prometheus metrics of the ingest. Created per registry so tests and several workers stay isolated."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600, 86400, 172800)


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
            "carewatch_ingest_commit_seconds", "Time to store and commit one batch", registry=registry
        )
        self.lag_seconds = Histogram(
            "carewatch_ingest_lag_seconds",
            "Device time to commit (end-to-end lag)",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.store_failures = Counter(
            "carewatch_ingest_store_failures", "Failed batch commits (retried)", registry=registry
        )
