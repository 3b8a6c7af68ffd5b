"""The robot channels against local fakes of WeCom and DingTalk that check what the real services check:
the DingTalk 加签 signature recomputed from the request, the message formats and byte limits, and the
answers (rate limit: wait; configuration error: permanent)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from alerting.channels import Delivery
from alerting.robots import DingTalkChannel, WeComChannel
from tests.alerting.vendor_fakes import FakeDingTalk, FakeWeCom

BODY: dict[str, Any] = {
    "idempotency_key": "alert-7-new-0-critical-group-g1",
    "reason": "new",
    "alert_id": 7,
    "household_id": "hh-7",
    "kind": "smoke",
    "severity": "critical",
    "evidence": "厨房烟感报警 03:12",
    "claimed_by": None,
}


def delivery(url: str, *, secret: str | None = None, **extra: Any) -> Delivery:
    values: dict[str, Any] = {
        "notification_id": 1,
        "idempotency_key": BODY["idempotency_key"],
        "caregiver_id": "",
        "body": BODY,
        "group_id": "g1",
        "robot_url": url,
        "robot_secret": secret,
    }
    values.update(extra)
    return Delivery(**values)


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    fake = FakeWeCom()
    yield fake
    fake.stop()


@pytest.fixture
def dingtalk() -> Iterator[FakeDingTalk]:
    fake = FakeDingTalk()
    yield fake
    fake.stop()


def test_wecom_group_gets_markdown_in_chinese(wecom: FakeWeCom) -> None:
    channel = WeComChannel(link_base="https://cw.example.gov.cn")
    try:
        result = channel.send(delivery(wecom.robot()))
    finally:
        channel.close()
    assert result.ok, result.detail
    ((_, message),) = wecom.delivered
    assert message["msgtype"] == "markdown"
    content = message["markdown"]["content"]
    assert "【紧急】烟感报警" in content
    assert "厨房烟感报警 03:12" in content
    assert "[在 carewatch 中查看](https://cw.example.gov.cn/#/household/hh-7)" in content
    assert not wecom.violations


def test_wecom_caregiver_gets_text_that_mentions_them(wecom: FakeWeCom) -> None:
    channel = WeComChannel()
    try:
        result = channel.send(delivery(wecom.robot(), caregiver_id="cg-1", phone="+86 138 0013 8000", locale="en"))
    finally:
        channel.close()
    assert result.ok
    ((_, message),) = wecom.delivered
    assert message["msgtype"] == "text"
    assert message["text"]["mentioned_mobile_list"] == ["13800138000"]
    assert "[CRITICAL] smoke alarm" in message["text"]["content"]


def test_wecom_messages_fit_its_limits_with_long_evidence(wecom: FakeWeCom) -> None:
    channel = WeComChannel(link_base="https://cw.example.gov.cn")
    long_body = {**BODY, "evidence": "夜间持续流水，" * 2000}
    try:
        group = channel.send(delivery(wecom.robot(), body=long_body))
        person = channel.send(delivery(wecom.robot(), body=long_body, caregiver_id="cg-1", phone="13800138000"))
    finally:
        channel.close()
    assert group.ok
    assert person.ok
    markdown, text = (message for _, message in wecom.delivered)
    assert 4000 < len(markdown["markdown"]["content"].encode()) <= 4096
    assert 2000 < len(text["text"]["content"].encode()) <= 2048
    assert "警报编号 7" in markdown["markdown"]["content"]
    assert "https://cw.example.gov.cn/#/household/hh-7" in text["text"]["content"]
    assert not wecom.violations


def test_wecom_rate_limit_is_a_wait_and_a_removed_robot_is_permanent(wecom: FakeWeCom) -> None:
    channel = WeComChannel(rate_limited_pause_s=42)
    url = wecom.robot()
    try:
        wecom.script.append(45009)
        throttled = channel.send(delivery(url))
        removed = channel.send(delivery(url.replace("key=", "key=0")))
        nobody = channel.send(delivery(""))
    finally:
        channel.close()
    assert (throttled.ok, throttled.permanent, throttled.retry_after_s) == (False, False, 42)
    assert "45009" in throttled.detail
    assert (removed.ok, removed.permanent) == (False, True)
    assert "93000" in removed.detail
    assert "key=" not in removed.detail  # the robot's key never lands in a delivery record
    assert nobody.permanent


def test_dingtalk_signed_markdown_with_mention(dingtalk: FakeDingTalk) -> None:
    url, secret = dingtalk.robot()
    channel = DingTalkChannel(link_base="https://cw.example.gov.cn")
    try:
        group = channel.send(delivery(url, secret=secret))
        person = channel.send(delivery(url, secret=secret, caregiver_id="cg-1", phone="13800138000"))
    finally:
        channel.close()
    assert group.ok, group.detail
    assert person.ok, person.detail
    assert not dingtalk.violations  # the fake recomputed every signature
    (_, first), (_, second) = dingtalk.delivered
    assert first["markdown"]["title"] == "【紧急】烟感报警 · 住户 hh-7"
    assert first["at"] == {"atMobiles": [], "isAtAll": False}
    assert second["at"]["atMobiles"] == ["13800138000"]
    assert "请 @13800138000 处理" in second["markdown"]["text"]
    assert all("sign" in request.query and "timestamp" in request.query for request in dingtalk.received)


def test_dingtalk_bad_signature_is_permanent_and_throttling_waits(dingtalk: FakeDingTalk) -> None:
    url, secret = dingtalk.robot()
    stale = DingTalkChannel(now_ms=lambda: int((time.time() - 7200) * 1000))  # two hours off: refused
    channel = DingTalkChannel()
    try:
        wrong = channel.send(delivery(url, secret=secret[:-1] + "x"))
        expired = stale.send(delivery(url, secret=secret))
        dingtalk.script.append(130101)
        throttled = channel.send(delivery(url, secret=secret))
    finally:
        channel.close()
        stale.close()
    assert (wrong.ok, wrong.permanent) == (False, True)
    assert "310000" in wrong.detail
    assert expired.permanent
    assert dingtalk.violations == ["sign not match", "invalid timestamp"]
    assert (throttled.ok, throttled.permanent, throttled.retry_after_s) == (False, False, 600)


def test_unreachable_robot_is_retried(wecom: FakeWeCom) -> None:
    url = wecom.robot()
    wecom.stop()
    channel = WeComChannel(timeout_s=2)
    try:
        result = channel.send(delivery(url))
    finally:
        channel.close()
    assert (result.ok, result.permanent, result.retry_after_s) == (False, False, None)
