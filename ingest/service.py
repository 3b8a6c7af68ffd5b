"""The ingest worker: ``MqttSource`` → bounded inbox → ``BatchWriter`` thread → committed handler."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from ingest.decode import DecodePolicy
from ingest.inbox import Inbox
from ingest.metrics import IngestMetrics
from ingest.mqtt_source import Inbound, MqttSource
from ingest.ratelimit import RateLimiter
from ingest.writer import BatchWriter, CommittedHandler

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestConfig:
    client_id: str = "carewatch-ingest"
    share_group: str = ""
    policy: DecodePolicy = field(default_factory=DecodePolicy)
    batch_rows: int = 1000
    flush_ms: int = 50
    # Writer threads: one decodes while another waits for its commit (see ingest.writer).
    writers: int = 2
    max_backlog: int = 50_000
    device_rate_per_s: float = 20.0
    device_rate_burst: int = 200


class IngestService:
    def __init__(
        self,
        *,
        config: IngestConfig,
        mqtt_url: str,
        database_url: str,
        on_committed: CommittedHandler,
        registry: CollectorRegistry,
    ) -> None:
        self._inbox: Inbox[Inbound] = Inbox(config.max_backlog)
        self.source = MqttSource(
            url=mqtt_url,
            client_id=config.client_id,
            topic_root=config.policy.topic_root,
            inbox=self._inbox,
            share_group=config.share_group,
        )
        self.metrics = IngestMetrics(registry)
        self.metrics.backlog.set_function(self._inbox.qsize)
        self._writer = BatchWriter(
            conninfo=database_url,
            inbox=self._inbox,
            ack=self.source.ack,
            on_committed=on_committed,
            policy=config.policy,
            limiter=RateLimiter(rate_per_s=config.device_rate_per_s, burst=config.device_rate_burst),
            metrics=self.metrics,
            batch_rows=config.batch_rows,
            flush_ms=config.flush_ms,
            writers=config.writers,
        )
        self._threads = [
            threading.Thread(target=self._writer.run, name=f"ingest-writer-{k}", daemon=True)
            for k in range(config.writers)
        ]

    @property
    def backlog(self) -> int:
        return self._inbox.qsize()

    def start(self, *, wait_connected_s: float = 10.0) -> None:
        for thread in self._threads:
            thread.start()
        self.source.start()
        if not self.source.connected.wait(wait_connected_s):
            log.warning("ingest not yet connected to the broker after %.0fs; still trying", wait_connected_s)

    def stop(self) -> None:
        self.source.stop()
        self._writer.stop()
        for thread in self._threads:
            thread.join(timeout=10)
