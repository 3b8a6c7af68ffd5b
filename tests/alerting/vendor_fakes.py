"""Local stand-ins for the Chinese messaging services carewatch talks to, as real HTTP servers on loopback.

Each checks what the real service checks, written from the vendor's documentation and independently
of carewatch's own signing code (a fake that reused it would verify nothing):

- ``FakeWeCom``: ``POST /cgi-bin/webhook/send?key=``; ``msgtype`` text (content ≤ 2048 bytes) or markdown
  (≤ 4096 bytes); at most ``limit`` messages per ``window_s`` per robot, then errcode 45009.
- ``FakeDingTalk``: ``POST /robot/send?access_token=&timestamp=&sign=``; the 加签 signature recomputed
  from the robot's secret and the timestamp (within an hour), then errcode 310000; at most ``limit``
  per ``window_s``, then errcode 130101 and the robot throttled for ``penalty_s``.
- ``FakeAliyunSms``: ``SendSms`` with the V3 signature (ACS3-HMAC-SHA256) recomputed from the request,
  date within 15 minutes, nonces never reused, the signature name and template approved, every variable
  present and at most 35 characters, per-number flow control (``isv.BUSINESS_LIMIT_CONTROL``).
- ``FakeTencentSms``: ``SendSms`` (API 3.0) with TC3-HMAC-SHA256 recomputed, timestamp within 5 minutes,
  app id, signature name, template and parameter count checked, each variable at most 12 characters,
  per-number limits (``LimitExceeded.PhoneNumberThirtySecondLimit`` / ``...DailyLimit``).

Every fake records what it received and ``violations``: anything the real service would refuse. The
answers have the vendors' shapes. ``script`` queues forced answer codes (a throttled robot, a day limit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

Answer = tuple[int, dict[str, Any]]


@dataclass
class Received:
    at: float  # time.monotonic() on arrival
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server:
    """A threaded HTTP server that hands every POST to ``handle`` and answers its JSON."""

    def __init__(self, handle: Callable[[Received], Answer]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = Received(
                    at=time.monotonic(),
                    path=parts.path,
                    query=dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                )
                request.headers["x-raw-query"] = parts.query
                with outer.lock:
                    status, answer = handle(request)
                data = json.dumps(answer, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class _Window:
    """Sliding-window counting by arrival time, as the robots' documented per-minute limit."""

    limit: int
    window_s: float
    arrivals: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def admit(self, key: str, now: float) -> bool:
        queue = self.arrivals[key]
        while queue and queue[0] <= now - self.window_s:
            queue.popleft()
        if len(queue) >= self.limit:
            return False
        queue.append(now)
        return True


class FakeWeCom:
    def __init__(self, *, limit: int = 20, window_s: float = 60.0) -> None:
        self.keys: set[str] = set()
        self.window = _Window(limit, window_s)
        self.received: list[Received] = []
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        self.violations: list[str] = []
        self.throttled = 0
        self.script: deque[int] = deque()
        self._server = _Server(self._handle)

    def robot(self) -> str:
        key = str(uuid.uuid4())
        self.keys.add(key)
        return f"{self._server.base}/cgi-bin/webhook/send?key={key}"

    def _handle(self, request: Received) -> Answer:  # noqa: PLR0911 - one answer per vendor check
        self.received.append(request)
        key = request.query.get("key", "")
        if request.path != "/cgi-bin/webhook/send" or key not in self.keys:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
        if self.script:
            code = self.script.popleft()
            return 200, {"errcode": code, "errmsg": "api freq out of limit" if code == 45009 else "scripted"}
        if not self.window.admit(key, request.at):
            self.throttled += 1
            self.violations.append(f"more than {self.window.limit} messages in {self.window.window_s} s")
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        try:
            message = request.json()
        except ValueError:
            self.violations.append("body is not JSON")
            return 200, {"errcode": 40001, "errmsg": "invalid json"}
        msgtype = message.get("msgtype")
        limit = {"text": 2048, "markdown": 4096}.get(str(msgtype))
        if limit is None:
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        content = str(message.get(msgtype, {}).get("content", ""))
        if not content or len(content.encode()) > limit:
            self.violations.append(f"{msgtype} content of {len(content.encode())} bytes (limit {limit})")
            return 200, {"errcode": 40058, "errmsg": f"{msgtype}.content exceed max length {limit}"}
        self.delivered.append((key, message))
        return 200, {"errcode": 0, "errmsg": "ok"}

    def stop(self) -> None:
        self._server.stop()


