"""The alert dispatcher in its own process, and how it is built from settings.

Why a process: under load the ingest's MQTT and decode threads hold the GIL for most of every
millisecond, and a dispatcher thread in the same process queues behind them after each database round
trip and each HTTP send. Measured with ``bench/alert_latency.py`` (5,000 readings/s of background load):
in one process the notification stage (alert opened → webhook) had a p99 of about 250 ms; see
docs/alerting.md for the figures with the dispatcher in its own process.

Nothing else changes: dispatchers coordinate through the outbox (``SKIP LOCKED``, idempotency keys)
and are woken by the ``notifications_queued`` NOTIFY (migration 0005), so the process needs no channel
to the pipeline but the database. :class:`DispatcherProcess` restarts the child if it dies (logged as an
error); a notification it was sending is retried with the same idempotency key.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from alerting import setup as alerting_setup
from alerting.channels import Channel
from alerting.dispatcher import Dispatcher
from alerting.robots import RobotLimits
from alerting.service import AlertingConfig
from carewatch.child import start_child
from carewatch.settings import Settings

log = logging.getLogger(__name__)

_SPAWN = multiprocessing.get_context("spawn")


def alerting_from_settings(settings: Settings) -> AlertingConfig:
    return alerting_setup.alerting_config(
        delivery_deadline_s=settings.delivery_deadline_s,
        escalation_policy=settings.escalation_policy,
        quiet_hours=settings.quiet_hours,
        retry_base_s=settings.retry_base_s,
        retry_cap_s=settings.retry_cap_s,
        checkins=settings.checkins,
    )


def channels_from_settings(settings: Settings, mqtt_url: str) -> dict[str, Channel]:
    return alerting_setup.build_channels(
        delivery_timeout_s=settings.delivery_timeout_s,
        mqtt_url=mqtt_url,
        topic_root=settings.topic_root,
        app_channel=settings.app_channel,
        smtp_host=settings.smtp_host,
        smtp_port=settings.smtp_port,
        smtp_from=settings.smtp_from,
        smtp_username=settings.smtp_username,
        smtp_password=settings.smtp_password,
        smtp_starttls=settings.smtp_starttls,
        sms_gateway_url=settings.sms_gateway_url,
        sms_gateway_token=settings.sms_gateway_token,
        sms_template=settings.sms_template,
        checkin_gateway_url=settings.checkin_gateway_url,
        checkin_gateway_token=settings.checkin_gateway_token,
        checkin_secret=settings.checkin_secret,
        checkin_callback_base_url=checkin_callback_base(settings),
        template_sms=alerting_setup.template_sms_channel(
            settings.sms_provider,
            delivery_timeout_s=settings.delivery_timeout_s,
            sign_name=settings.sms_sign_name,
            templates=settings.sms_templates,
            max_chars=settings.sms_param_max_chars,
            aliyun_access_key_id=settings.sms_aliyun_access_key_id,
            aliyun_access_key_secret=settings.sms_aliyun_access_key_secret,
            aliyun_endpoint=settings.sms_aliyun_endpoint,
            tencent_secret_id=settings.sms_tencent_secret_id,
            tencent_secret_key=settings.sms_tencent_secret_key,
            tencent_sdk_app_id=settings.sms_tencent_sdk_app_id,
            tencent_region=settings.sms_tencent_region,
            tencent_endpoint=settings.sms_tencent_endpoint,
        ),
        public_url=settings.public_url,
        wecom_throttled_pause_s=settings.wecom_throttled_pause_s,
        dingtalk_throttled_pause_s=settings.dingtalk_throttled_pause_s,
    )


def robot_limits_from_settings(settings: Settings) -> RobotLimits:
    return RobotLimits(
        per_window=settings.robot_rate_limit,
        window_s=settings.robot_rate_window_s,
        max_queue_s=settings.robot_queue_max_s,
    )


def checkin_callback_base(settings: Settings) -> str:
    """Where the phone gateway sends the resident's answer: the API as the gateway reaches it."""
    scheme = "https" if settings.api_tls_cert_file else "http"
    return settings.checkin_callback_base_url or f"{scheme}://{settings.api_host}:{settings.api_port}"


def build_dispatcher(settings: Settings, database_url: str, channels: dict[str, Channel]) -> Dispatcher:
    return Dispatcher(
        conninfo=database_url,
        channels=channels,
        config=alerting_from_settings(settings),
        poll_s=settings.dispatch_poll_s,
        workers=settings.dispatch_workers,
        listen=True,
        robot_limits=robot_limits_from_settings(settings),
    )


def run_dispatcher(settings: Settings, mqtt_url: str, database_url: str, stop: threading.Event) -> None:
    """Deliver notifications until ``stop`` is set (the body of the child and of ``carewatch dispatch``)."""
    channels = channels_from_settings(settings, mqtt_url)
    dispatcher = build_dispatcher(settings, database_url, channels)
    thread = threading.Thread(target=dispatcher.run, name="dispatcher", daemon=True)
    thread.start()
    log.info("dispatcher running (%d workers, pid %d)", settings.dispatch_workers, os.getpid())
    try:
        stop.wait()
    finally:
        dispatcher.stop()
        thread.join(timeout=10)
        for channel in channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()


def _child(settings_json: str, mqtt_url: str, database_url: str, control: Connection) -> None:
    settings = Settings.model_validate_json(settings_json)
    run_dispatcher(settings, mqtt_url, database_url, start_child("dispatcher", settings.log_level, control))


class DispatcherProcess:
    """A supervised dispatcher child process: started, restarted if it dies, stopped on request."""

    def __init__(self, settings: Settings, mqtt_url: str, database_url: str) -> None:
        self._args = (settings.model_dump_json(), mqtt_url, database_url)
        self._control: Connection | None = None
        self._stopping = threading.Event()
        self._process: BaseProcess | None = None
        self._watchdog: threading.Thread | None = None
        self.restarts = 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._spawn()
        self._watchdog = threading.Thread(target=self._watch, name="dispatcher-watchdog", daemon=True)
        self._watchdog.start()

    def _spawn(self) -> None:
        if self._control is not None:
            self._control.close()
        reader, self._control = _SPAWN.Pipe(duplex=False)
        process = _SPAWN.Process(target=_child, args=(*self._args, reader), name="carewatch-dispatcher", daemon=True)
        process.start()
        reader.close()  # the child holds the only read end
        self._process = process

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            process = self._process
            if process is not None and not process.is_alive() and not self._stopping.is_set():
                log.error("dispatcher process exited (code %s); restarting it", process.exitcode)
                self.restarts += 1
                self._spawn()

    def stop(self) -> None:
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.send("stop")
            self._control.close()
            self._control = None
        process = self._process
        if process is not None:
            process.join(timeout=15)
            if process.is_alive():
                log.error("dispatcher process did not stop in 15 s; terminating it")
                process.terminate()
                process.join(timeout=5)
