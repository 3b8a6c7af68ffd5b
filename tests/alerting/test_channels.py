"""Real channels: e-mail to an aiosmtpd server, SMS to a local HTTP gateway, the caregiver app over the
real MQTT broker (push, and claim/decline replies applied to the database)."""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion

from alerting.app import AppChannel, AppReplyListener
from alerting.channels import Delivery
from alerting.dispatcher import Dispatcher
from alerting.email import EmailChannel
from alerting.service import AlertingConfig
from alerting.sms import SmsChannel
from carewatch.embedded import free_port
from ingest.mqtt_source import BrokerAddress
from tests.alerting.helpers import Clock, Member, finding, open_alert, provision, timeline_actions

BODY = {
    "idempotency_key": "alert-9-new-0-critical-cg-1",
    "reason": "new",
    "alert_id": 9,
    "household_id": "hh-9",
    "kind": "sos",
    "severity": "critical",
    "evidence": "emergency button pressed 10:02",
    "caregiver_id": "cg-1",
    "claimed_by": None,
}


def delivery(**extra: Any) -> Delivery:
    return Delivery(
        notification_id=1, idempotency_key=str(BODY["idempotency_key"]), caregiver_id="cg-1", body=BODY, **extra
    )


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[_Mailbox, int]]:
    box = _Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def test_email_reaches_a_real_smtp_server(smtp: tuple[_Mailbox, int]) -> None:
    box, port = smtp
    channel = EmailChannel(host="127.0.0.1", port=port, sender="alerts@carewatch.example")
    result = channel.send(delivery(email="li@example.org"))
    assert result.ok, result.detail
    ((sender, rcpts, raw),) = box.messages
    assert (sender, rcpts) == ("alerts@carewatch.example", ["li@example.org"])
    mail = message_from_bytes(raw)
    assert mail["Subject"] == "[carewatch CRITICAL] emergency call - household hh-9"
    assert mail["Message-ID"] == f"<{BODY['idempotency_key']}@carewatch.example>"
    assert "emergency button pressed 10:02" in mail.get_payload()
    assert not channel.send(delivery()).ok  # no address: permanent
    assert channel.send(delivery()).permanent


def test_email_to_a_closed_port_is_retryable() -> None:
    result = EmailChannel(host="127.0.0.1", port=free_port(), timeout_s=2).send(delivery(email="li@example.org"))
    assert not result.ok
    assert not result.permanent


