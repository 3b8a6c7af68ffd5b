"""Check-ins to the resident's phone: an automated voice call or an SMS through an HTTP gateway.

carewatch POSTs one JSON request per call or SMS (the contract a voice/SMS gateway adapter implements;
docs/alerting.md, "Check-ins"):

    {"checkin_id", "channel": "voice"|"sms", "to", "locale", "text", "answers": {"1": "ok", "2": "help",
     "3": "away"}, "expires", "callback_url", "idempotency_key"}

signed like carewatch's webhooks (``X-Carewatch-Timestamp``, ``X-Carewatch-Signature`` over the body with
the shared secret; ``Idempotency-Key``), with the gateway's bearer token if one is configured. The
gateway calls or texts the resident, reads ``text`` in ``locale``, and reports the digit pressed or
replied by POSTing ``{"answer": "ok"|"help"|"away", "via": "voice"|"resident_sms", "answered_at"}`` to
``callback_url``, signed the same way. No answer: it reports nothing (the check-in's wait decides).
2xx is delivered; 4xx other than 408/429 is permanent (the request itself is wrong); others are retried
until the attempt's end.
"""

from __future__ import annotations

import json
import time

import httpx

from alerting.channels import Delivery, DeliveryResult
from alerting.render import CHECKIN_KEYS
from alerting.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from schemas.kinds import DeliveryChannel

_GATEWAY_CHANNEL = {DeliveryChannel.VOICE.value: "voice", DeliveryChannel.RESIDENT_SMS.value: "sms"}


class ResidentPhoneChannel:
    """One instance per channel name (``voice`` or ``resident_sms``), both through the same gateway."""

    def __init__(
        self,
        *,
        name: str,
        gateway_url: str,
        secret: str,
        callback_base_url: str,
        token: str | None = None,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        if name not in _GATEWAY_CHANNEL:
            raise ValueError(f"not a resident phone channel: {name!r}")
        self.name = name
        self._url = gateway_url
        self._secret = secret
        self._callback_base = callback_base_url.rstrip("/")
        self._token = token
        self._client = client or httpx.Client(timeout=timeout_s)

    def request_body(self, delivery: Delivery) -> dict[str, object]:
        body = delivery.body
        checkin_id = str(body["checkin_id"])
        return {
            "checkin_id": checkin_id,
            "channel": _GATEWAY_CHANNEL[self.name],
            "to": body["phone"],
            "locale": body.get("locale", "zh-CN"),
            "text": body["text"],
            "answers": dict(CHECKIN_KEYS),
            "expires": body["expires"],
            "callback_url": f"{self._callback_base}/api/v1/checkins/{checkin_id}/answer",
            "idempotency_key": delivery.idempotency_key,
        }

    def send(self, delivery: Delivery) -> DeliveryResult:
        if not delivery.body.get("phone"):
            return DeliveryResult(False, "the resident has no phone number", permanent=True)
        raw = json.dumps(self.request_body(delivery), separators=(",", ":"), ensure_ascii=False).encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self._secret, stamp, raw),
            IDEMPOTENCY_HEADER: delivery.idempotency_key,
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self._client.post(self._url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            return DeliveryResult(False, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= response.status_code < 300:
            return DeliveryResult(True, f"gateway HTTP {response.status_code}")
        permanent = 400 <= response.status_code < 500 and response.status_code not in {408, 429}
        return DeliveryResult(False, f"gateway HTTP {response.status_code}", permanent=permanent)

    def close(self) -> None:
        self._client.close()
