"""Local stand-ins for the Chinese messaging services carewatch talks to, as real HTTP servers on loopback.

Each checks what the real service checks, written from the vendor's documentation and independently
of carewatch's own signing code (a fake that reused it would verify nothing):

- ``FakeWeCom``: ``POST /cgi-bin/webhook/send?key=``; ``msgtype`` text (content ≤ 2048 bytes) or markdown
  (≤ 4096 bytes); at most ``limit`` messages per ``window_s`` per robot, then errcode 45009.
- ``FakeDingTalk``: ``POST /robot/send?access_token=&timestamp=&sign=``; the 加签 signature recomputed
  from the robot's secret and the timestamp (within an hour), then errcode 310000; at most ``limit``
  per ``window_s``, then errcode 130101 and the robot throttled for ``penalty_s``.
- the SMS vendors: ``tests.alerting.sms_fakes``.

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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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


class FakeHttpServer:
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
class SlidingWindow:
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
        self.window = SlidingWindow(limit, window_s)
        self.received: list[Received] = []
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        self.violations: list[str] = []
        self.throttled = 0
        self.script: deque[int] = deque()
        self._server = FakeHttpServer(self._handle)

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
        self.window = SlidingWindow(limit, window_s)
        self.penalty_s = penalty_s
        self.blocked_until: dict[str, float] = {}
        self.received: list[Received] = []
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        self.violations: list[str] = []
        self.throttled = 0
        self.script: deque[int] = deque()
        self._server = FakeHttpServer(self._handle)

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
