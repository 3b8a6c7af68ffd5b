"""Check on the resident before paging a volunteer: end to end on the real broker and database.

A household with a water meter and a call button, a resident with a phone, a volunteer with a real
webhook. Thirteen quiet hours of meter readings raise an inactivity alert; carewatch then asks the
resident (a QoS 1 command to the button, a call through the fake phone gateway) and pages the volunteer
only if nobody answers. Check-in waits are seconds here (minutes in production).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from alerting.signing import sign
from api.auth import create_token
from carewatch.runtime import Pipeline
from carewatch.settings import Settings
from carewatch.webhook_receiver import WebhookReceiver
from detectors import DetectorSuiteConfig
from detectors.config import SilenceConfig
from ingest.mqtt_source import BrokerAddress
from simulator.answers import ResidentAnswers
from simulator.phone_gateway import FakePhoneGateway
from simulator.publisher import MqttTarget
from simulator.responder import CheckinResponder
from tests.support import payload, pipeline_settings, publish_raw, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]

PHONE = "13912345678"
WAIT_S = 3
# A meter is silent after its interval (60 s here) plus this slack (minutes in production).
DETECTORS = replace(DetectorSuiteConfig(), silence=SilenceConfig(slack_factor=0.0, slack_min_s=2.0))


class World:
    def __init__(self, *, mqtt_url: str, database_url: str, root: str, settings: Settings) -> None:
        self.mqtt_url, self.database_url, self.root, self.settings = mqtt_url, database_url, root, settings
        self.household = f"hh-{secrets.token_hex(3)}"
        self.volunteer = f"cg-{secrets.token_hex(3)}"
        self.meter = f"{self.household}-meter"
        self.button = f"{self.household}-button"
        self.pipeline: Pipeline | None = None
        self.api: httpx.Client | None = None
        self.seq = 0

    def start(self) -> None:
        self.pipeline = Pipeline(
            settings=self.settings,
            mqtt_url=self.mqtt_url,
            database_url=self.database_url,
            detector_config=DETECTORS,
        )
        self.pipeline.start()

    def stop(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None

    def quiet_hours(self, hours: float, *, ago: float = 0.0, register: float = 50.0) -> None:
        """Meter readings every 15 minutes with no water used, ending ``ago`` hours before now."""
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=ago)
        first = end - timedelta(hours=hours)
        steps = int((end - first).total_seconds() // 900)
        messages = []
        for step in range(steps + 1):
            self.seq += 1
            moment = first + timedelta(minutes=15 * step)
            messages.append(
                (
                    f"{self.root}/dev/{self.meter}/telemetry",
                    payload(ts=moment.isoformat(), seq=self.seq, register_l=register),
                )
            )
        publish_raw(self.mqtt_url, messages)

    def alerts(self) -> list[dict[str, Any]]:
        assert self.api is not None
        try:
            response = self.api.get("/alerts", params={"household_id": self.household, "kind": "inactivity"})
        except httpx.HTTPError:
            return []
        return sorted(response.json()["items"], key=lambda a: a["alert_id"]) if response.status_code == 200 else []


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(secret=secrets.token_hex(16)).start()
    yield hook
    hook.stop()


def _world(
    stack: ExitStack, mqtt_url: str, database_url: str, receiver: WebhookReceiver, gateway: FakePhoneGateway | None
) -> World:
    root = f"test/{secrets.token_hex(4)}/care/v1"
    port_settings = pipeline_settings(root)
    settings = pipeline_settings(
        root,
        checkins={"inactivity": {"wait_s": WAIT_S, "attempts": 2, "channels": ["button", "voice"]}},
        checkin_gateway_url=gateway.url if gateway else None,
        checkin_secret=gateway.secret if gateway else None,
        api_port=port_settings.api_port,
    )
    world = World(mqtt_url=mqtt_url, database_url=database_url, root=root, settings=settings)
    with psycopg.connect(database_url) as conn:
        token = create_token(conn, "admin", "checkin-admin")
    stack.callback(world.stop)
    world.start()
    world.api = stack.enter_context(
        httpx.Client(
            base_url=f"http://127.0.0.1:{settings.api_port}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    )
    wait_until(lambda: _up(world.api), timeout=20)
    api = world.api
    responses = [
        api.post(
            "/households",
            json={
                "household_id": world.household,
                "name": "home",
                "district": "Changning",
                "residents": [{"name": "resident", "phone": PHONE}],
            },
        ),
        api.post(
            "/caregivers",
            json={
                "caregiver_id": world.volunteer,
                "name": "volunteer",
                "webhook_url": receiver.url,
                "webhook_secret": receiver.secret,
            },
        ),
        api.put(
            f"/households/{world.household}/care-plan/{world.volunteer}",
            json={"caregiver_id": world.volunteer, "role": "volunteer"},
        ),
        api.post(
            "/devices",
            json={
                "device_id": world.meter,
                "device_type": "water_meter",
                "household_id": world.household,
                "expected_interval_s": 60,
            },
        ),
        api.post(
            "/devices", json={"device_id": world.button, "device_type": "call_button", "household_id": world.household}
        ),
    ]
    assert all(r.status_code in {200, 201} for r in responses), [r.text for r in responses]
    return world


def _up(api: httpx.Client | None) -> bool:
    try:
        return api is not None and api.get("/alerts", params={"limit": 1}).status_code == 200
    except httpx.HTTPError:
        return False


def _responder(stack: ExitStack, world: World, answers: ResidentAnswers) -> CheckinResponder:
    address = BrokerAddress.parse(world.mqtt_url)
    responder = CheckinResponder(
        target=MqttTarget(host=address.host, port=address.port),
        topic_root=world.root,
        households={world.button: world.household},
        answers=answers,
    ).start()
    stack.callback(responder.stop)
    return responder


def _paged(receiver: WebhookReceiver, world: World) -> list[dict[str, Any]]:
    return [d.body for d in receiver.deliveries if d.body["household_id"] == world.household]


def test_an_ok_press_on_the_call_button_resolves_it_with_nobody_paged(
    mqtt_url: str, database_url: str, receiver: WebhookReceiver
) -> None:
    with ExitStack() as stack:
        world = _world(stack, mqtt_url, database_url, receiver, None)
        # Always answers, a second into the attempt: the press comes back as a checkin_ok event.
        responder = _responder(stack, world, ResidentAnswers(p_first=1.0, delay_s=(0.5, 1.0)))
        world.quiet_hours(13)
        [alert] = wait_until(lambda: [a for a in world.alerts() if a["status"] == "resolved"], timeout=30)
        assert (alert["outcome"], alert["resolved_by"], alert["paged_at"]) == ("resident_ok", "resident", None)
        assert alert["checkin"]["answer"] == "ok"
        assert alert["checkin"]["answered_via"] == "button"
        [command] = responder.commands
        assert command.checkin_id == alert["checkin"]["checkin_id"]
        assert responder.pressed == [(world.button, command.checkin_id)]
        assert _paged(receiver, world) == []


def test_the_phone_gateway_asks_and_no_answer_pages_the_volunteer_after_the_attempts(
    mqtt_url: str, database_url: str, receiver: WebhookReceiver
) -> None:
    gateway = FakePhoneGateway(secret=secrets.token_hex(16), scripts={PHONE: [None, None]}).start()
    with ExitStack() as stack:
        stack.callback(gateway.stop)
        world = _world(stack, mqtt_url, database_url, receiver, gateway)
        responder = _responder(stack, world, ResidentAnswers(p_first=0.0, p_retry=0.0))
        world.quiet_hours(13)
        [page] = wait_until(lambda: _paged(receiver, world), timeout=60)
        assert (page["kind"], page["reason"], page["caregiver_id"]) == ("inactivity", "new", world.volunteer)
        # The volunteer reads Chinese (Asia/Shanghai): both attempts, each by button and phone, no answer.
        assert "无人应答" in page["evidence"]
        assert page["evidence"].count("通过一键通呼叫器和电话") == 2
        assert [(call.channel, call.to, call.locale) for call in gateway.calls] == [("voice", PHONE, "zh-CN")] * 2
        assert gateway.calls[0].text.startswith("您好，这里是社区平安守护")
        assert gateway.refused == []
        assert len(responder.commands) == 2  # the button beeped at both attempts
        [alert] = world.alerts()
        assert alert["checkin"]["status"] == "unanswered"
        assert len(_paged(receiver, world)) == 1


def test_the_phone_gateway_answer_ok_resolves_it(mqtt_url: str, database_url: str, receiver: WebhookReceiver) -> None:
    gateway = FakePhoneGateway(secret=secrets.token_hex(16), scripts={PHONE: ["ok"]}).start()
    with ExitStack() as stack:
        stack.callback(gateway.stop)
        world = _world(stack, mqtt_url, database_url, receiver, gateway)
        world.quiet_hours(13)
        [alert] = wait_until(lambda: [a for a in world.alerts() if a["status"] == "resolved"], timeout=30)
        assert (alert["outcome"], alert["checkin"]["answered_via"]) == ("resident_ok", "voice")
        assert gateway.callbacks == [(alert["checkin"]["checkin_id"], 200)]
        assert _paged(receiver, world) == []
        checkin_id = alert["checkin"]["checkin_id"]
        assert world.api is not None
        checkin = world.api.get(f"/checkins/{checkin_id}").json()
        assert {k: checkin[k] for k in ("alert_id", "household_id", "kind", "status", "answer", "answered_via")} == {
            "alert_id": alert["alert_id"],
            "household_id": world.household,
            "kind": "inactivity",
            "status": "answered",
            "answer": "ok",
            "answered_via": "voice",
        }
        assert [(h["attempt"], h["channels"], h["result"]) for h in checkin["history"]] == [
            (1, ["button", "voice"], "answered ok by phone call")
        ]
        assert world.api.get(f"/households/{world.household}/checkins").json() == [checkin]
        url = f"http://127.0.0.1:{world.settings.api_port}/api/v1/checkins/{checkin_id}/answer"
        # The gateway repeating its callback changes nothing.
        raw = json.dumps({"answer": "ok", "via": "voice"}).encode()
        stamp = int(time.time())
        signed = {"X-Carewatch-Timestamp": str(stamp), "X-Carewatch-Signature": sign(gateway.secret, stamp, raw)}
        again = httpx.post(url, content=raw, headers={**signed, "Content-Type": "application/json"})
        assert again.status_code == 200
        assert (again.json()["result"], again.json()["checkin"]["answered_via"]) == ("late", "voice")
        # A forged answer (wrong secret) is refused.
        forged = httpx.post(
            url,
            json={"answer": "help"},
            headers={"X-Carewatch-Timestamp": str(stamp), "X-Carewatch-Signature": "v1=00"},
        )
        assert forged.status_code == 401


def test_the_check_in_survives_a_restart_mid_wait_without_a_lost_or_double_page(
    mqtt_url: str, database_url: str, receiver: WebhookReceiver
) -> None:
    with ExitStack() as stack:
        world = _world(stack, mqtt_url, database_url, receiver, None)
        world.quiet_hours(13)
        wait_until(lambda: [a for a in world.alerts() if a["status"] == "checking_in"], timeout=30)
        world.stop()  # carewatch down while the resident is being asked; nobody answers
        time.sleep(2 * WAIT_S + 1)
        world.start()
        [page] = wait_until(lambda: _paged(receiver, world), timeout=60)
        assert page["reason"] == "new"
        time.sleep(2 * WAIT_S)
        assert len(_paged(receiver, world)) == 1
        [alert] = world.alerts()
        assert alert["status"] in {"open", "notified"}
        assert alert["checkin"]["status"] == "unanswered"


def test_water_used_during_the_wait_answers_the_check_in(
    mqtt_url: str, database_url: str, receiver: WebhookReceiver
) -> None:
    with ExitStack() as stack:
        world = _world(stack, mqtt_url, database_url, receiver, None)
        world.quiet_hours(13)
        wait_until(lambda: [a for a in world.alerts() if a["status"] == "checking_in"], timeout=30)
        # She was in the garden: the next reading shows 6 litres used.
        world.seq += 1
        later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)  # after the last quiet reading
        reading = payload(ts=later.isoformat(), seq=world.seq, register_l=56.0)
        publish_raw(mqtt_url, [(f"{world.root}/dev/{world.meter}/telemetry", reading)])
        [alert] = wait_until(lambda: [a for a in world.alerts() if a["status"] == "resolved"], timeout=30)
        assert (alert["outcome"], alert["checkin"]["answered_via"], alert["paged_at"]) == ("resident_ok", "water", None)
        time.sleep(2 * WAIT_S)
        assert _paged(receiver, world) == []


def test_a_silent_meter_after_a_long_quiet_raises_the_urgent_alert_which_checks_in_then_pages(
    mqtt_url: str, database_url: str, receiver: WebhookReceiver
) -> None:
    with ExitStack() as stack:
        world = _world(stack, mqtt_url, database_url, receiver, None)
        # Readings from 12 h to 1 h ago without use, sent now (a backlog): the last shows 11 h of quiet
        # (no backstop yet). Then the meter is silent: a minute later nothing proves use for the whole
        # window, and the silence itself is the risk.
        world.quiet_hours(11, ago=1)
        [alert] = wait_until(world.alerts, timeout=120)
        assert alert["detector"] == "silence"
        assert alert["severity"] == "high"
        assert "cannot confirm" in alert["evidence"]
        [page] = wait_until(lambda: _paged(receiver, world), timeout=60)
        assert (page["kind"], page["reason"]) == ("inactivity", "new")
        assert "无法确认老人平安" in page["evidence"]
        assert "无人应答" in page["evidence"]
