"""Configuration: ``CAREWATCH_*`` environment variables, then files named by ``CAREWATCH_*_FILE``
(secrets: ``carewatch.secret_files``), then an optional TOML file, then defaults.

Built once by the CLI and passed down; no module reads configuration on import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from carewatch.secret_files import FileSecretsSource


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CAREWATCH_", extra="forbid")

    # None means: start an embedded one (demo) or fail (production commands).
    mqtt_url: str | None = None
    database_url: str | None = None
    topic_root: str = "care/v1"
    mqtt_client_id: str = "carewatch-ingest"
    # MQTT 5 shared subscription group; empty means a plain subscription.
    mqtt_share_group: str = ""

    api_host: str = "127.0.0.1"
    api_port: int = 8080
    # Wrong tokens per client address, then one more per refill period; tokens minted per admin (api.ratelimit).
    api_auth_failure_burst: int = Field(default=20, ge=1)
    api_auth_failure_refill_s: float = Field(default=10.0, gt=0)
    api_token_mint_burst: int = Field(default=10, ge=1)
    api_token_mint_refill_s: float = Field(default=60.0, gt=0)

    # Ingest
    ingest_batch_rows: int = Field(default=1000, ge=1)
    ingest_flush_ms: int = Field(default=50, ge=1)
    ingest_max_backlog: int = Field(default=50_000, ge=100)
    # Events and status on their own MQTT session, so emergencies never wait behind telemetry.
    ingest_urgent_lane: bool = True
    # Run the ingest in a supervised child process, off the detectors' GIL (carewatch.ingest_process).
    ingest_process: bool = True
    # Ingest processes sharing one subscription (``$share``), all feeding this pipeline's detectors.
    ingest_processes: int = Field(default=1, ge=1, le=32)
    # The protocol's 16 KiB; raise only for meters that must upload bigger batches (docs/ingest.md).
    ingest_max_payload_bytes: int = Field(default=16 * 1024, ge=1024, le=1024 * 1024)
    clock_skew_tolerance_s: int = Field(default=300, ge=0)
    max_past_s: int = Field(default=14 * 24 * 3600, ge=0)
    max_future_s: int = Field(default=24 * 3600, ge=0)
    device_rate_per_s: float = Field(default=20.0, gt=0)
    device_rate_burst: int = Field(default=200, ge=1)

    # Detectors
    detector_tick_s: float = Field(default=5.0, gt=0)
    detector_refresh_s: float = Field(default=30.0, gt=0)  # reload household settings and devices
    offline_grace_factor: float = Field(default=2.0, ge=1)
    # Several nodes (issue 17, docs/operations.md "Several nodes"): this node's name among them (empty:
    # host-pid), how long a partition lease lasts without renewal (a dead node's partitions move after
    # it), and how often the detectors read the commit-ordered feed when no event woke them.
    node_id: str = ""
    lease_ttl_s: float = Field(default=5.0, ge=1, le=60)
    feed_poll_s: float = Field(default=0.1, gt=0, le=5)

    # Alerting
    dispatch_poll_s: float = Field(default=0.2, gt=0)
    delivery_timeout_s: float = Field(default=5.0, gt=0)
    delivery_deadline_s: int = Field(default=600, gt=0)
    # Alerting channels and policy (see docs/alerting.md and ``alerting.setup``).
    dispatch_workers: int = Field(default=4, ge=1, le=64)
    # Deliver from a supervised child process, off the ingest's GIL (carewatch.dispatch_process).
    dispatch_process: bool = True
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_cap_s: float = Field(default=60.0, gt=0)
    # Per severity, e.g. {critical = [{tiers = [1, 2], wait_s = 180}, {tiers = [3]}]}; missing ones keep defaults.
    escalation_policy: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    quiet_hours: str = "22:00-07:00"
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "carewatch@localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    sms_gateway_url: str | None = None
    sms_gateway_token: str | None = None
    sms_template: str | None = None
    # MQTT push to the caregiver app and claim/decline replies from it.
    app_channel: bool = True
    # The web page's language for a browser that has not chosen one with the switch (None: the
    # browser's languages decide, else English). The demo opens in zh-CN.
    page_language: Literal["zh-CN", "en"] | None = None
    # Resident check-ins (alerting/checkin_policy.py): per kind, e.g. {inactivity = {wait_s = 600,
    # attempts = 2, channels = ["button", "voice"]}}; kinds left out keep the defaults.
    checkins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # The voice/SMS gateway that calls or texts residents, and the secret both sides sign with.
    checkin_gateway_url: str | None = None
    checkin_gateway_token: str | None = None
    checkin_secret: str | None = None
    # The API's address as the gateway reaches it, for its answer callback (default: api_host:api_port).
    checkin_callback_base_url: str | None = None

    # --- Broker access and TLS (docs/operations.md, "Security") ---
    # TLS files for carewatch's own MQTT connections (an mqtts:// URL): the CA that signed the broker's
    # certificate (default: the system's trust store), and a client certificate if the broker asks.
    mqtt_ca_file: str | None = None
    mqtt_cert_file: str | None = None
    mqtt_key_file: str | None = None
    # Each service's own broker login (carewatch.ingest, carewatch.dispatcher, carewatch.simulator);
    # unset: that service connects without one (the embedded demo broker).
    mqtt_ingest_password: str | None = None
    mqtt_dispatcher_password: str | None = None
    mqtt_simulator_password: str | None = None
    # The dynamic security admin carewatch drives Mosquitto with; no password: logins are not pushed.
    broker_admin_username: str = "carewatch.admin"
    broker_admin_password: str | None = None
    # The admin's broker URL (default: mqtt_url); seconds between retries of changes the broker missed.
    broker_admin_url: str | None = None
    broker_retry_s: float = Field(default=10.0, gt=0)
    # HTTPS for the API (uvicorn): certificate chain and key; both or neither.
    api_tls_cert_file: str | None = None
    api_tls_key_file: str | None = None
    # Template SMS through a Chinese cloud vendor instead of the gateway (docs/alerting.md, "Template SMS").
    # Secrets come from the environment (CAREWATCH_SMS_ALIYUN_ACCESS_KEY_SECRET, ...), never the repo.
    sms_provider: Literal["gateway", "aliyun", "tencent"] = "gateway"
    sms_sign_name: str | None = None
    # Template code per family: {alert = "SMS_...", notice = "SMS_...", claimed = "SMS_..."}; "alert.en" etc.
    # name English templates. Tencent template ids go here too.
    sms_templates: dict[str, str] = Field(default_factory=dict)
    # Characters per template variable; None: the vendor's documented limit (Aliyun 35, Tencent 12).
    sms_param_max_chars: int | None = Field(default=None, ge=4, le=500)
    sms_aliyun_access_key_id: str | None = None
    sms_aliyun_access_key_secret: str | None = None
    sms_aliyun_endpoint: str = "https://dysmsapi.aliyuncs.com"
    sms_tencent_secret_id: str | None = None
    sms_tencent_secret_key: str | None = None
    sms_tencent_sdk_app_id: str | None = None
    sms_tencent_region: str = "ap-guangzhou"
    sms_tencent_endpoint: str = "https://sms.tencentcloudapi.com"
    # Messaging robots (WeCom / DingTalk group robots; the groups themselves are data: /api/v1/notify-groups).
    # The web page's public address, for the link in robot messages (e.g. "https://carewatch.example.gov.cn").
    public_url: str | None = None
    robot_rate_limit: int = Field(default=20, ge=1)  # messages per window per robot (both vendors: 20/min)
    robot_rate_window_s: float = Field(default=60.0, gt=0)
    robot_queue_max_s: float = Field(default=3600.0, gt=0)  # longest wait behind a robot's rate limit
    wecom_throttled_pause_s: float = Field(default=60.0, ge=0)  # after errcode 45009
    dingtalk_throttled_pause_s: float = Field(default=600.0, ge=0)  # after 130101: DingTalk blocks 10 min

    # Python's GIL switch interval for the pipeline process (see carewatch.runtime.Pipeline.start).
    gil_switch_interval_ms: float = Field(default=1.0, gt=0, le=100)

    # Personal data: raw device data (readings, events, status reports, message receipts) and rejects are
    # kept this long (storage.retention); ``carewatch run`` enforces it every ``retention_every_s``.
    # At least 35 days: the detectors learn from 28 days of history and ingest accepts 14 days late.
    retention_raw_days: int = Field(default=400, ge=35)
    retention_rejects_days: int = Field(default=90, ge=1)
    retention_every_s: float = Field(default=3600.0, gt=0)

    log_level: str = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, FileSecretsSource(settings_cls)]
        config_file = os.environ.get("CAREWATCH_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and ``CAREWATCH_CONFIG`` TOML file), with explicit overrides."""
    return Settings(**overrides)