class FakeDingTalk:
    def __init__(self, *, limit: int = 20, window_s: float = 60.0, penalty_s: float = 600.0) -> None:
        self.secrets: dict[str, str] = {}
        self.window = _Window(limit, window_s)
        self.penalty_s = penalty_s
        self.blocked_until: dict[str, float] = {}
        self.received: list[Received] = []
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        self.violations: list[str] = []
        self.throttled = 0
        self.script: deque[int] = deque()
        self._server = _Server(self._handle)

    def robot(self) -> tuple[str, str]:
        """A new robot: (webhook URL, 加签 secret)."""
        token = uuid.uuid4().hex
        secret = "SEC" + uuid.uuid4().hex + uuid.uuid4().hex
        self.secrets[token] = secret
        return f"{self._server.base}/robot/send?access_token={token}", secret

    def _check_sign(self, request: Received, secret: str) -> str | None:
        timestamp, sign = request.query.get("timestamp", ""), request.query.get("sign", "")
        if not timestamp.isdigit():
            return "invalid timestamp"
        if abs(time.time() * 1000 - int(timestamp)) > 3600 * 1000:
            return "invalid timestamp"
        string_to_sign = f"{timestamp}\n{secret}".encode()
        expected = base64.b64encode(hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()).decode()
        return None if hmac.compare_digest(expected, sign) else "sign not match"

    def _handle(self, request: Received) -> Answer:
        self.received.append(request)
        token = request.query.get("access_token", "")
        if request.path != "/robot/send" or token not in self.secrets:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        problem = self._check_sign(request, self.secrets[token])
        if problem:
            self.violations.append(problem)
            return 200, {"errcode": 310000, "errmsg": f"{problem}, more: [https://ding-doc.dingtalk.com]"}
        if self.script:
            code = self.script.popleft()
            return 200, {"errcode": code, "errmsg": "send too fast, exceed 20 times per minute"}
        if request.at < self.blocked_until.get(token, 0.0) or not self.window.admit(token, request.at):
            self.throttled += 1
            self.violations.append(f"more than {self.window.limit} messages in {self.window.window_s} s")
            self.blocked_until[token] = max(self.blocked_until.get(token, 0.0), request.at + self.penalty_s)
            return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        message = request.json()
        body = message.get("markdown", {})
        if message.get("msgtype") != "markdown" or not body.get("title") or not body.get("text"):
            self.violations.append("not a markdown message with title and text")
            return 200, {"errcode": 400105, "errmsg": "unsupported message"}
        self.delivered.append((token, message))
        return 200, {"errcode": 0, "errmsg": "ok"}

    def stop(self) -> None:
        self._server.stop()


# ---- SMS ----------------------------------------------------------------------------------------------


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
        self.window = _Window(per_minute, 60.0)
        self.nonces: set[str] = set()
        self.received: list[Received] = []
        self.sent: list[SmsSent] = []
        self.violations: list[str] = []
        self.script: deque[str] = deque()
        self._server = _Server(self._handle)
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
        self.window = _Window(1, 30.0)  # the default per-number limit: one message in 30 seconds
        self.received: list[Received] = []
        self.sent: list[SmsSent] = []
        self.violations: list[str] = []
        self.script: deque[str] = deque()
        self._server = _Server(self._handle)
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
