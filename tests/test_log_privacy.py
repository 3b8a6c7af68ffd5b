"""No personal data in the logs, at any level: the whole system at DEBUG, greped for marker strings.

``carewatch run`` runs as operators run it (a process of its own, its ingest and dispatcher children
writing to the same stderr), against the real broker and database, with DEBUG logging, secrets read
from ``*_FILE`` files, and every channel pointed at a local fake that checks what the real one checks
(a signed webhook receiver, an SMTP server, an SMS gateway that wants its token and answers the first
message with a 400 quoting the number and the text, as gateways do). Through the API a household, its
resident and its caregiver are provisioned with a unique marker in every personal field; then the call
button sends a service request and an emergency with a note the resident typed, a refused message
carries the note, the caregiver app sends an invalid and a valid reply with notes, alerts are claimed,
declined and resolved with notes, a visit is logged, the household is read, exported and erased. The
captured output of all processes, and what /metrics and /readyz show to anyone, must hold no marker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller

from api.auth import create_token
from carewatch.embedded import free_port
from carewatch.webhook_receiver import WebhookReceiver
from tests.privacy import Markers, provision
from tests.support import payload, publish_raw, wait_until

SMS_TOKEN = "sms-" + os.urandom(8).hex()


class _Mailbox:
    def __init__(self) -> None:
        self.recipients: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        self.recipients.extend(envelope.rcpt_tos)
        return "250 OK"


class _SmsGateway:
    """Wants ``Authorization: Bearer <token>``; refuses the first message with a 400 quoting it."""

    def __init__(self, token: str) -> None:
        self.received: list[dict[str, Any]] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("Authorization") != f"Bearer {token}":
                    status, answer = 401, b'{"error": "bad token"}'
                elif not gateway.received:
                    status, answer = 400, json.dumps({"error": f"rejected {body['to']}: {body['text']}"}).encode()
                else:
                    status, answer = 200, b'{"ok": true}'
                gateway.received.append(body)
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fakes() -> Iterator[tuple[WebhookReceiver, _Mailbox, int, _SmsGateway]]:
    receiver = WebhookReceiver(secret=os.urandom(16).hex()).start()
    mailbox = _Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    gateway = _SmsGateway(SMS_TOKEN)
    try:
        yield receiver, mailbox, smtp_port, gateway
    finally:
        gateway.stop()
        smtp.stop()
        receiver.stop()


def _start_carewatch(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
    log_path = tmp_path / "carewatch.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAREWATCH_")} | env
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "carewatch.cli", "run"], env=environment, stdout=log_file, stderr=subprocess.STDOUT
        )
    return process, log_path


def _secret_file(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n", encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def test_no_personal_data_reaches_the_logs(
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    topic_root: str,
    fakes: tuple[WebhookReceiver, _Mailbox, int, _SmsGateway],
) -> None:
    receiver, mailbox, smtp_port, gateway = fakes
    markers = Markers()
    api_port = free_port()
    process, log_path = _start_carewatch(
        tmp_path,
        {
            "CAREWATCH_MQTT_URL": mqtt_url,
            "CAREWATCH_DATABASE_URL_FILE": _secret_file(tmp_path, "database_url", database_url),
            "CAREWATCH_SMS_GATEWAY_TOKEN_FILE": _secret_file(tmp_path, "sms_token", SMS_TOKEN),
            "CAREWATCH_SMS_GATEWAY_URL": gateway.url,
            "CAREWATCH_SMTP_HOST": "127.0.0.1",
            "CAREWATCH_SMTP_PORT": str(smtp_port),
            "CAREWATCH_TOPIC_ROOT": topic_root,
            "CAREWATCH_MQTT_CLIENT_ID": f"privacy-{markers.tag}",
            "CAREWATCH_API_PORT": str(api_port),
            "CAREWATCH_LOG_LEVEL": "DEBUG",
            "CAREWATCH_DETECTOR_TICK_S": "0.5",
            "CAREWATCH_DETECTOR_REFRESH_S": "1",
            "CAREWATCH_DISPATCH_POLL_S": "0.1",
            "CAREWATCH_INGEST_FLUSH_MS": "20",
            "CAREWATCH_QUIET_HOURS": "",  # a service request is not held back whatever the time of day
        },
    )
    base = f"http://127.0.0.1:{api_port}"
    try:
        _drive(base, markers, mqtt_url, database_url, topic_root, receiver, mailbox, gateway)
        with httpx.Client(base_url=base, timeout=10) as open_client:
            exposed = open_client.get("/metrics").text + open_client.get("/readyz").text
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    log = log_path.read_text(encoding="utf-8", errors="replace")

    # The capture is real: DEBUG lines, and lines of the ingest and dispatcher child processes.
    assert " DEBUG " in log
    assert "dispatcher running" in log  # the dispatcher child
    assert "MQTT connected" in log  # an ingest child
    # The paths that used to quote personal text ran: a delivery refused with the text quoted back, an
    # invalid app reply, findings with a resident's note, the erasure.
    for expected in ("is dead after", "invalid app reply", "finding sos", "erased"):
        assert expected in log, expected
    secrets = {**markers.values(), "WebhookToken": markers.text("WebhookToken")}
    leaks = [
        f"{name}: {line.strip()[:200]}" for line in log.splitlines() for name, value in secrets.items() if value in line
    ]
    assert leaks == [], "personal data in the log:\n" + "\n".join(leaks)
    # What the open endpoints show carries no personal data, nor ids.
    assert [name for name, value in markers.values().items() if value in exposed] == []
    assert "hh-privacy" not in exposed
    assert "cg-privacy" not in exposed


def _drive(
    base: str,
    markers: Markers,
    mqtt_url: str,
    database_url: str,
    topic_root: str,
    receiver: WebhookReceiver,
    mailbox: _Mailbox,
    gateway: _SmsGateway,
) -> None:
    wait_until(lambda: _answers(base + "/healthz"), timeout=60)
    with psycopg.connect(database_url) as conn:
        token = create_token(conn, "admin", "privacy-admin")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base + "/api/v1", headers=headers, timeout=10) as api:
        home = provision(
            api,
            markers,
            household_id="hh-privacy",
            caregiver_id="cg-privacy",
            # Robot webhooks (DingTalk, WeCom) carry their secret in the URL's query.
            webhook_url=f"{receiver.url}/robot/send?access_token={markers.text('WebhookToken')}",
            webhook_secret=receiver.secret,
            channels=["webhook", "sms", "email", "app"],
        )
        button = home.devices["call_button"]
        note = markers.text("ResidentNote")
        now_ms = int(time.time() * 1000)
        topic = f"{topic_root}/dev/{button}/event"
        publish_raw(
            mqtt_url,
            [
                (topic, payload(ts=now_ms - 2000, seq=1, event="service_request", note=note)),
                (topic, payload(ts=now_ms - 1000, seq=2, event="sos", note=note)),
                (topic, payload(ts=now_ms, seq=3, event="sos", note=note + "x" * 600)),  # refused: too long
                (topic, f'{{"ts": {now_ms}, "seq": 4, "note": "{note}'.encode()),  # refused: broken JSON
            ],
        )
        wait_until(lambda: [d for d in receiver.deliveries if d.body["kind"] == "sos"], timeout=60)
        wait_until(lambda: markers.email in mailbox.recipients, timeout=30)
        wait_until(lambda: gateway.received, timeout=30)  # answered by a 400 quoting the number and the text
        alerts = api.get("/alerts", params={"household_id": home.household_id}).json()["items"]
        sos = next(alert for alert in alerts if alert["kind"] == "sos")
        request = next(alert for alert in alerts if alert["kind"] == "service_request")

        replies = f"{topic_root}/app/{home.caregiver_id}/replies"
        publish_raw(
            mqtt_url,
            [
                (replies, json.dumps({"alert_id": sos["alert_id"], "action": "shout", "note": note}).encode()),
                (replies, payload(alert_id=request["alert_id"], action="decline", note=markers.text("DeclineNote"))),
            ],
        )
        assert api.post(f"/alerts/{sos['alert_id']}/claim", json={"caregiver_id": home.caregiver_id}).status_code == 200
        resolve = {"actor": home.caregiver_id, "outcome": "needed_help", "note": markers.text("ResolveNote")}
        assert api.post(f"/alerts/{sos['alert_id']}/resolve", json=resolve).status_code == 200
        visit = {"caregiver_id": home.caregiver_id, "note": markers.text("VisitNote")}
        assert api.post(f"/households/{home.household_id}/visits", json=visit).status_code == 201
        for path in (
            f"/households/{home.household_id}",
            f"/households/{home.household_id}/residents",
            f"/care-plans/{home.household_id}",
            f"/caregivers/{home.caregiver_id}",
            f"/alerts/{sos['alert_id']}/timeline",
            f"/alerts/{sos['alert_id']}/deliveries",
            f"/households/{home.household_id}/export",
        ):
            assert api.get(path).status_code == 200, path
        wait_until(lambda: _declined(database_url, request["alert_id"]), timeout=30)
        with httpx.Client(base_url=base, timeout=10) as stranger:
            assert stranger.get("/api/v1/households", headers={"Authorization": "Bearer nope"}).status_code == 401
        erased = api.post(f"/households/{home.household_id}/erasure", json={"confirm_household_id": "hh-privacy"})
        assert erased.status_code == 200


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _declined(database_url: str, alert_id: int) -> bool:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT 1 FROM alert_declines WHERE alert_id = %s", (alert_id,)).fetchone() is not None