class _Gateway:
    """A local SMS gateway: answers with ``statuses`` in turn (then 200) and keeps what it got."""

    def __init__(self, *statuses: int) -> None:
        self.received: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.statuses = list(statuses)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.received.append((body, dict(self.headers.items())))
                self.send_response(gateway.statuses.pop(0) if gateway.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_sms_gateway_gets_the_templated_text_and_the_key() -> None:
    gateway = _Gateway(503, 400)
    channel = SmsChannel(
        gateway_url=gateway.url, template="[$SEVERITY] $household_id: $evidence #$alert_id", token="t0k"
    )
    try:
        first = channel.send(delivery(phone="+8613800000000"))
        second = channel.send(delivery(phone="+8613800000000"))
        third = channel.send(delivery(phone="+8613800000000"))
    finally:
        channel.close()
        gateway.stop()
    assert (first.ok, first.permanent) == (False, False)  # 503: retry
    assert (second.ok, second.permanent) == (False, True)  # 400: the request is wrong
    assert third.ok
    body, headers = gateway.received[-1]
    assert body == {
        "to": "+8613800000000",
        "text": "[CRITICAL] hh-9: emergency button pressed 10:02 #9",
        "idempotency_key": BODY["idempotency_key"],
    }
    assert headers["Idempotency-Key"] == BODY["idempotency_key"]
    assert headers["Authorization"] == "Bearer t0k"


class _App:
    """A caregiver app: subscribed to its alerts and acks, able to publish replies."""

    def __init__(self, mqtt_url: str, root: str, caregiver_id: str) -> None:
        self.inbox: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.root, self.caregiver_id = root, caregiver_id
        address = BrokerAddress.parse(mqtt_url)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"app-{uuid.uuid4().hex[:8]}")
        ready = threading.Event()
        self.client.on_subscribe = lambda *args: ready.set()
        self.client.on_message = lambda c, u, m: self.inbox.put((m.topic.rsplit("/", 1)[1], json.loads(m.payload)))
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        self.client.subscribe([(f"{root}/app/{caregiver_id}/alerts", 1), (f"{root}/app/{caregiver_id}/acks", 1)])
        assert ready.wait(10)

    def reply(self, **body: Any) -> None:
        self.client.publish(f"{self.root}/app/{self.caregiver_id}/replies", json.dumps(body), qos=1).wait_for_publish(
            10
        )

    def next(self, kind: str) -> dict[str, Any]:
        while True:
            topic, body = self.inbox.get(timeout=10)
            if topic == kind:
                return body

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_app_push_and_claim_decline_replies_over_mqtt(mqtt_url: str, topic_root: str, database_url: str) -> None:
    config = AlertingConfig(delivery_deadline=timedelta(seconds=30))
    clock = Clock()
    push = AppChannel(mqtt_url=mqtt_url, topic_root=topic_root)
    listener = AppReplyListener(
        mqtt_url=mqtt_url, topic_root=topic_root, conninfo=database_url, config=config, clock=clock
    )
    apps = {cg: _App(mqtt_url, topic_root, cg) for cg in ("app-fam", "app-vol", "app-stranger")}
    worker = Dispatcher(
        conninfo=database_url, channels={"app": push}, config=config, clock=clock, visit_check_every_s=None
    )
    try:
        listener.start()
        assert listener.subscribed.wait(10)
        with psycopg.connect(database_url, autocommit=True) as conn:
            provision(
                conn,
                "hh-app",
                [
                    Member("app-fam", "family", 1, channels=["app"]),
                    Member("app-vol", "volunteer", 1, channels=["app"]),
                ],
            )
            alert_id = open_alert(conn, finding("hh-app"), clock(), config)
            worker.run_once()
            pushed = apps["app-fam"].next("alerts")
            assert (pushed["alert_id"], pushed["reason"], pushed["severity"]) == (alert_id, "new", "critical")
            assert apps["app-vol"].next("alerts")["alert_id"] == alert_id

            apps["app-stranger"].reply(alert_id=alert_id, action="claim")
            assert apps["app-stranger"].next("acks") == {
                "alert_id": alert_id,
                "action": "claim",
                "ok": False,
                "detail": "not on this alert's care plan",
            }
            apps["app-vol"].reply(alert_id=alert_id, action="decline", note="at the hospital myself")
            assert apps["app-vol"].next("acks")["detail"] == "declined"
            apps["app-fam"].reply(alert_id=alert_id, action="claim")
            assert apps["app-fam"].next("acks") == {
                "alert_id": alert_id,
                "action": "claim",
                "ok": True,
                "detail": "claimed",
            }
            apps["app-fam"].client.publish(f"{topic_root}/app/app-fam/replies", b"{not json", qos=1)
            assert apps["app-fam"].next("acks")["ok"] is False

            row = conn.execute("SELECT status, claimed_by FROM alerts WHERE alert_id = %s", (alert_id,)).fetchone()
            assert row == ("claimed", "app-fam")
            worker.run_once()
            notice = apps["app-vol"].next("alerts")
            assert (notice["reason"], notice["claimed_by"]) == ("claimed_by_other", "app-fam")
            assert {"declined", "claimed"} <= set(timeline_actions(conn, alert_id))
    finally:
        worker.close()
        for app in apps.values():
            app.close()
        listener.stop()
        push.close()


def test_app_push_fails_cleanly_without_a_broker(topic_root: str) -> None:
    channel = AppChannel(mqtt_url=f"mqtt://127.0.0.1:{free_port()}", topic_root=topic_root, timeout_s=0.5)
    try:
        result = channel.send(delivery())
    finally:
        channel.close()
    assert not result.ok
    assert not result.permanent
