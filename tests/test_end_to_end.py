"""Device → MQTT → ingest → storage → detectors → alerting → webhook, and the API, on real services.

A household with a water meter, a smoke alarm and a call button, and a caregiver whose webhook is a
real local HTTP server. Messages are published as raw MQTT (what ``mosquitto_pub`` sends).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from api.auth import create_token
from carewatch.runtime import Pipeline
from carewatch.webhook_receiver import WebhookReceiver
from tests.support import payload, pipeline_settings, publish_raw, running_pipeline, wait_until

pytestmark = pytest.mark.services

HOUSEHOLD = "hh-e2e"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(secret=secrets.token_hex(16)).start()
    yield hook
    hook.stop()


@pytest.fixture(scope="module")
def topic_root_module() -> str:
    return f"test/{secrets.token_hex(4)}/care/v1"


@pytest.fixture(scope="module")
def pipeline(mqtt_url: str, database_url: str, topic_root_module: str) -> Iterator[Pipeline]:
    # Inactivity checks in with the resident first (nobody presses here): one short attempt, then the page.
    settings = pipeline_settings(topic_root_module, checkins={"inactivity": {"wait_s": 1, "attempts": 1}})
    with running_pipeline(settings, mqtt_url, database_url) as running:
        yield running


@pytest.fixture(scope="module")
def api(pipeline: Pipeline, receiver: WebhookReceiver, database_url: str) -> Iterator[httpx.Client]:
    with psycopg.connect(database_url) as conn:  # the API needs a token (issue 7): an admin's, minted directly
        token = create_token(conn, "admin", "e2e-admin")
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=pipeline.api_url + "/api/v1", timeout=10, headers=headers) as client:
        wait_until(lambda: _healthy(pipeline.api_url), timeout=15)
        assert (
            client.post(
                "/households",
                json={
                    "household_id": HOUSEHOLD,
                    "name": "Wang Ayi",
                    "district": "Changning",
                    "residents": [{"name": "Wang Ayi", "birth_year": 1941}],
                },
            ).status_code
            == 201
        )
        assert (
            client.post(
                "/caregivers",
                json={
                    "caregiver_id": "cg-li",
                    "name": "Li (volunteer)",
                    "webhook_url": receiver.url,
                    "webhook_secret": receiver.secret,
                },
            ).status_code
            == 201
        )
        assert (
            client.put(
                f"/households/{HOUSEHOLD}/care-plan/cg-li", json={"caregiver_id": "cg-li", "role": "volunteer"}
            ).status_code
            == 200
        )
        for device_id, device_type in (
            ("e2e-meter", "water_meter"),
            ("e2e-smoke", "smoke_alarm"),
            ("e2e-button", "call_button"),
        ):
            response = client.post(
                "/devices", json={"device_id": device_id, "device_type": device_type, "household_id": HOUSEHOLD}
            )
            assert response.status_code == 201, response.text
        yield client


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _deliveries_of(receiver: WebhookReceiver, kind: str) -> list[dict[str, object]]:
    return [d.body for d in receiver.deliveries if d.body["kind"] == kind]


def test_sos_press_reaches_the_caregiver_webhook(
    api: httpx.Client, receiver: WebhookReceiver, mqtt_url: str, topic_root_module: str
) -> None:
    now = datetime.now(UTC)
    publish_raw(mqtt_url, [(f"{topic_root_module}/dev/e2e-button/event", payload(ts=_ms(now), seq=1, event="sos"))])

    delivered = wait_until(lambda: _deliveries_of(receiver, "sos"), timeout=30)
    body = delivered[0]
    assert body["severity"] == "critical"
    assert body["household_id"] == HOUSEHOLD
    assert body["caregiver_id"] == "cg-li"
    assert body["reason"] == "new"

    # The receiver can answer before the dispatcher commits the delivery: wait for "notified".
    def notified_sos() -> list[dict[str, object]]:
        alerts = api.get("/alerts", params={"household_id": HOUSEHOLD, "status": ["notified"]}).json()["items"]
        return [a for a in alerts if a["kind"] == "sos"]

    sos = wait_until(notified_sos, timeout=10)[0]
    claimed = api.post(f"/alerts/{sos['alert_id']}/claim", json={"caregiver_id": "cg-li"})
    assert claimed.status_code == 200
    assert claimed.json()["status"] == "claimed"
    resolved = api.post(
        f"/alerts/{sos['alert_id']}/resolve",
        json={"actor": "cg-li", "outcome": "needed_help", "note": "helped up, no injury"},
    )
    assert resolved.json()["status"] == "resolved"
    assert resolved.json()["outcome"] == "needed_help"
    actions = [event["action"] for event in api.get(f"/alerts/{sos['alert_id']}/timeline").json()]
    assert actions[0] == "opened"
    assert "claimed" in actions
    assert actions[-1] == "resolved"


def test_thirteen_quiet_hours_of_meter_readings_raise_inactivity(
    api: httpx.Client, receiver: WebhookReceiver, mqtt_url: str, topic_root_module: str
) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=13)
    readings = []
    for step in range(13 * 4 + 1):  # every 15 minutes for 13 hours, register unchanged: no water
        moment = start + timedelta(minutes=15 * step)
        readings.append(
            (
                f"{topic_root_module}/dev/e2e-meter/telemetry",
                payload(ts=moment.isoformat(), seq=100 + step, register_l=1234.5),
            )
        )
    publish_raw(mqtt_url, readings)

    delivered = wait_until(lambda: _deliveries_of(receiver, "inactivity"), timeout=30)
    assert delivered[0]["severity"] == "high"
    # Asked the resident first (the volunteer reads Chinese: the household is in Asia/Shanghai).
    assert "通过一键通呼叫器）：无人应答" in str(delivered[0]["evidence"])
    alerts = api.get("/alerts", params={"household_id": HOUSEHOLD, "kind": "inactivity"}).json()["items"]
    assert len(alerts) == 1
    # The alert is dated from the device's time, not from when the readings arrived.
    started = datetime.fromisoformat(alerts[0]["started_at"])
    assert started <= start + timedelta(minutes=30)


def test_malformed_payload_is_kept_as_reject_and_next_message_still_processed(
    api: httpx.Client, receiver: WebhookReceiver, mqtt_url: str, database_url: str, topic_root_module: str
) -> None:
    now = datetime.now(UTC)
    topic = f"{topic_root_module}/dev/e2e-smoke/event"
    publish_raw(
        mqtt_url,
        [(topic, b'{"ts": 1, "seq": 5, "event": "alarm"'), (topic, payload(ts=_ms(now), seq=6, event="alarm"))],
    )

    wait_until(lambda: _deliveries_of(receiver, "smoke"), timeout=30)
    with psycopg.connect(database_url) as conn:
        rejects = conn.execute("SELECT reason, device_id, payload FROM rejects WHERE topic = %s", (topic,)).fetchall()
        stored = conn.execute("SELECT kind FROM events WHERE device_id = 'e2e-smoke' AND seq = 6").fetchall()
    assert rejects == [("invalid_json", "e2e-smoke", b'{"ts": 1, "seq": 5, "event": "alarm"')]
    assert stored == [("alarm",)]
