"""The ingest worker: one or two lanes of ``MqttSource`` → bounded inbox → ``BatchWriter`` threads.

Lanes keep emergencies out of the telemetry queue. With ``urgent_lane`` on (the default):
- the urgent lane is its own MQTT session (client id ``{client_id}-urgent``) subscribed to the
  ``event`` channel only, with small batches and a short flush, so an ``sos`` or a smoke ``alarm`` is
  committed and handed to the detectors in milliseconds even when telemetry and status heartbeats are
  hours behind (a broker backlog after an outage, NB-IoT batch uploads, a slow database);
- the bulk lane (client id ``{client_id}``) subscribes to ``{root}/dev/#``: telemetry and status, plus
  any topic that does not fit the scheme (kept as a ``bad_topic`` reject). Its copies of ``event``
  messages are acknowledged without being stored, since the urgent session has its own copy and
  stores it. Events are rare (presses and alarms, a few per device per month), so receiving them twice
  costs nothing measurable; heartbeats, which are most of the traffic, are not duplicated
  (bench/ingest.py: putting ``status`` in the urgent lane halved the drain rate).
Each session is persistent and acknowledges only after commit, so the guarantees hold per lane.

The urgent lane's subscription is never shared (``share_group`` applies to the bulk lane only): every
node, and every ingest process, receives and stores every event; storage keeps one (the receipt key
device, seq, device time is unique, ``ON CONFLICT DO NOTHING``). Events are rare, so the copies cost
nothing, and they buy two things a shared subscription cannot give on Mosquitto:
- a broker restart loses no event. Mosquitto 2.0 does not write shared subscriptions to its
  persistence file (``persist__subs_save`` walks the normal subscriptions only), so after a restart a
  session comes back without its ``$share/...`` subscription until the client subscribes again, and a
  device that reconnects first has its message acknowledged and dropped (no subscriber matches). A
  normal subscription of a persistent session is restored with the session and queues at once;
- an sos never waits in a dead node's session for that node to come back (a shared subscription
  member's session keeps receiving its share while disconnected): the other nodes have their own copy.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from ingest.decode import DecodePolicy
from ingest.inbox import Inbox
from ingest.metrics import IngestMetrics
from ingest.mqtt_source import Inbound, MqttSource
from ingest.ratelimit import RateLimiter
from ingest.writer import BatchWriter, CommittedHandler

log = logging.getLogger(__name__)

URGENT_CHANNELS = frozenset({"event"})


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
    urgent_lane: bool = True


class _Lane:
    def __init__(
        self,
        *,
        name: str,
        config: IngestConfig,
        client_id: str,
        share_group: str,
        filters: Sequence[str],
        skip_channels: frozenset[str],
        batch_rows: int,
        flush_ms: int,
        writers: int,
        max_backlog: int,
        mqtt_url: str,
        database_url: str,
        on_committed: CommittedHandler,
        metrics: IngestMetrics,
    ) -> None:
        self.inbox: Inbox[Inbound] = Inbox(max_backlog)
        self.source = MqttSource(
            url=mqtt_url,
            client_id=client_id,
            topic_root=config.policy.topic_root,
            inbox=self.inbox,
            share_group=share_group,
            filters=filters,
        )
        self.writer = BatchWriter(
            conninfo=database_url,
            inbox=self.inbox,
            ack=self.source.ack,
            on_committed=on_committed,
            policy=config.policy,
            limiter=RateLimiter(rate_per_s=config.device_rate_per_s, burst=config.device_rate_burst),
            metrics=metrics,
            batch_rows=batch_rows,
            flush_ms=flush_ms,
            writers=writers,
            skip_channels=skip_channels,
        )
        self.threads = [
            threading.Thread(target=self.writer.run, name=f"ingest-{name}-writer-{k}", daemon=True)
            for k in range(writers)
        ]


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
        self.metrics = IngestMetrics(registry)
        common = {
            "config": config,
            "mqtt_url": mqtt_url,
            "database_url": database_url,
            "on_committed": on_committed,
            "metrics": self.metrics,
        }
        self._lanes: list[_Lane] = []
        if config.urgent_lane:
            self._lanes.append(
                _Lane(
                    name="urgent",
                    client_id=f"{config.client_id}-urgent",
                    # Never shared: see the module docstring (every node stores every event).
                    share_group="",
                    filters=("+/event",),
                    skip_channels=frozenset(),
                    batch_rows=min(config.batch_rows, 200),
                    flush_ms=min(config.flush_ms, 10),
                    writers=1,
                    max_backlog=max(100, config.max_backlog // 5),
                    **common,  # type: ignore[arg-type]
                )
            )
        self._lanes.append(
            _Lane(
                name="bulk",
                client_id=config.client_id,
                share_group=config.share_group,
                filters=("#",),
                skip_channels=URGENT_CHANNELS if config.urgent_lane else frozenset(),
                batch_rows=config.batch_rows,
                flush_ms=config.flush_ms,
                writers=config.writers,
                max_backlog=config.max_backlog,
                **common,  # type: ignore[arg-type]
            )
        )
        self.metrics.backlog.set_function(lambda: self.backlog)
        self.connected = _AllConnected([lane.source.connected for lane in self._lanes])

    @property
    def sources(self) -> list[MqttSource]:
        return [lane.source for lane in self._lanes]

    @property
    def backlog(self) -> int:
        return sum(lane.inbox.qsize() for lane in self._lanes)

    def start(self, *, wait_connected_s: float = 10.0) -> None:
        for lane in self._lanes:
            for thread in lane.threads:
                thread.start()
            lane.source.start()
        if not self.connected.wait(wait_connected_s):
            log.warning("ingest not yet connected to the broker after %.0fs; still trying", wait_connected_s)

    def stop(self) -> None:
        for lane in self._lanes:
            lane.source.stop()
            lane.writer.stop()
        for lane in self._lanes:
            for thread in lane.threads:
                thread.join(timeout=10)


class _AllConnected:
    """``is_set``/``wait`` over several lanes' connection events: connected means every lane is."""

    def __init__(self, events: list[threading.Event]) -> None:
        self._events = events

    def is_set(self) -> bool:
        return all(event.is_set() for event in self._events)

    def wait(self, timeout: float) -> bool:
        return all(event.wait(timeout) for event in self._events)
