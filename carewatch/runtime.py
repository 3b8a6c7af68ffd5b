"""The whole pipeline in one process: ingest → detectors → alerting → API.

``Pipeline`` wires the stages with explicit objects (no globals) and owns their threads:
- the ingest (paho network thread + batch writer thread);
- the detector runner (one thread; it is handed every committed batch);
- the dispatcher (one thread; woken as soon as alerts change, and polling for retries and escalations);
- optionally the API, served by uvicorn in a thread.
Several pipelines may run against the same broker and database: the ingest shares one subscription
(``$share``) and dispatchers lock outbox rows with ``SKIP LOCKED``.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import uvicorn
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from alerting.channels import Channel, WebhookChannel
from alerting.dispatcher import Dispatcher
from alerting.service import AlertingConfig
from api.app import create_app
from carewatch.detector_runner import DetectorRunner
from carewatch.settings import Settings
from detectors import DetectorSuiteConfig
from ingest.decode import DecodePolicy
from ingest.service import IngestConfig, IngestService

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
        ),
        batch_rows=settings.ingest_batch_rows,
        flush_ms=settings.ingest_flush_ms,
        max_backlog=settings.ingest_max_backlog,
        device_rate_per_s=settings.device_rate_per_s,
        device_rate_burst=settings.device_rate_burst,
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
        self.alerting = AlertingConfig(delivery_deadline=timedelta(seconds=settings.delivery_deadline_s))
        self.channels: dict[str, Channel] = channels or {
            "webhook": WebhookChannel(timeout_s=settings.delivery_timeout_s)
        }
        self.dispatcher = Dispatcher(
            conninfo=database_url, channels=self.channels, config=self.alerting, poll_s=settings.dispatch_poll_s
        )
        self.detectors = DetectorRunner(
            conninfo=database_url,
            config=detector_config or DetectorSuiteConfig(),
            alerting=self.alerting,
            on_alerts=lambda alert_ids: self.dispatcher.wake.set(),
            tick_s=settings.detector_tick_s,
        )
        self.ingest = IngestService(
            config=ingest_config(settings),
            mqtt_url=mqtt_url,
            database_url=database_url,
            on_committed=self.detectors.submit,
            registry=self.metrics,
        )
        self.pool = ConnectionPool(
            database_url, min_size=1, max_size=8, open=False, name="api", kwargs={"autocommit": True}
        )
        self._serve_api = serve_api
        self._server: uvicorn.Server | None = None
        self._threads: list[threading.Thread] = []

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def start(self) -> None:
        for name, target in (("detectors", self.detectors.run), ("dispatcher", self.dispatcher.run)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.ingest.start()
        if self._serve_api:
            self.pool.open(wait=True, timeout=30)
            app = create_app(
                pool=self.pool,
                alerting=self.alerting,
                metrics=self.metrics,
                on_alert_changed=lambda alert_id: self.dispatcher.wake.set(),
            )
            config = uvicorn.Config(
                app, host=self.settings.api_host, port=self.settings.api_port, log_level="warning", lifespan="off"
            )
            self._server = uvicorn.Server(config)
            thread = threading.Thread(target=self._server.run, name="api", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("pipeline started (api: %s)", self.api_url if self._serve_api else "off")

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self.ingest.stop()
        self.detectors.stop()
        self.dispatcher.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._serve_api:
            self.pool.close()
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()
        log.info("pipeline stopped")
