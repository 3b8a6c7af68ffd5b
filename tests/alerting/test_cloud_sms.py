"""Template SMS through Alibaba Cloud and Tencent Cloud, against local fakes that recompute the V3 and
TC3 signatures from each request, check the approved signature name, template and its variables (and
their per-variable limits), and answer with the vendors' own error shapes and throttling codes. The end
of the file runs an alert through the real database and the dispatcher: a throttled SMS waits (its
deadline moves), is sent later, and is never marked dead for having waited; a day limit is permanent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from alerting.channels import Delivery
from alerting.dispatcher import Dispatcher
from alerting.render import SMS_TEMPLATE_VARIABLES
from alerting.service import AlertingConfig, claim_alert
from alerting.setup import template_sms_channel
from alerting.sms_aliyun import AliyunSmsChannel
from alerting.sms_templates import TemplateConfigError
from alerting.sms_tencent import TencentSmsChannel
from carewatch.dispatch_process import channels_from_settings
from carewatch.settings import Settings
from tests.alerting.helpers import Clock, Member, finding, open_alert, provision
from tests.alerting.sms_fakes import FakeAliyunSms, FakeTencentSms

ALIYUN_TEMPLATES = {"alert": "SMS_480001", "notice": "SMS_480002", "claimed": "SMS_480003"}
TENCENT_TEMPLATES = {"alert": "2100001", "notice": "2100002", "claimed": "2100003"}
SIGN = "长宁为老服务"
ALIYUN_SECRET = "aliyun-test-secret"
TENCENT_KEY = "tencent-test-key"

BODY: dict[str, Any] = {
    "idempotency_key": "alert-5-new-0-critical-cg-1-sms",
    "reason": "new",
    "alert_id": 5,
    "household_id": "hh-5",
    "kind": "inactivity",
    "severity": "high",
    "evidence": "通常07:40前用水；昨晚21:10以来一直没有用水，请上门查看老人是否安好。",
    "claimed_by": None,
}


def delivery(phone: str = "13800138000", **body: Any) -> Delivery:
    return Delivery(
        notification_id=1,
        idempotency_key=str(BODY["idempotency_key"]),
        caregiver_id="cg-1",
        body={**BODY, **body},
        phone=phone,
    )


@pytest.fixture
def aliyun() -> Iterator[FakeAliyunSms]:
    fake = FakeAliyunSms(
        key_id="LTAI5tTestKeyId",
        key_secret=ALIYUN_SECRET,
        sign_name=SIGN,
        templates={code: SMS_TEMPLATE_VARIABLES[family] for family, code in ALIYUN_TEMPLATES.items()},
    )
    yield fake
    fake.stop()


@pytest.fixture
def tencent() -> Iterator[FakeTencentSms]:
    fake = FakeTencentSms(
        secret_id="AKIDtestSecretId",
        secret_key=TENCENT_KEY,
        app_id="1400009099",
        sign_name=SIGN,
        templates={code: len(SMS_TEMPLATE_VARIABLES[family]) for family, code in TENCENT_TEMPLATES.items()},
    )
    yield fake
    fake.stop()


def aliyun_channel(fake: FakeAliyunSms, secret: str = ALIYUN_SECRET) -> AliyunSmsChannel:
    return AliyunSmsChannel(
        access_key_id="LTAI5tTestKeyId",
        access_key_secret=secret,
        sign_name=SIGN,
        templates=ALIYUN_TEMPLATES,
        endpoint=fake.endpoint,
    )


def tencent_channel(fake: FakeTencentSms, secret: str = TENCENT_KEY) -> TencentSmsChannel:
    return TencentSmsChannel(
        secret_id="AKIDtestSecretId",
        secret_key=secret,
        sdk_app_id="1400009099",
        sign_name=SIGN,
        templates=TENCENT_TEMPLATES,
        endpoint=fake.endpoint,
    )


def test_aliyun_signed_template_message(aliyun: FakeAliyunSms) -> None:
    channel = aliyun_channel(aliyun)
    try:
        result = channel.send(delivery())
        claimed = channel.send(delivery("+8613900139000", reason="claimed_by_other", claimed_by="cg-2"))
    finally:
        channel.close()
    assert result.ok, result.detail
    assert claimed.ok, claimed.detail
    assert not aliyun.violations  # signatures recomputed by the fake; no variable over 35 characters
    first, second = aliyun.sent
    assert (first.phone, first.template, first.sign_name) == ("13800138000", "SMS_480001", SIGN)
    assert first.params == {
        "kind": "未用水",
        "household": "hh-5",
        "evidence": "通常07:40前用水；昨晚21:10以来一直没有用水，请上门查看老人…",
        "alert": "5",
    }
    assert len(first.params["evidence"]) == 35
    assert first.reference == BODY["idempotency_key"]
    assert (second.template, second.params) == (
        "SMS_480003",
        {"household": "hh-5", "kind": "未用水", "alert": "5", "claimer": "cg-2"},
    )


def test_aliyun_answers_classified(aliyun: FakeAliyunSms) -> None:
    channel = aliyun_channel(aliyun)
    forged = aliyun_channel(aliyun, secret="not-the-secret")
    try:
        aliyun.script.extend(["isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "isp.SYSTEM_ERROR"])
        throttled, day_limit, system = (channel.send(delivery()) for _ in range(3))
        bad_number = channel.send(delivery("12345"))
        bad_signature = forged.send(delivery())
        no_phone = channel.send(delivery(""))
    finally:
        channel.close()
        forged.close()
    assert (throttled.ok, throttled.permanent, throttled.retry_after_s) == (False, False, 60)
    assert "isv.BUSINESS_LIMIT_CONTROL" in throttled.detail
    assert (day_limit.permanent, day_limit.retry_after_s) == (True, None)
    assert (system.ok, system.permanent, system.retry_after_s) == (False, False, None)
    assert bad_number.permanent
    assert "isv.MOBILE_NUMBER_ILLEGAL" in bad_number.detail
    assert bad_signature.permanent
    assert "SignatureDoesNotMatch" in bad_signature.detail
    assert aliyun.violations == ["SignatureDoesNotMatch"]
    assert no_phone.permanent


def test_tencent_signed_template_message(tencent: FakeTencentSms) -> None:
    channel = tencent_channel(tencent)
    try:
        result = channel.send(delivery())
    finally:
        channel.close()
    assert result.ok, result.detail
    assert not tencent.violations
    (sent,) = tencent.sent
    assert (sent.phone, sent.template, sent.sign_name) == ("+8613800138000", "2100001", SIGN)
    assert sent.params == ["未用水", "hh-5", "通常07:40前用水；…", "5"]  # 12 characters at most
    assert sent.reference == BODY["idempotency_key"]


def test_tencent_answers_classified(tencent: FakeTencentSms) -> None:
    channel = tencent_channel(tencent)
    forged = tencent_channel(tencent, secret="not-the-key")
    try:
        tencent.script.append("LimitExceeded.PhoneNumberDailyLimit")
        daily = channel.send(delivery())
        first = channel.send(delivery("13900139000"))
        thirty_seconds = channel.send(delivery("13900139000"))  # the fake allows one per number in 30 s
        bad_signature = forged.send(delivery())
    finally:
        channel.close()
        forged.close()
    assert (daily.ok, daily.permanent) == (False, True)
    assert "LimitExceeded.PhoneNumberDailyLimit" in daily.detail
    assert first.ok
    assert (thirty_seconds.ok, thirty_seconds.permanent, thirty_seconds.retry_after_s) == (False, False, 30)
    assert bad_signature.permanent
    assert tencent.violations == ["AuthFailure.SignatureFailure"]


def test_settings_choose_the_vendor_and_its_endpoint(tencent: FakeTencentSms) -> None:
    settings = Settings(
        sms_provider="tencent",
        sms_sign_name=SIGN,
        sms_templates=TENCENT_TEMPLATES,
        sms_tencent_secret_id="AKIDtestSecretId",
        sms_tencent_secret_key=TENCENT_KEY,
        sms_tencent_sdk_app_id="1400009099",
        sms_tencent_endpoint=tencent.endpoint,
        sms_gateway_url="http://127.0.0.1:9/not-used",
        app_channel=False,
    )
    channels = channels_from_settings(settings, "mqtt://127.0.0.1:1883")
    try:
        assert isinstance(channels["sms"], TencentSmsChannel)  # the vendor replaces the gateway
        assert {"wecom", "dingtalk"} <= set(channels)
        assert channels["sms"].send(delivery(kind="smoke", severity="critical")).ok
    finally:
        for channel in channels.values():
            channel.close()  # type: ignore[attr-defined]
    assert tencent.sent[0].params[0] == "烟感报警"
    assert not tencent.violations


def test_template_vendors_fail_at_start_up_without_templates() -> None:
    with pytest.raises(TemplateConfigError, match="claimed"):
        template_sms_channel(
            "aliyun",
            delivery_timeout_s=5,
            sign_name=SIGN,
            templates={"alert": "SMS_1", "notice": "SMS_2"},
            aliyun_access_key_id="id",
            aliyun_access_key_secret="secret",
        )
    with pytest.raises(ValueError, match="sms_tencent_secret_id"):
        template_sms_channel("tencent", delivery_timeout_s=5, sign_name=SIGN, templates=TENCENT_TEMPLATES)
    assert template_sms_channel("gateway", delivery_timeout_s=5, sign_name=None, templates={}) is None


def test_throttled_sms_waits_through_the_dispatcher_and_is_not_dead(database_url: str, aliyun: FakeAliyunSms) -> None:
    """Deadline 20 s; the vendor throttles for 60 s. Waiting moves the deadline: the SMS goes out later."""
    config = AlertingConfig(delivery_deadline=timedelta(seconds=20))
    clock = Clock()
    channel = aliyun_channel(aliyun)
    worker = Dispatcher(
        conninfo=database_url, channels={"sms": channel}, config=config, clock=clock, visit_check_every_s=None
    )
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            provision(
                conn,
                "hh-sms",
                [
                    Member("sms-fam", "family", 1, phone="13800138001", channels=["sms"]),
                    Member("sms-vol", "volunteer", 1, phone="13800138002", channels=["sms"]),
                ],
            )
            alert_id = open_alert(conn, finding("hh-sms"), clock(), config)
            aliyun.script.extend(["isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL"])
            assert worker.run_once() == 2
            rows = conn.execute(
                "SELECT caregiver_id, status, attempts, deadline - created_at, next_attempt_at - %s"
                " FROM notifications WHERE alert_id = %s ORDER BY caregiver_id",
                (clock(), alert_id),
            ).fetchall()
            (waiting_row,) = [row for row in rows if row[1] == "pending"]
            (dead_row,) = [row for row in rows if row[1] == "dead"]  # the day limit: a retry cannot help
            assert waiting_row[2] == 1
            assert waiting_row[3] == timedelta(seconds=80)  # 20 s deadline + the 60 s wait
            assert waiting_row[4] == timedelta(seconds=60)
            assert "DAY_LIMIT" in str(
                conn.execute(
                    "SELECT last_error FROM notifications WHERE caregiver_id = %s AND alert_id = %s",
                    (dead_row[0], alert_id),
                ).fetchone()
            )
            clock.advance(seconds=61)
            assert worker.run_once() >= 1
            status = conn.execute(
                "SELECT status, attempts FROM notifications WHERE alert_id = %s AND caregiver_id = %s",
                (alert_id, waiting_row[0]),
            ).fetchone()
            assert status == ("sent", 2)
            assert (aliyun.sent[0].template, aliyun.sent[0].params["kind"]) == ("SMS_480001", "一键呼叫")  # zh-CN
            assert [sent.phone for sent in aliyun.sent] == [
                {"sms-fam": "13800138001", "sms-vol": "13800138002"}[waiting_row[0]]
            ]
            with conn.transaction():
                claim_alert(conn, alert_id, waiting_row[0], clock(), config)
            worker.run_once()
        claimed = [sent for sent in aliyun.sent if sent.template == ALIYUN_TEMPLATES["claimed"]]
        assert [sent.params["claimer"] for sent in claimed] == [waiting_row[0]]
        assert not aliyun.violations
    finally:
        worker.close()
        channel.close()
