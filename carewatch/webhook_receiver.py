"""A small signed-webhook receiver: the demo's stand-in for a caregiver app, and a test/bench peer.

It does what a real receiver must: verify the HMAC signature and the timestamp window, answer 401 for
anything unsigned or stale, and count each idempotency key once (repeats are counted separately).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alerting.signing import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass(frozen=True, slots=True)
class ReceivedDelivery:
    path: str
    idempotency_key: str
    body: dict[str, Any]
    received_monotonic: float
    received_unix: float


class WebhookReceiver:
    def __init__(self, *, secret: str, host: str = "127.0.0.1", port: int = 0, fail_first: int = 0) -> None:
        self.secret = secret
        self.deliveries: list[ReceivedDelivery] = []
        self.repeats = 0
        self.refused = 0
        # Answer 503 to this many requests first: lets tests exercise retries against a real server.
        self.fail_remaining = fail_first
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` distinct deliveries arrived."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.deliveries) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._arrived.wait(remaining)
        return True

    def _accept(self, path: str, headers: dict[str, str], body: bytes) -> int:
        ok = verify(
            self.secret, headers.get(TIMESTAMP_HEADER, ""), body, headers.get(SIGNATURE_HEADER, ""), now=time.time()
        )
        with self._arrived:
            if not ok:
                self.refused += 1
                return 401
            if self.fail_remaining > 0:
                self.fail_remaining -= 1
                return 503
            key = headers.get(IDEMPOTENCY_HEADER, "")
            if key in self._seen:
                self.repeats += 1
                return 200
            self._seen.add(key)
            self.deliveries.append(ReceivedDelivery(path, key, json.loads(body), time.monotonic(), time.time()))
            self._arrived.notify_all()
        return 200

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = dict(self.headers.items())
                status = receiver._accept(self.path, headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
