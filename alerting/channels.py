"""Delivery channels behind one interface. A channel sends one delivery and says how it went.

Channels never raise for delivery problems: they return ``DeliveryResult(ok=False, ...)`` and the
dispatcher retries with backoff until the notification's deadline. ``permanent=True`` says a retry
cannot help (no address): the delivery is dead at once. ``retry_after_s`` says the destination is
rate limited: the delivery waits that long, and the wait does not count against its deadline.

Implementations: ``WebhookChannel`` (here; signed, see ``alerting.signing``), ``EmailChannel``
(``alerting.email``, SMTP), ``SmsChannel`` (``alerting.sms``, an HTTP gateway), ``AppChannel``
(``alerting.app``, MQTT push to the caregiver app), ``WeComChannel`` and ``DingTalkChannel``
(``alerting.robots``, group robots), the template-SMS vendors (``alerting.sms_aliyun``,
``alerting.sms_tencent``, named ``sms`` like the gateway) and ``FakeChannel`` (here; records deliveries and
fails on request, for unit tests). Every channel is called from dispatcher threads, several at once:
implementations must be thread-safe.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from alerting.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign


@dataclass(frozen=True, slots=True)
class Delivery:
    notification_id: int
    idempotency_key: str
    caregiver_id: str
    body: dict[str, Any]
    webhook_url: str | None = None
    webhook_secret: str | None = None
    email: str = ""
    phone: str = ""
    # Messaging robots (``alerting.robots``): the group whose robot carries the message, its webhook and
    # DingTalk signing secret. ``caregiver_id`` is empty when the message is for the group itself.
    group_id: str | None = None
    robot_url: str | None = None
    robot_secret: str | None = None
    locale: str = "zh-CN"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    ok: bool
    detail: str
    # True when retrying cannot help (e.g. no address): the dispatcher marks the delivery dead at once.
    permanent: bool = False
    # The destination said "too many, wait" (a rate limit): not a failure. The dispatcher re-queues the
    # delivery after this many seconds and moves its deadline by the same wait (``alerting.dispatcher``).
    retry_after_s: float | None = None


class Channel(Protocol):
    name: str

    def send(self, delivery: Delivery) -> DeliveryResult: ...


class WebhookChannel:
    """POSTs the notification JSON, signed with the caregiver's secret (see ``alerting.signing``)."""

    name = "webhook"

    def __init__(self, *, timeout_s: float = 5.0, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=timeout_s)

    def send(self, delivery: Delivery) -> DeliveryResult:
        if not delivery.webhook_url or not delivery.webhook_secret:
            return DeliveryResult(False, "caregiver has no webhook URL and secret", permanent=True)
        body = json.dumps(delivery.body, separators=(",", ":"), sort_keys=True).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(delivery.webhook_secret, timestamp, body),
            IDEMPOTENCY_HEADER: delivery.idempotency_key,
        }
        try:
            response = self._client.post(delivery.webhook_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return DeliveryResult(False, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= response.status_code < 300:
            return DeliveryResult(True, f"HTTP {response.status_code}")
        return DeliveryResult(False, f"HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


class FakeChannel:
    """Records deliveries; ``fail_next`` makes the next N sends fail (``permanent`` ones if asked)."""

    def __init__(self, name: str = "webhook", *, fail_next: int = 0, permanent: bool = False) -> None:
        self.name = name
        self.fail_next = fail_next
        self.permanent = permanent
        self.sent: list[Delivery] = []
        self.attempts = 0
        self._lock = threading.Lock()

    def send(self, delivery: Delivery) -> DeliveryResult:
        with self._lock:
            self.attempts += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return DeliveryResult(False, "fake failure", permanent=self.permanent)
            self.sent.append(delivery)
        return DeliveryResult(True, "fake ok")
