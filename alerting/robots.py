"""Group-chat robots: WeCom / 政务微信 group robots and DingTalk custom robots, behind ``Channel``.

Both take a JSON POST on the robot's webhook and answer HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}``
or an error code. What each documents, and what carewatch does with it:

- **WeCom** (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``; 政务微信 runs the same API on
  its own host): ``msgtype`` ``markdown`` (content at most 4096 bytes of UTF-8) or ``text`` (at most
  2048 bytes; ``mentioned_mobile_list`` @-mentions group members; markdown cannot mention). At most 20
  messages a minute per robot; past it the answer is errcode 45009 ("api freq out of limit").
  93000: the webhook is invalid or the robot was removed from the group; 40008: bad msgtype.
- **DingTalk** (``https://oapi.dingtalk.com/robot/send?access_token=...``), with the 加签 security
  setting: ``timestamp`` (ms, within an hour of DingTalk's clock) and ``sign`` =
  urlencode(base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))) added to the query.
  ``msgtype`` ``markdown`` (``title`` + ``text``) with ``at.atMobiles`` to mention members. At most 20
  messages a minute per robot; past it the answer is errcode 130101 ("send too fast") and the robot is
  throttled for 10 minutes. 310000: the signature, keyword or IP whitelist check failed.

Results: errcode 0 is delivered; a rate-limit code is ``retry_after_s`` (not a failure: the dispatcher
pauses the robot and re-queues, see ``alerting.dispatcher``); a configuration error (93000, 40008,
310000, HTTP 4xx) is permanent; anything else (network, HTTP 5xx, -1 "system busy", unknown codes) is
retried until the deadline. Sending at most the documented rate in the first place is the
dispatcher's job (``storage.notify_groups.admit_robot_send``, shared by every dispatcher).

Text comes from ``alerting.render`` (zh-CN or English per the group's locale) and is cut to the byte
limit there, at a character boundary, keeping the alert id and the link. Robot URLs carry their key:
they are secrets and never appear in a log line or a delivery record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import httpx

from alerting.channels import Delivery, DeliveryResult
from alerting.render import robot_markdown, robot_text, robot_title

WECOM_MARKDOWN_MAX_BYTES = 4096
WECOM_TEXT_MAX_BYTES = 2048
# DingTalk documents no byte limit for custom robots (its group-message API caps markdown at 5,000
# characters); carewatch keeps the WeCom budget so a message reads the same in both.
DINGTALK_MARKDOWN_MAX_BYTES = 4096

WECOM_RATE_LIMITED = 45009
DINGTALK_RATE_LIMITED = 130101
_WECOM_PERMANENT = {93000: "webhook invalid or robot removed from the group", 40008: "invalid msgtype"}
_DINGTALK_PERMANENT = {310000: "signature, keyword or IP whitelist check failed"}


@dataclass(frozen=True, slots=True)
class RobotLimits:
    """How fast carewatch may send to one robot, shared by every dispatcher (``storage.notify_groups``).

    Both vendors document 20 messages a minute per robot. ``margin_s`` widens the window a little: a send
    is admitted before its request leaves, and the vendor counts arrivals. ``max_queue_s`` bounds how long
    a delivery may wait in a robot's queue (counted from when it was queued) before it is dead and shows
    up for operators: waiting for the rate limit is not failing, but a robot that never frees up is.
    """

    per_window: int = 20
    window_s: float = 60.0
    margin_s: float = 1.0
    max_queue_s: float = 3600.0


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The 加签 signature before URL encoding: base64(HMAC-SHA256(secret, "{timestamp}\\n{secret}"))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def dingtalk_signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    joiner = "&" if urlsplit(url).query else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={quote_plus(dingtalk_sign(secret, timestamp_ms))}"


def alert_link(base: str | None, body: dict[str, Any]) -> str | None:
    """The web page of the alert's household (``#/household/<id>``), or None without a public URL."""
    if not base:
        return None
    return f"{base.rstrip('/')}/#/household/{quote(str(body.get('household_id') or ''), safe='')}"


def mobile(phone: str) -> str:
    """A mainland mobile as the robots want it for mentions: digits without +86."""
    digits = phone.strip().replace(" ", "").replace("-", "")
    return digits[3:] if digits.startswith("+86") else digits.lstrip("+")


