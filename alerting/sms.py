"""SMS through an HTTP gateway: POST ``{"to", "text", "idempotency_key"}`` as JSON.

The text comes from a configurable ``string.Template`` (see ``alerting.render``). Most gateways accept
a client reference for de-duplication; the idempotency key is sent both in the body and as the
``Idempotency-Key`` header so a retry is not billed or sent twice by a gateway that honours either.
4xx answers (except 408 and 429) are permanent: the request itself is wrong and retrying cannot help.
"""

from __future__ import annotations

import httpx

from alerting.channels import Delivery, DeliveryResult
from alerting.render import DEFAULT_SMS_TEMPLATE, sms_text
from alerting.signing import IDEMPOTENCY_HEADER


class SmsChannel:
    name = "sms"

    def __init__(
        self,
        *,
        gateway_url: str,
        template: str = DEFAULT_SMS_TEMPLATE,
        token: str | None = None,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
    ) -> None:
        self._url = gateway_url
        self._template = template
        self._token = token
        self._client = client or httpx.Client(timeout=timeout_s)

    def send(self, delivery: Delivery) -> DeliveryResult:
        if not delivery.phone:
            return DeliveryResult(False, "caregiver has no phone number", permanent=True)
        headers = {IDEMPOTENCY_HEADER: delivery.idempotency_key}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        payload = {
            "to": delivery.phone,
            "text": sms_text(self._template, delivery.body),
            "idempotency_key": delivery.idempotency_key,
        }
        try:
            response = self._client.post(self._url, json=payload, headers=headers)
        except httpx.HTTPError as exc:
            return DeliveryResult(False, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= response.status_code < 300:
            return DeliveryResult(True, f"gateway HTTP {response.status_code}")
        permanent = 400 <= response.status_code < 500 and response.status_code not in {408, 429}
        return DeliveryResult(False, f"gateway HTTP {response.status_code}: {response.text[:200]}", permanent=permanent)

    def close(self) -> None:
        self._client.close()
