"""Notifications in the recipient's language, end to end through the dispatcher: a Chinese-speaking
volunteer (the default for a Shanghai home) and an English-speaking relative (their ``locale``) get
the same alert by SMS (a local gateway) and e-mail (a real SMTP server), each in their own language,
rendered from the evidence the alert keeps as data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import psycopg
import pytest
from aiosmtpd.controller import Controller

from alerting.dispatcher import Dispatcher
from alerting.email import EmailChannel
from alerting.service import AlertingConfig
from alerting.sms import SmsChannel
from carewatch.embedded import free_port
from schemas.evidence import Evidence, Note, SosPressed
from tests.alerting.helpers import T0, Clock, Member, finding, open_alert, provision
from tests.alerting.test_channels import _Gateway, _Mailbox

CONFIG = AlertingConfig(delivery_deadline=timedelta(seconds=30))


@pytest.fixture
def smtp() -> Iterator[tuple[_Mailbox, int]]:
    box, port = _Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def _text(mail: EmailMessage) -> str:
    return str(mail.get_content())


def test_each_caregiver_reads_the_alert_in_their_language(smtp: tuple[_Mailbox, int], database_url: str) -> None:
    box, port = smtp
    gateway = _Gateway()
    sms = SmsChannel(gateway_url=gateway.url)
    mail = EmailChannel(host="127.0.0.1", port=port, sender="alerts@carewatch.example")
    clock = Clock()
    worker = Dispatcher(
        conninfo=database_url,
        channels={"sms": sms, "email": mail},
        config=CONFIG,
        clock=clock,
        visit_check_every_s=None,
    )
    channels = ["sms", "email"]
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            provision(
                conn,
                "hh-lang",
                [
                    Member(
                        "lang-vol", "volunteer", 1, email="vol@example.org", phone="+8613800000001", channels=channels
                    ),
                    Member("lang-son", "family", 1, email="son@example.org", phone="+447700900001", channels=channels),
                ],
            )
            conn.execute("UPDATE caregivers SET locale = 'en' WHERE caregiver_id = 'lang-son'")
            evidence = Evidence(
                message=SosPressed(at=T0 - timedelta(minutes=1), note=Note(text="头晕")), tz="Asia/Shanghai", as_of=T0
            )
            alert_id = open_alert(conn, replace(finding("hh-lang"), evidence=evidence), clock(), CONFIG)
            assert worker.run_once() == 4
            stored = conn.execute("SELECT evidence, evidence_data FROM alerts WHERE alert_id = %s", (alert_id,))
            text, data = stored.fetchone() or ("", None)
    finally:
        worker.close()
        sms.close()
        gateway.stop()

    # The alert keeps the English text (old readers, search) and the structure every language comes from.
    assert text == 'emergency button pressed at 09:59 (note: "头晕"): call the resident now'
    assert Evidence.model_validate(data) == evidence

    texts = {body["to"]: body["text"] for body, _ in gateway.received}
    assert texts["+8613800000001"] == (
        "【carewatch】紧急 一键呼叫，住户 hh-lang：09:59 一键呼叫按钮被按下（备注：“头晕”）："
        f"请立即给老人打电话（告警 {alert_id}）"
    )
    assert texts["+447700900001"] == (
        f'carewatch CRITICAL emergency call, household hh-lang: emergency button pressed at 09:59 (note: "头晕"): '
        f"call the resident now (alert {alert_id})"
    )
    mails = {
        rcpts[0]: message_from_bytes(raw, _class=EmailMessage, policy=policy.default) for _, rcpts, raw in box.messages
    }
    assert mails["vol@example.org"]["Subject"] == "【carewatch 紧急】一键呼叫：住户 hh-lang"
    assert "请立即给老人打电话" in _text(mails["vol@example.org"])
    assert "请在 carewatch 应用或接口中认领" in _text(mails["vol@example.org"])
    assert mails["son@example.org"]["Subject"] == "[carewatch CRITICAL] emergency call - household hh-lang"
    assert "call the resident now" in _text(mails["son@example.org"])