class _RobotChannel:
    """The HTTP part both robots share: post, classify the answer, keep the URL out of every record."""

    name = ""
    _rate_limited_code = 0
    _permanent: dict[int, str] = {}  # noqa: RUF012 - read-only class tables of the subclasses

    def __init__(
        self,
        *,
        timeout_s: float = 5.0,
        link_base: str | None = None,
        rate_limited_pause_s: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._client = client or httpx.Client(timeout=timeout_s)
        self._link_base = link_base
        self._pause_s = rate_limited_pause_s

    def payload(self, delivery: Delivery) -> dict[str, Any]:
        raise NotImplementedError

    def url(self, delivery: Delivery) -> str:
        return delivery.robot_url or ""

    def send(self, delivery: Delivery) -> DeliveryResult:
        if not delivery.robot_url:
            return DeliveryResult(False, f"no {self.name} robot configured for this recipient", permanent=True)
        content = json.dumps(self.payload(delivery), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json; charset=utf-8"}
        try:
            response = self._client.post(self.url(delivery), content=content, headers=headers)
        except httpx.HTTPError as exc:
            return DeliveryResult(False, f"{type(exc).__name__}: {_redact(str(exc), delivery.robot_url)}"[:300])
        return self._classify(response)

    def _classify(self, response: httpx.Response) -> DeliveryResult:
        status = response.status_code
        if status != 200:
            return self._http_error(status)
        try:
            answer = response.json()
            code = int(answer.get("errcode", -1))
            message = str(answer.get("errmsg", ""))[:120]
        except (ValueError, TypeError, AttributeError):
            return DeliveryResult(False, f"{self.name} answered HTTP 200 without its JSON")
        if code == 0:
            return DeliveryResult(True, f"{self.name} errcode 0")
        detail = f"{self.name} errcode {code}: {message}"
        if code == self._rate_limited_code:
            return DeliveryResult(False, f"{detail} (rate limited)", retry_after_s=self._pause_s)
        if code in self._permanent:
            return DeliveryResult(False, f"{detail} ({self._permanent[code]})", permanent=True)
        return DeliveryResult(False, detail)

    def _http_error(self, status: int) -> DeliveryResult:
        if status == 429:
            return DeliveryResult(False, f"{self.name} HTTP 429", retry_after_s=self._pause_s)
        # Other 4xx: the request itself is wrong (a bad URL); 408 and 5xx may pass on a retry.
        permanent = 400 <= status < 500 and status != 408
        return DeliveryResult(False, f"{self.name} HTTP {status}", permanent=permanent)

    def close(self) -> None:
        self._client.close()


class WeComChannel(_RobotChannel):
    """企业微信 / 政务微信 group robot. A group gets markdown; a caregiver who chose the robot as their channel
    gets text that @-mentions them by mobile (WeCom markdown cannot mention)."""

    name = "wecom"
    _rate_limited_code = WECOM_RATE_LIMITED
    _permanent = _WECOM_PERMANENT

    def payload(self, delivery: Delivery) -> dict[str, Any]:
        link = alert_link(self._link_base, delivery.body)
        if delivery.caregiver_id and delivery.phone:
            text = robot_text(delivery.body, max_bytes=WECOM_TEXT_MAX_BYTES, locale=delivery.locale, link=link)
            return {"msgtype": "text", "text": {"content": text, "mentioned_mobile_list": [mobile(delivery.phone)]}}
        content = robot_markdown(delivery.body, max_bytes=WECOM_MARKDOWN_MAX_BYTES, locale=delivery.locale, link=link)
        return {"msgtype": "markdown", "markdown": {"content": content}}


class DingTalkChannel(_RobotChannel):
    """DingTalk custom robot with 加签: every request is signed with the group's secret at send time."""

    name = "dingtalk"
    _rate_limited_code = DINGTALK_RATE_LIMITED
    _permanent = _DINGTALK_PERMANENT

    def __init__(
        self,
        *,
        timeout_s: float = 5.0,
        link_base: str | None = None,
        rate_limited_pause_s: float = 600.0,
        client: httpx.Client | None = None,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        super().__init__(
            timeout_s=timeout_s, link_base=link_base, rate_limited_pause_s=rate_limited_pause_s, client=client
        )
        self._now_ms = now_ms

    def url(self, delivery: Delivery) -> str:
        url = delivery.robot_url or ""
        return dingtalk_signed_url(url, delivery.robot_secret, self._now_ms()) if delivery.robot_secret else url

    def payload(self, delivery: Delivery) -> dict[str, Any]:
        link = alert_link(self._link_base, delivery.body)
        mentioned = [mobile(delivery.phone)] if delivery.caregiver_id and delivery.phone else []
        text = robot_markdown(
            delivery.body,
            max_bytes=DINGTALK_MARKDOWN_MAX_BYTES,
            locale=delivery.locale,
            link=link,
            mention=" ".join(f"@{number}" for number in mentioned),
        )
        return {
            "msgtype": "markdown",
            "markdown": {"title": robot_title(delivery.body, locale=delivery.locale), "text": text},
            "at": {"atMobiles": mentioned, "isAtAll": False},
        }


def _redact(text: str, url: str | None) -> str:
    """Drop the robot URL's query (its key or access token) from an error message."""
    if not url:
        return text
    query = urlsplit(url).query
    return text.replace(query, "<redacted>") if query else text
