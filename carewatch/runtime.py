"""The whole pipeline: ingest → detectors → alerting → API, as one supervised process tree.

``Pipeline`` wires the stages with explicit objects (no globals) and owns their threads and processes:
- the ingest, in ``ingest_processes`` supervised child processes by default (``carewatch.ingest_process``;
  they share one subscription and tell the detector runner when they committed), or in threads here
  (``ingest_process`` off);
- the detector runner (one thread here, with its lease keeper; it reads the commit-ordered feed of the
  partitions this node holds, carewatch.detector_runner);
- the dispatcher, in a supervised child process by default (``carewatch.dispatch_process``; woken by
  the outbox's NOTIFY, and polling for retries and escalations), or in threads here when channels are
  injected or ``dispatch_process`` is off;
- optionally the API, served by uvicorn in a thread.
Several pipelines (nodes) may run against one database and one broker, all active: each node has its
own ``mqtt_client_id``; on EMQX they share the telemetry subscription (the same ``mqtt_share_group``),
on Mosquitto each keeps a full one (a shared subscription does not survive a Mosquitto restart; storage
keeps one copy of what several nodes store; events are never shared, ingest.service), detection
is split into partitions leased to one node at a time (carewatch.partitions), dispatchers lock outbox
rows with ``SKIP LOCKED`` and the API is stateless (docs/operations.md, "Several nodes"). One node alone
holds every partition, with no extra configuration.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from datetime import timedelta

import uvicorn
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from alerting import setup as alerting_setup
from alerting.channels import Channel
from alerting.dispatcher import Dispatcher
from api.app import create_app
from api.feed import AlertFeed
from api.ratelimit import BucketLimit, RateLimits
from carewatch.broker.endpoints import live_broker, service_mqtt_url
from carewatch.broker.roles import Service
from carewatch.detector_runner import DetectorRunner, default_node_id
from carewatch.dispatch_process import (
    DispatcherProcess,
    alerting_from_settings,
    build_dispatcher,
    channels_from_settings,
)
from carewatch.ingest_process import IngestProcess
from carewatch.node_status import NodeMetrics, readiness_checks
from carewatch.partitions import LeaseKeeper
from carewatch.retention import RetentionJob, retention_from_settings
from carewatch.settings import Settings
from detectors import DetectorSuiteConfig
from ingest.decode import DecodePolicy
from ingest.service import IngestConfig, IngestService
from schemas.api import ReadyCheck

log = logging.getLogger(__name__)


def ingest_config(settings: Settings) -> IngestConfig:
    return IngestConfig(
        client_id=settings.mqtt_client_id,
        share_group=settings.mqtt_share_group,
        policy=DecodePolicy(
            topic_root=settings.topic_root,
            max_past=timedelta(seconds=settings.max_past_s),
            max_future=timedelta(seconds=settings.max_future_s),
            clock_skew_tolerance=timedelta(seconds=settings.clock_skew_tolerance_s),
            max_payload_bytes=settings.ingest_max_payload_bytes,
        ),
        batch_rows=settings.ingest_batch_rows,
        flush_ms=settings.ingest_flush_ms,
        max_backlog=settings.ingest_max_backlog,
        device_rate_per_s=settings.device_rate_per_s,
        device_rate_burst=settings.device_rate_burst,
        urgent_lane=settings.ingest_urgent_lane,
    )


def rate_limits(settings: Settings) -> RateLimits:
    return RateLimits(
        auth_failures=BucketLimit(burst=settings.api_auth_failure_burst, refill_s=settings.api_auth_failure_refill_s),
        token_mints=BucketLimit(burst=settings.api_token_mint_burst, refill_s=settings.api_token_mint_refill_s),
    )


class Pipeline:
    def __init__(
        self,
        *,
        settings: Settings,
        mqtt_url: str,
        database_url: str,
        serve_api: bool = True,
        channels: dict[str, Channel] | None = None,
        detector_config: DetectorSuiteConfig | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = CollectorRegistry()
        # Each service logs in to the broker as itself (carewatch.broker.endpoints; docs/operations.md).
        ingest_url = service_mqtt_url(settings, mqtt_url, Service.INGEST)
        dispatch_url = service_mqtt_url(settings, mqtt_url, Service.DISPATCHER)
        self.broker = live_broker(settings, mqtt_url)
        self._broker_stop = threading.Event()
        self.alerting = alerting_from_settings(settings)
        # The dispatcher runs in its own process unless channels are injected (tests with fakes): off the
        # ingest's GIL, a notification goes out in milliseconds under load (carewatch.dispatch_process).
        self.dispatcher_process: DispatcherProcess | None = None
        self.dispatcher: Dispatcher | None = None
        self.channels: dict[str, Channel] = {}
        if settings.dispatch_process and channels is None:
            self.dispatcher_process = DispatcherProcess(settings, dispatch_url, database_url)
        else:
            self.channels = channels or channels_from_settings(settings, dispatch_url)
            self.dispatcher = build_dispatcher(settings, database_url, self.channels)
        # Claim/decline replies from the caregiver app over MQTT.
        self.replies = (
            alerting_setup.reply_listener(
                mqtt_url=dispatch_url,
                topic_root=settings.topic_root,
                conninfo=database_url,
                config=self.alerting,
                on_changed=lambda alert_id: self._wake_dispatcher(),
            )
            if settings.app_channel
            else None
        )
        self.leases = LeaseKeeper(
            conninfo=database_url,
            node_id=settings.node_id or default_node_id(),
            ttl_s=settings.lease_ttl_s,
            renew_s=min(1.0, settings.lease_ttl_s / 4),
            api_url=self.api_url if serve_api else "",
        )
        self.detectors = DetectorRunner(
            conninfo=database_url,
            leases=self.leases,
            feed_poll_s=settings.feed_poll_s,
            config=detector_config or DetectorSuiteConfig(),
            alerting=self.alerting,
            on_alerts=lambda alert_ids: self._wake_dispatcher(),
            tick_s=settings.detector_tick_s,
            refresh_every_s=settings.detector_refresh_s,
        )
        # The ingest runs in its own process by default, so the detectors and the alert they open never
        # queue for a GIL that telemetry decoding holds (carewatch.ingest_process).
        self.ingest: IngestService | IngestProcess
        if settings.ingest_process:
            self.ingest = IngestProcess(
                config=ingest_config(settings),
                mqtt_url=ingest_url,
                database_url=database_url,
                on_committed=lambda hint: self.detectors.wake(),
                on_restarted=self.detectors.replay_recent,
                registry=self.metrics,
                workers=settings.ingest_processes,
                log_level=settings.log_level,
                switch_interval_s=settings.gil_switch_interval_ms / 1000,
            )
        else:
            self.ingest = IngestService(
                config=ingest_config(settings),
                mqtt_url=ingest_url,
                database_url=database_url,
                on_committed=self.detectors.submit,
                registry=self.metrics,
            )
        self.metrics.register(NodeMetrics(self.detectors))
        self.pool = ConnectionPool(
            database_url, min_size=1, max_size=8, open=False, name="api", kwargs={"autocommit": True}
        )
        # Raw data is kept only as long as configured (PIPL): policies or periodic deletes.
        self.retention = RetentionJob(
            conninfo=database_url, retention=retention_from_settings(settings), every_s=settings.retention_every_s
        )
        self._serve_api = serve_api
        self._server: uvicorn.Server | None = None
        self._app_feed: AlertFeed | None = None
        self._threads: list[threading.Thread] = []
        self._database_url = database_url

    def _wake_dispatcher(self) -> None:
        # In-process only; a dispatcher process is woken by the outbox's NOTIFY.
        if self.dispatcher is not None:
            self.dispatcher.wake.set()

    @property
    def api_url(self) -> str:
        scheme = "https" if self.settings.api_tls_cert_file else "http"
        return f"{scheme}://{self.settings.api_host}:{self.settings.api_port}"

    def start(self) -> None:
        # The alert path (detector runner, dispatcher) makes many short database round trips; after each
        # it must win the GIL back from CPU-bound decode and MQTT threads. Python's default 5 ms switch
        # interval turns that into tens of milliseconds per alert under load; 1 ms keeps emergencies fast
        # at a small throughput cost (see bench/alert_latency.py).
        sys.setswitchinterval(self.settings.gil_switch_interval_ms / 1000)
        if self.dispatcher_process is not None:
            self.dispatcher_process.start()
        targets = [("detectors", self.detectors.run)]
        if self.dispatcher is not None:
            targets.append(("dispatcher", self.dispatcher.run))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.ingest.start()
        self.retention.start()
        if self.replies is not None:
            self.replies.start()
        if self.broker is not None:
            # Login changes the broker missed (it was down) are applied again until it has them.
            args = (self._database_url, self._broker_stop, self.settings.broker_retry_s)
            thread = threading.Thread(target=self.broker.run_retries, args=args, name="broker-retries", daemon=True)
            thread.start()
            self._threads.append(thread)
        if self._serve_api:
            self.pool.open(wait=True, timeout=30)
            app = create_app(
                pool=self.pool,
                alerting=self.alerting,
                metrics=self.metrics,
                on_alert_changed=lambda alert_id: self._wake_dispatcher(),
                readiness_checks=self._readiness_checks(),
                checkin_secret=self.settings.checkin_secret,
                broker=self.broker,
                rate_limits=rate_limits(self.settings),
                page_language=self.settings.page_language,
            )
            self._app_feed = app.state.feed
            config = uvicorn.Config(
                app,
                host=self.settings.api_host,
                port=self.settings.api_port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=3,
                # HTTPS when a certificate is configured (Settings.api_tls_cert_file / api_tls_key_file).
                ssl_certfile=self.settings.api_tls_cert_file,
                ssl_keyfile=self.settings.api_tls_key_file,
            )
            self._server = uvicorn.Server(config)
            thread = threading.Thread(target=self._server.run, name="api", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("pipeline started (api: %s)", self.api_url if self._serve_api else "off")

    def _readiness_checks(self) -> list[Callable[[], ReadyCheck]]:
        """/readyz: the broker connection, the ingest backlog, this node's partitions, the feed's lag and the
        database role (the API adds database and dispatcher)."""
        limit = self.settings.ingest_max_backlog // 2

        def broker() -> ReadyCheck:
            ok = self.ingest.connected.is_set()
            return ReadyCheck(name="broker", ok=ok, detail="connected" if ok else "not connected")

        def ingest_backlog() -> ReadyCheck:
            backlog = self.ingest.backlog
            return ReadyCheck(name="ingest_backlog", ok=backlog < limit, detail=f"{backlog} messages queued")

        def dispatcher_process() -> ReadyCheck:
            process = self.dispatcher_process
            ok = process is None or process.alive
            restarts = process.restarts if process is not None else 0
            detail = "in this process" if process is None else f"{'running' if ok else 'down'}, {restarts} restart(s)"
            return ReadyCheck(name="dispatcher_process", ok=ok, detail=detail)

        return [broker, ingest_backlog, dispatcher_process, *readiness_checks(self.detectors, self.pool)]

    def stop(self) -> None:
        self._broker_stop.set()
        if self._app_feed is not None:
            self._app_feed.close()  # ends open SSE streams so the server can shut down
        if self._server is not None:
            self._server.should_exit = True
        self.ingest.stop()
        self.retention.stop()
        if self.replies is not None:
            self.replies.stop()
        self.detectors.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.dispatcher_process is not None:
            self.dispatcher_process.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._serve_api:
            self.pool.close()
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()
        if self.broker is not None:
            self.broker.close()
        log.info("pipeline stopped")
