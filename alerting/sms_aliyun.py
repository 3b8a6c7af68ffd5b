"""Alibaba Cloud SMS (阿里云短信服务) ``SendSms``, API version 2017-05-25, signed with the V3 method.

Why not the SDK: ``alibabacloud_dysmsapi20170525`` brings the Tea/Darabonba runtime, a credentials
library and their own HTTP stack for one call; the V3 signature is about thirty lines over httpx.
The V2 (HMAC-SHA1, RPC) method is documented as discontinued; V3 is the one Alibaba Cloud recommends.

The request (RPC style): ``POST {endpoint}/?<parameters>`` with an empty body. Parameters:
``PhoneNumbers``, ``SignName``, ``TemplateCode``, ``TemplateParam`` (a JSON object of the template's
variables), ``OutId`` (our idempotency key, echoed in delivery receipts). Headers: ``host``,
``x-acs-action: SendSms``, ``x-acs-version: 2017-05-25``, ``x-acs-date`` (UTC ISO 8601, within 15
minutes of Alibaba's clock), ``x-acs-signature-nonce`` (unique per request), ``x-acs-content-sha256``
(hex SHA-256 of the body) and ``Authorization: ACS3-HMAC-SHA256
Credential=<AccessKeyId>,SignedHeaders=<names>,Signature=<hex>`` where the signature is
HMAC-SHA256(AccessKeySecret, "ACS3-HMAC-SHA256\\n" + hex(SHA-256(canonical request))) and the
canonical request is method, "/", the sorted RFC 3986-encoded query, the lower-cased signed headers
("name:value\\n" each), their names joined by ";", and the body hash, joined by newlines.

Answers: ``{"Code": "OK", "BizId": ..., "RequestId": ...}`` is delivered; ``isv.BUSINESS_LIMIT_CONTROL``
(per-number flow control, by default 1 a minute, 5 an hour) is a rate limit: retried after a minute;
daily limits (``isv.DAY_LIMIT_CONTROL``), a bad number, template, signature name, parameters, balance
or credentials are permanent; anything else (``isp.SYSTEM_ERROR``, network) is retried.
Variables: at most 35 characters each for notification templates (the default ``max_chars``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import httpx

from alerting.channels import Delivery, DeliveryResult
from alerting.sms_templates import TemplateMessage, TemplateSmsChannel, Verdict

ALIYUN_ENDPOINT = "https://dysmsapi.aliyuncs.com"
ALIYUN_VERSION = "2017-05-25"
ALIYUN_PARAM_MAX_CHARS = 35
ALGORITHM = "ACS3-HMAC-SHA256"

_PERMANENT = Verdict(permanent=True)
VERDICTS: dict[str, Verdict] = {
    "isv.BUSINESS_LIMIT_CONTROL": Verdict(retry_after_s=60.0),
    "Throttling.User": Verdict(retry_after_s=5.0),
    "Throttling.Api": Verdict(retry_after_s=5.0),
    "isv.DAY_LIMIT_CONTROL": _PERMANENT,
    "isv.MOBILE_NUMBER_ILLEGAL": _PERMANENT,
    "isv.SMS_TEMPLATE_ILLEGAL": _PERMANENT,
    "isv.SMS_SIGNATURE_ILLEGAL": _PERMANENT,
    "isv.TEMPLATE_MISSING_PARAMETERS": _PERMANENT,
    "isv.INVALID_PARAMETERS": _PERMANENT,
    "isv.INVALID_JSON_PARAM": _PERMANENT,
    "isv.PARAM_LENGTH_LIMIT": _PERMANENT,
    "isv.PARAM_NOT_SUPPORT_URL": _PERMANENT,
    "isv.BLACK_KEY_CONTROL_LIMIT": _PERMANENT,
    "isv.AMOUNT_NOT_ENOUGH": _PERMANENT,
    "isv.OUT_OF_SERVICE": _PERMANENT,
    "isv.ACCOUNT_NOT_EXISTS": _PERMANENT,
    "isv.PRODUCT_UN_SUBSCRIPT": _PERMANENT,
    "SignatureDoesNotMatch": _PERMANENT,
    "InvalidAccessKeyId.NotFound": _PERMANENT,
    "IncompleteSignature": _PERMANENT,
}


def percent(text: str) -> str:
    """RFC 3986 encoding as V3 wants it: unreserved A-Z a-z 0-9 - _ . ~ kept, everything else %XX."""
    return quote(text, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(f"{percent(key)}={percent(value)}" for key, value in sorted(params.items()))


def sign_v3(
    *,
    method: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    access_key_id: str,
    access_key_secret: str,
) -> str:
    """The ``Authorization`` header value for a request with these (lower-case) ``headers``."""
    signed = sorted(name for name in headers if name in {"host", "content-type"} or name.startswith("x-acs-"))
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    signed_names = ";".join(signed)
    canonical = "\n".join(
        [method, "/", canonical_query(query), canonical_headers, signed_names, hashlib.sha256(body).hexdigest()]
    )
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(access_key_secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_names},Signature={signature}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AliyunSmsChannel(TemplateSmsChannel):
    vendor = "aliyun"

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        templates: Mapping[str, str],
        endpoint: str = ALIYUN_ENDPOINT,
        max_chars: int = ALIYUN_PARAM_MAX_CHARS,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        super().__init__(
            sign_name=sign_name, templates=templates, max_chars=max_chars, timeout_s=timeout_s, client=client
        )
        self._key_id = access_key_id
        self._key_secret = access_key_secret
        self._endpoint = endpoint.rstrip("/")
        self._clock = clock

    def request(self, delivery: Delivery, message: TemplateMessage) -> DeliveryResult:
        query = {
            "PhoneNumbers": delivery.phone.strip(),
            "SignName": self._sign_name,
            "TemplateCode": message.template_code,
            "TemplateParam": json.dumps(message.params, ensure_ascii=False, separators=(",", ":")),
            "OutId": delivery.idempotency_key[:64],
        }
        body = b""
        headers = {
            "host": urlsplit(self._endpoint).netloc,
            "x-acs-action": "SendSms",
            "x-acs-version": ALIYUN_VERSION,
            "x-acs-date": self._clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x-acs-signature-nonce": uuid.uuid4().hex,
            "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        }
        headers["authorization"] = sign_v3(
            method="POST",
            query=query,
            headers=headers,
            body=body,
            access_key_id=self._key_id,
            access_key_secret=self._key_secret,
        )
        response = self._client.post(f"{self._endpoint}/?{canonical_query(query)}", content=body, headers=headers)
        try:
            answer = response.json()
            code = str(answer.get("Code", ""))
            text = str(answer.get("Message", ""))
        except (ValueError, AttributeError):
            permanent = 400 <= response.status_code < 500 and response.status_code not in {408, 429}
            return DeliveryResult(False, f"aliyun HTTP {response.status_code}", permanent=permanent)
        if response.status_code == 200 and code == "OK":
            return DeliveryResult(True, f"aliyun OK {message.family} template, BizId {answer.get('BizId', '')}")
        return self.result(code or f"HTTP {response.status_code}", text, VERDICTS)
