"""Local stand-ins for the two Chinese cloud SMS services, as real HTTP servers on loopback (the server,
request record and window of ``tests.alerting.vendor_fakes``). Written from the vendors' documentation,
independently of carewatch's signing code:

- ``FakeAliyunSms``: ``SendSms`` with the V3 signature (ACS3-HMAC-SHA256) recomputed from the request,
  date within 15 minutes, nonces never reused, the signature name and template approved, every variable
  present and at most 35 characters, per-number flow control (``isv.BUSINESS_LIMIT_CONTROL``).
- ``FakeTencentSms``: ``SendSms`` (API 3.0) with TC3-HMAC-SHA256 recomputed, timestamp within 5 minutes,
  app id, signature name, template and parameter count checked, each variable at most 12 characters,
  per-number limits (``LimitExceeded.PhoneNumberThirtySecondLimit`` / ``...DailyLimit``).

Answers have the vendors' shapes; ``script`` queues forced answer codes; ``violations`` lists what the
real service would have refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from tests.alerting.vendor_fakes import Answer, FakeHttpServer, Received, SlidingWindow


def _rfc3986(text: str) -> str:
    return quote(text, safe="-_.~")


@dataclass
class SmsSent:
    phone: str
    template: str
    params: dict[str, str] | list[str]
    sign_name: str
    reference: str


class FakeAliyunSms:
    """dysmsapi ``SendSms`` (2017-05-25) with V3 signatures."""

    def __init__(
        self,
        *,
        key_id: str,
        key_secret: str,
        sign_name: str,
        templates: dict[str, tuple[str, ...]],
        per_minute: int = 1,
    ) -> None:
        self.keys = {key_id: key_secret}
        self.sign_name = sign_name
        self.templates = templates
        self.window = SlidingWindow(per_minute, 60.0)
        self.nonces: set[str] = set()
        self.received: list[Received] = []
        self.sent: list[SmsSent] = []
        self.violations: list[str] = []
        self.script: deque[str] = deque()
        self._server = FakeHttpServer(self._handle)
        self.endpoint = self._server.base

    def _error(self, status: int, code: str, message: str) -> Answer:
        return status, {"RequestId": str(uuid.uuid4()).upper(), "Code": code, "Message": message}

    def _verify(self, request: Received) -> str | None:  # noqa: PLR0911 - one answer per vendor check
        headers = request.headers
        auth = headers.get("authorization", "")
        algorithm, _, rest = auth.partition(" ")
        fields = dict(part.split("=", 1) for part in rest.split(",") if "=" in part)
        if algorithm != "ACS3-HMAC-SHA256" or fields.get("Credential") not in self.keys:
            return "InvalidAccessKeyId.NotFound"
        if headers.get("x-acs-action") != "SendSms" or headers.get("x-acs-version") != "2017-05-25":
            return "InvalidAction.NotFound"
        try:
            signed_at = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "IncompleteSignature"
        if abs((datetime.now(UTC) - signed_at).total_seconds()) > 15 * 60:
            return "InvalidTimeStamp.Expired"
        nonce = headers.get("x-acs-signature-nonce", "")
        if not nonce or nonce in self.nonces:
            return "SignatureNonceUsed"
        if headers.get("x-acs-content-sha256") != hashlib.sha256(request.body).hexdigest():
            return "SignatureDoesNotMatch"
        names = fields.get("SignedHeaders", "").split(";")
        if not {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce"} <= set(names):
            return "IncompleteSignature"
        query = "&".join(f"{_rfc3986(k)}={_rfc3986(v)}" for k, v in sorted(request.query.items()))
        canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in names)
        canonical = "\n".join(
            ["POST", "/", query, canonical_headers, ";".join(names), hashlib.sha256(request.body).hexdigest()]
        )
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        secret = self.keys[fields["Credential"]]
        expected = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return "SignatureDoesNotMatch"
        self.nonces.add(nonce)
        return None

    def _handle(self, request: Received) -> Answer:  # noqa: PLR0911 - one answer per vendor check
        self.received.append(request)
        problem = self._verify(request)
        if problem:
            self.violations.append(problem)
            return self._error(400, problem, "Specified signature is not matched with our calculation.")
        query = request.query
        if query.get("SignName") != self.sign_name:
            return self._error(200, "isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        variables = self.templates.get(query.get("TemplateCode", ""))
        if variables is None:
            return self._error(200, "isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            params = json.loads(query.get("TemplateParam", ""))
        except ValueError:
            return self._error(200, "isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if set(params) != set(variables):
            return self._error(200, "isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        too_long = [name for name, value in params.items() if not isinstance(value, str) or len(value) > 35]
        if too_long:
            self.violations.append(f"variables over 35 characters: {too_long}")
            return self._error(200, "isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        phone = query.get("PhoneNumbers", "").removeprefix("+86")
        if not (phone.isdigit() and len(phone) == 11 and phone.startswith("1")):
            return self._error(200, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if self.script:
            code = self.script.popleft()
            return self._error(200, code, "触发分钟级流控Permits:1" if code == "isv.BUSINESS_LIMIT_CONTROL" else code)
        if not self.window.admit(phone, request.at):
            return self._error(200, "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
        self.sent.append(SmsSent(phone, query["TemplateCode"], params, query["SignName"], query.get("OutId", "")))
        return 200, {
            "RequestId": str(uuid.uuid4()).upper(),
            "Message": "OK",
            "BizId": f"{int(time.time() * 1000)}^0",
            "Code": "OK",
        }

    def stop(self) -> None:
        self._server.stop()


class FakeTencentSms:
    """sms.tencentcloudapi.com ``SendSms`` (2021-01-11) with TC3-HMAC-SHA256 signatures."""

    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        app_id: str,
        sign_name: str,
        templates: dict[str, int],
        max_chars: int = 12,
    ) -> None:
        self.keys = {secret_id: secret_key}
        self.app_id = app_id
        self.sign_name = sign_name
        self.templates = templates  # template id -> number of variables
        self.max_chars = max_chars
        self.window = SlidingWindow(1, 30.0)  # the default per-number limit: one message in 30 seconds
        self.received: list[Received] = []
        self.sent: list[SmsSent] = []
        self.violations: list[str] = []
        self.script: deque[str] = deque()
        self._server = FakeHttpServer(self._handle)
        self.endpoint = self._server.base

    @staticmethod
    def _response(payload: dict[str, Any]) -> Answer:
        return 200, {"Response": {**payload, "RequestId": str(uuid.uuid4())}}

    def _error(self, code: str, message: str) -> Answer:
        return self._response({"Error": {"Code": code, "Message": message}})

    def _verify(self, request: Received) -> str | None:
        headers = request.headers
        algorithm, _, rest = headers.get("authorization", "").partition(" ")
        fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
        secret_id, _, scope = fields.get("Credential", "").partition("/")
        if algorithm != "TC3-HMAC-SHA256" or secret_id not in self.keys:
            return "AuthFailure.SecretIdNotFound"
        timestamp = headers.get("x-tc-timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return "AuthFailure.SignatureExpire"
        date = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")
        if scope != f"{date}/sms/tc3_request":
            return "AuthFailure.SignatureFailure"
        if headers.get("x-tc-action") != "SendSms" or headers.get("x-tc-version") != "2021-01-11":
            return "InvalidAction"
        names = fields.get("SignedHeaders", "").split(";")
        canonical_headers = "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in names)
        canonical = "\n".join(
            ["POST", "/", "", canonical_headers, ";".join(names), hashlib.sha256(request.body).hexdigest()]
        )
        to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"

        def step(key: bytes, message: str) -> bytes:
            return hmac.new(key, message.encode(), hashlib.sha256).digest()

        key = step(step(step(("TC3" + self.keys[secret_id]).encode(), date), "sms"), "tc3_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return "AuthFailure.SignatureFailure"
        return None

    def _handle(self, request: Received) -> Answer:  # noqa: PLR0911 - one answer per vendor check
        self.received.append(request)
        problem = self._verify(request)
        if problem:
            self.violations.append(problem)
            return self._error(problem, "The provided credentials could not be validated.")
        body = request.json()
        if body.get("SmsSdkAppId") != self.app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId 不存在。")
        if body.get("SignName") != self.sign_name:
            return self._error("FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误。")
        params = body.get("TemplateParamSet", [])
        if self.templates.get(str(body.get("TemplateId"))) != len(params):
            return self._error("FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配。")
        if any(len(value) > self.max_chars for value in params):
            self.violations.append(f"a variable over {self.max_chars} characters: {params}")
            return self._error(
                "InvalidParameterValue.TemplateParameterLengthLimit", f"单个模板变量字符数超过{self.max_chars}个"
            )
        (phone,) = body["PhoneNumberSet"]
        status = {
            "SerialNo": f"5000:{uuid.uuid4().int % 10**20}",
            "PhoneNumber": phone,
            "Fee": 1,
            "SessionContext": body.get("SessionContext", ""),
            "IsoCode": "CN",
        }
        if not (phone.startswith("+86") and len(phone) == 14):
            return self._response(
                {
                    "SendStatusSet": [
                        {
                            **status,
                            "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                            "Message": "手机号格式错误",
                            "Fee": 0,
                        }
                    ]
                }
            )
        code = self.script.popleft() if self.script else None
        if code is None and not self.window.admit(phone, request.at):
            code = "LimitExceeded.PhoneNumberThirtySecondLimit"
        if code is not None:
            return self._response({"SendStatusSet": [{**status, "Code": code, "Message": code, "Fee": 0}]})
        self.sent.append(SmsSent(phone, str(body["TemplateId"]), params, body["SignName"], status["SessionContext"]))
        return self._response({"SendStatusSet": [{**status, "Code": "Ok", "Message": "send success"}]})

    def stop(self) -> None:
        self._server.stop()
