"""Building the alerting side from configuration: the config object, the channels, the reply listener.

Kept out of ``carewatch.runtime`` so the composition root stays a list of stages, and out of the pure
modules so they never see settings. Channels without configuration are simply absent: a notification
for them dies at once as "no channel configured" and shows up in the dead-deliveries list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from alerting.app import AppChannel, AppReplyListener
from alerting.channels import Channel, WebhookChannel
from alerting.checkin_policy import checkin_config
from alerting.downlink import ButtonChannel
from alerting.email import EmailChannel
from alerting.policy import policy_from_config
from alerting.render import DEFAULT_SMS_TEMPLATE
from alerting.resident_phone import ResidentPhoneChannel
from alerting.robots import DingTalkChannel, WeComChannel
from alerting.service import AlertingConfig
from alerting.sms import SmsChannel
from alerting.sms_aliyun import ALIYUN_PARAM_MAX_CHARS, AliyunSmsChannel
from alerting.sms_tencent import TENCENT_PARAM_MAX_CHARS, TencentSmsChannel


def alerting_config(
    *,
    delivery_deadline_s: float,
    escalation_policy: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    quiet_hours: str | None = "22:00-07:00",
    retry_base_s: float = 1.0,
    retry_cap_s: float = 60.0,
    checkins: Mapping[str, Mapping[str, Any]] | None = None,
) -> AlertingConfig:
    """Raises ``alerting.policy.PolicyError`` for a bad policy (``CheckinPolicyError`` for a bad check-in
    policy): fail at start-up, not at the first alert."""
    return AlertingConfig(
        policy=policy_from_config(escalation_policy, quiet_hours=quiet_hours),
        delivery_deadline=timedelta(seconds=delivery_deadline_s),
        retry_base=timedelta(seconds=retry_base_s),
        retry_cap=timedelta(seconds=retry_cap_s),
        checkins=checkin_config(checkins),
    )


def build_channels(
    *,
    delivery_timeout_s: float,
    mqtt_url: str | None = None,
    topic_root: str = "care/v1",
    app_channel: bool = True,
    smtp_host: str | None = None,
    smtp_port: int = 25,
    smtp_from: str = "carewatch@localhost",
    smtp_username: str | None = None,
    smtp_password: str | None = None,
    smtp_starttls: bool = False,
    sms_gateway_url: str | None = None,
    sms_gateway_token: str | None = None,
    sms_template: str | None = None,
    checkin_gateway_url: str | None = None,
    checkin_gateway_token: str | None = None,
    checkin_secret: str | None = None,
    checkin_callback_base_url: str | None = None,
    template_sms: Channel | None = None,
    public_url: str | None = None,
    wecom_throttled_pause_s: float = 60.0,
    dingtalk_throttled_pause_s: float = 600.0,
) -> dict[str, Channel]:
    """Every configured channel. ``template_sms`` (``template_sms_channel``) replaces the SMS gateway.
    The robots are always there: their destinations are data (``notify_groups``), not configuration."""
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(timeout_s=delivery_timeout_s),
        "wecom": WeComChannel(
            timeout_s=delivery_timeout_s, link_base=public_url, rate_limited_pause_s=wecom_throttled_pause_s
        ),
        "dingtalk": DingTalkChannel(
            timeout_s=delivery_timeout_s, link_base=public_url, rate_limited_pause_s=dingtalk_throttled_pause_s
        ),
    }
    if smtp_host:
        channels["email"] = EmailChannel(
            host=smtp_host,
            port=smtp_port,
            sender=smtp_from,
            username=smtp_username,
            password=smtp_password,
            starttls=smtp_starttls,
            timeout_s=delivery_timeout_s,
        )
    if template_sms is not None:
        channels["sms"] = template_sms
    elif sms_gateway_url:
        channels["sms"] = SmsChannel(
            gateway_url=sms_gateway_url,
            template=sms_template or DEFAULT_SMS_TEMPLATE,
            token=sms_gateway_token,
            timeout_s=delivery_timeout_s,
        )
    if app_channel and mqtt_url:
        channels["app"] = AppChannel(mqtt_url=mqtt_url, topic_root=topic_root, timeout_s=delivery_timeout_s)
    # Check-ins to the resident: the call button's downlink, and their phone through the gateway.
    if mqtt_url:
        channels["button"] = ButtonChannel(mqtt_url=mqtt_url, topic_root=topic_root, timeout_s=delivery_timeout_s)
    if checkin_gateway_url and checkin_secret and checkin_callback_base_url:
        for name in ("voice", "resident_sms"):
            channels[name] = ResidentPhoneChannel(
                name=name,
                gateway_url=checkin_gateway_url,
                secret=checkin_secret,
                callback_base_url=checkin_callback_base_url,
                token=checkin_gateway_token,
                timeout_s=delivery_timeout_s,
            )
    return channels


def template_sms_channel(
    provider: str,
    *,
    delivery_timeout_s: float,
    sign_name: str | None,
    templates: Mapping[str, str],
    max_chars: int | None = None,
    aliyun_access_key_id: str | None = None,
    aliyun_access_key_secret: str | None = None,
    aliyun_endpoint: str = "https://dysmsapi.aliyuncs.com",
    tencent_secret_id: str | None = None,
    tencent_secret_key: str | None = None,
    tencent_sdk_app_id: str | None = None,
    tencent_region: str = "ap-guangzhou",
    tencent_endpoint: str = "https://sms.tencentcloudapi.com",
) -> Channel | None:
    """The template-SMS channel of ``provider`` ("aliyun", "tencent"; "gateway": None). Raises
    ``ValueError`` naming what is missing: a misconfigured SMS vendor fails at start-up."""
    if provider == "gateway":
        return None
    if not sign_name:
        raise ValueError(f"sms_provider {provider!r} needs sms_sign_name (the approved 短信签名)")
    if provider == "aliyun":
        if not aliyun_access_key_id or not aliyun_access_key_secret:
            raise ValueError("sms_provider 'aliyun' needs sms_aliyun_access_key_id and sms_aliyun_access_key_secret")
        return AliyunSmsChannel(
            access_key_id=aliyun_access_key_id,
            access_key_secret=aliyun_access_key_secret,
            sign_name=sign_name,
            templates=templates,
            endpoint=aliyun_endpoint,
            timeout_s=delivery_timeout_s,
            max_chars=max_chars or ALIYUN_PARAM_MAX_CHARS,
        )
    if provider == "tencent":
        if not tencent_secret_id or not tencent_secret_key or not tencent_sdk_app_id:
            raise ValueError(
                "sms_provider 'tencent' needs sms_tencent_secret_id, sms_tencent_secret_key and sms_tencent_sdk_app_id"
            )
        return TencentSmsChannel(
            secret_id=tencent_secret_id,
            secret_key=tencent_secret_key,
            sdk_app_id=tencent_sdk_app_id,
            sign_name=sign_name,
            templates=templates,
            region=tencent_region,
            endpoint=tencent_endpoint,
            timeout_s=delivery_timeout_s,
            max_chars=max_chars or TENCENT_PARAM_MAX_CHARS,
        )
    raise ValueError(f"unknown sms_provider {provider!r} (gateway, aliyun or tencent)")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def reply_listener(
    *,
    mqtt_url: str,
    topic_root: str,
    conninfo: str,
    config: AlertingConfig,
    on_changed: Callable[[int], None],
    clock: Callable[[], datetime] = _utcnow,
) -> AppReplyListener:
    return AppReplyListener(
        mqtt_url=mqtt_url,
        topic_root=topic_root,
        conninfo=conninfo,
        config=config,
        clock=clock,
        on_changed=on_changed,
    )
