"""Tencent Cloud SMS (腾讯云短信) ``SendSms``, API 3.0 version 2021-01-11, signed with TC3-HMAC-SHA256.

Why not the SDK: ``tencentcloud-sdk-python`` brings its own HTTP stack (requests) for one call; the TC3
signature is a few lines over httpx, and every channel here shares httpx's timeouts and transports.

The request: ``POST {endpoint}/`` with a JSON body ``{"PhoneNumberSet": ["+86..."], "SmsSdkAppId",
"SignName", "TemplateId", "TemplateParamSet": [values in template order], "SessionContext": our
idempotency key}`` and headers ``X-TC-Action: SendSms``, ``X-TC-Version: 2021-01-11``, ``X-TC-Region``,
``X-TC-Timestamp`` (Unix seconds, within 5 minutes of Tencent's clock), ``Content-Type``, ``Host`` and
``Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<date>/sms/tc3_request,
SignedHeaders=content-type;host, Signature=<hex>``: the canonical request (method, "/", empty query,
"content-type:...\\nhost:...\\n", the signed names, hex SHA-256 of the body) is hashed into
"TC3-HMAC-SHA256\\n<timestamp>\\n<date>/sms/tc3_request\\n<hash>", signed with a key derived as
HMAC(HMAC(HMAC("TC3" + SecretKey, date), "sms"), "tc3_request"); ``date`` is the timestamp's UTC date.

Answers: ``Response.Error`` for a request refused as a whole (``AuthFailure.*``, ``InvalidParameterValue.*``,
``FailedOperation.*``, ``RequestLimitExceeded``), else ``Response.SendStatusSet[i].Code`` per number:
``Ok`` is delivered; the per-number 30-second and one-hour limits and ``DeliveryFrequencyLimit`` are
rate limits (retried after the wait); ``LimitExceeded.PhoneNumberDailyLimit`` and other daily limits,
a bad number, template, signature or over-long variable are permanent; the rest is retried.
Variables: at most 12 characters each for accounts verified as individuals; enterprise-verified
accounts are not limited per variable (raise ``max_chars``; the template's own variable rules apply).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from alerting.channels import Delivery, DeliveryResult
from alerting.sms_templates import TemplateMessage, TemplateSmsChannel, Verdict

TENCENT_ENDPOINT = "https://sms.tencentcloudapi.com"
TENCENT_VERSION = "2021-01-11"
TENCENT_PARAM_MAX_CHARS = 12
ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "sms"
CONTENT_TYPE = "application/json; charset=utf-8"

_PERMANENT = Verdict(permanent=True)
VERDICTS: dict[str, Verdict] = {
    "LimitExceeded.PhoneNumberThirtySecondLimit": Verdict(retry_after_s=30.0),
    "LimitExceeded.PhoneNumberOneHourLimit": Verdict(retry_after_s=300.0),
    "LimitExceeded.DeliveryFrequencyLimit": Verdict(retry_after_s=60.0),
    "RequestLimitExceeded": Verdict(retry_after_s=1.0),
    "LimitExceeded.PhoneNumberDailyLimit": _PERMANENT,
    "LimitExceeded.AppDailyLimit": _PERMANENT,
    "LimitExceeded.DailyLimit": _PERMANENT,
    "LimitExceeded.AppMainlandChinaDailyLimit": _PERMANENT,
    "InvalidParameterValue.IncorrectPhoneNumber": _PERMANENT,
    "InvalidParameterValue.TemplateParameterLengthLimit": _PERMANENT,
    "InvalidParameterValue.TemplateParameterFormatError": _PERMANENT,
    "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter": _PERMANENT,
    "InvalidParameterValue.SdkAppIdNotExist": _PERMANENT,
    "FailedOperation.TemplateIncorrectOrUnapproved": _PERMANENT,
    "FailedOperation.SignatureIncorrectOrUnapproved": _PERMANENT,
    "FailedOperation.InsufficientBalanceInSmsPackage": _PERMANENT,
    "FailedOperation.PhoneNumberInBlacklist": _PERMANENT,
    "UnauthorizedOperation.SmsSdkAppIdVerifyFail": _PERMANENT,
    "AuthFailure.SignatureFailure": _PERMANENT,
    "AuthFailure.SecretIdNotFound": _PERMANENT,
}


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sign_tc3(
    *, secret_id: str, secret_key: str, host: str, body: bytes, timestamp: int, content_type: str = CONTENT_TYPE
) -> str:
    """The ``Authorization`` header value of a POST with this body, as TC3-HMAC-SHA256 defines it."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    signed_headers = "content-type;host"
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            # Header names and values lower-cased and trimmed, as TC3 canonicalises them.
            f"content-type:{content_type.strip().lower()}\nhost:{host.strip().lower()}\n",
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{SERVICE}/tc3_request"
    to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), SERVICE), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ALGORITHM} Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"


def e164(phone: str) -> str:
    """Tencent wants E.164 (+86 for the mainland); an 11-digit mainland mobile gets its +86."""
    digits = phone.strip().replace(" ", "").replace("-", "")
    if digits.startswith("+"):
        return digits
    if digits.startswith("0086"):
        return "+" + digits[2:]
    return "+86" + digits if len(digits) == 11 else "+" + digits


class TencentSmsChannel(TemplateSmsChannel):
    vendor = "tencent"

    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        sign_name: str,
        templates: Mapping[str, str],
        region: str = "ap-guangzhou",
        endpoint: str = TENCENT_ENDPOINT,
        max_chars: int = TENCENT_PARAM_MAX_CHARS,
        timeout_s: float = 5.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            sign_name=sign_name, templates=templates, max_chars=max_chars, timeout_s=timeout_s, client=client
        )
        self._secret_id = secret_id
        self._secret_key = secret_key
        self._app_id = sdk_app_id
        self._region = region
        self._endpoint = endpoint.rstrip("/")
        self._clock = clock

    def request(self, delivery: Delivery, message: TemplateMessage) -> DeliveryResult:
        payload = {
            "PhoneNumberSet": [e164(delivery.phone)],
            "SmsSdkAppId": self._app_id,
            "SignName": self._sign_name,
            "TemplateId": message.template_code,
            "TemplateParamSet": list(message.params.values()),
            "SessionContext": delivery.idempotency_key,
        }
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        host = urlsplit(self._endpoint).netloc
        timestamp = int(self._clock())
        headers = {
            "Authorization": sign_tc3(
                secret_id=self._secret_id, secret_key=self._secret_key, host=host, body=body, timestamp=timestamp
            ),
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": "SendSms",
            "X-TC-Version": TENCENT_VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self._region,
        }
        response = self._client.post(f"{self._endpoint}/", content=body, headers=headers)
        try:
            answer = response.json()["Response"]
            error = answer.get("Error")
            statuses = answer.get("SendStatusSet") or []
        except (ValueError, KeyError, TypeError, AttributeError):
            permanent = 400 <= response.status_code < 500 and response.status_code not in {408, 429}
            return DeliveryResult(False, f"tencent HTTP {response.status_code}", permanent=permanent)
        if error:
            return self.result(str(error.get("Code", "")), str(error.get("Message", "")), VERDICTS)
        if not statuses:
            return DeliveryResult(False, "tencent answered without a send status")
        status = statuses[0]
        code = str(status.get("Code", ""))
        if code == "Ok":
            return DeliveryResult(True, f"tencent Ok {message.family} template, SerialNo {status.get('SerialNo', '')}")
        return self.result(code, str(status.get("Message", "")), VERDICTS)
