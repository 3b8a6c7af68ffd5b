"""A local stand-in for the voice/SMS gateway that calls or texts residents at a check-in.

It checks what a real gateway adapter checks before it spends money on a call: the request's signature
(HMAC-SHA256 with the shared secret over ``"{timestamp}.{body}"``, five minutes' tolerance) and bearer
token, the fields and their formats (a mainland mobile number or E.164, ``channel`` voice or sms, a
non-empty message within the limits: 500 characters for a call's script, 350 for an SMS, i.e. five
70-character segments), and the idempotency key (a retried request is acknowledged, never called
twice). Then the simulated resident answers or not (:class:`simulator.answers.ResidentAnswers`, or a
script per phone number) and the gateway reports the digit to ``callback_url``, signed the same way.

Used by the tests and by the demo; a real deployment points ``CAREWATCH_CHECKIN_GATEWAY_URL`` at the
operator's adapter for their voice/SMS provider, which speaks the same small contract.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from alerting.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from simulator.answers import ResidentAnswers

log = logging.getLogger(__name__)

_PHONE = re.compile(r"^(\+?[1-9]\d{7,14}|1[3-9]\d{9})$")
_LIMITS = {"voice": 500, "sms": 350}
_REQUIRED = ("checkin_id", "channel", "to", "locale", "text", "answers", "expires", "callback_url", "idempotency_key")
_DIGITS = {"ok": "1", "help": "2", "away": "3"}


@dataclass(frozen=True, slots=True)
class GatewayCall:
    """One accepted request: what the resident was told and what they answered (None: no answer)."""

    channel: str
    to: str
    checkin_id: str
    text: str
    locale: str
    answered: str | None


@dataclass
class FakePhoneGateway:
    secret: str
    token: str | None = None
    answers: ResidentAnswers = field(default_factory=ResidentAnswers)
    # Per phone number, the answer to each call in turn ("ok", "help", "away", or None: no answer).
    scripts: Mapping[str, list[str | None]] = field(default_factory=dict)
    # Households of phone numbers (the answer model is per household: a fallen resident never answers).
    households: Mapping[str, str] = field(default_factory=dict)
    answer_delay_s: float = 0.2
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        self.calls: list[GatewayCall] = []
        self.refused: list[str] = []
        self.callbacks: list[tuple[str, int]] = []  # (checkin_id, status of our callback)
        self._seen: set[str] = set()
        self._script_pos: dict[str, int] = {}
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-phone-gateway", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1/checkins"

    def start(self) -> FakePhoneGateway:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # What a real gateway checks -------------------------------------------------------------------
    def accept(self, headers: Mapping[str, str], raw: bytes) -> tuple[int, str]:
        """(HTTP status, reason) for one request; on 200 the call or SMS is placed."""
        body, refusal = self._check(headers, raw)
        if refusal is not None:
            return 400 if refusal.startswith("bad request") else 401, refusal
        with self._lock:
            if body["idempotency_key"] in self._seen:
                return 200, "duplicate: already placed"
            self._seen.add(body["idempotency_key"])
            attempt = self._attempts.get(body["checkin_id"], 0) + 1
            self._attempts[body["checkin_id"]] = attempt
        answered = self._answer(str(body["to"]), str(body["checkin_id"]), attempt)
        with self._lock:
            self.calls.append(
                GatewayCall(body["channel"], body["to"], body["checkin_id"], body["text"], body["locale"], answered)
            )
        if answered is not None:
            via = "voice" if body["channel"] == "voice" else "resident_sms"
            timer = threading.Timer(self.answer_delay_s, self._call_back, (body, answered, via))
            timer.daemon = True
            timer.start()
        return 200, "placed"

    def _check(self, headers: Mapping[str, str], raw: bytes) -> tuple[dict[str, Any], str | None]:
        """The request body, or why it is refused ("bad request: ..." is a 400, the rest a 401)."""
        if self.token is not None and headers.get("Authorization") != f"Bearer {self.token}":
            return {}, "bad token"
        stamp, signature = headers.get(TIMESTAMP_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
        if not verify(self.secret, stamp or "", raw, signature or "", now=time.time()):
            return {}, "bad signature"
        try:
            body = json.loads(raw)
        except ValueError:
            return {}, "bad request: not JSON"
        problems = [f"missing {key}" for key in _REQUIRED if key not in body]
        if not problems:
            limit = _LIMITS.get(body["channel"])
            if limit is None:
                problems.append("channel must be voice or sms")
            elif not 0 < len(str(body["text"])) <= limit:
                problems.append(f"text must be 1 to {limit} characters")
            if not _PHONE.match(str(body["to"])):
                problems.append("not a phone number")
            if not isinstance(body["answers"], dict) or set(body["answers"].values()) != set(_DIGITS):
                problems.append("answers must map digits to ok, help and away")
        return body, ("bad request: " + "; ".join(problems)) if problems else None

    def _answer(self, phone: str, checkin_id: str, attempt: int) -> str | None:
        with self._lock:
            script = self.scripts.get(phone)
            if script is not None:
                position = self._script_pos.get(phone, 0)
                self._script_pos[phone] = position + 1
                return script[position] if position < len(script) else None
        household = self.households.get(phone, phone)
        return self.answers.answer if self.answers.decide(household, checkin_id, attempt) is not None else None

    def _call_back(self, body: Mapping[str, Any], answer: str, via: str) -> None:
        raw = json.dumps({"answer": answer, "via": via}).encode()
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self.secret, stamp, raw),
        }
        try:
            response = httpx.post(str(body["callback_url"]), content=raw, headers=headers, timeout=10)
            status = response.status_code
        except httpx.HTTPError as exc:
            log.warning("fake gateway: callback for %s failed: %s", body["checkin_id"], exc)
            status = 0
        with self._lock:
            self.callbacks.append((str(body["checkin_id"]), status))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                status, reason = gateway.accept(dict(self.headers.items()), raw)
                if status != 200:
                    with gateway._lock:
                        gateway.refused.append(reason)
                payload = json.dumps({"status": reason}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
