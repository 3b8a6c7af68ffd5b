"""No alarm is ever silenced by an old one (end to end, real broker and database).

A smoke alarm or an sos after its earlier alert was resolved always raises a new alert and reaches the
caregiver, also when ``alarm_cleared`` never came and when carewatch restarted in between; repeats
while the alert is open attach to it as occurrences (shown on the timeline), and a press that is news
(outside the debounce) notifies again. Devices are driven with raw MQTT, as ``mosquitto_pub`` would.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from api.auth import create_token
from carewatch.runtime import Pipeline
from carewatch.settings import Settings
from carewatch.webhook_receiver import WebhookReceiver
from tests.support import payload, pipeline_settings, publish_raw, wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]


class Carewatch:
    """``carewatch run`` under test: started, stopped and started again on the same settings."""

    def __init__(self, settings: Settings, mqtt_url: str, database_url: str) -> None:
        self.settings, self.mqtt_url, self.database_url = settings, mqtt_url, database_url
        self.pipeline: Pipeline | None = None

    def start(self) -> None:
        self.pipeline = Pipeline(settings=self.settings, mqtt_url=self.mqtt_url, database_url=self.database_url)
        self.pipeline.start()

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop()
            self.pipeline = None


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(secret=secrets.token_hex(16)).start()
    yield hook
    hook.stop()


@pytest.fixture
def world(mqtt_url: str, database_url: str, receiver: WebhookReceiver) -> Iterator[dict[str, Any]]:
    """A household with a smoke alarm and a call button, one caregiver with a real webhook, and carewatch."""
    root = f"test/{secrets.token_hex(4)}/care/v1"
    household = f"hh-{secrets.token_hex(3)}"
    caregiver = f"cg-{secrets.token_hex(3)}"
    with psycopg.connect(database_url) as conn:
        token = create_token(conn, "admin", "latch-admin")
    with ExitStack() as stack:
        running = Carewatch(pipeline_settings(root), mqtt_url, database_url)
        stack.callback(running.stop)
        running.start()
        api = stack.enter_context(
            httpx.Client(
                base_url=f"http://127.0.0.1:{running.settings.api_port}/api/v1",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
        )
        wait_until(lambda: _api_up(api), timeout=20)
        created = [
            api.post("/households", json={"household_id": household, "name": "home", "district": "Changning"}),
            api.post(
                "/caregivers",
                json={
                    "caregiver_id": caregiver,
                    "name": "volunteer",
                    "webhook_url": receiver.url,
                    "webhook_secret": receiver.secret,
                },
            ),
            api.put(
                f"/households/{household}/care-plan/{caregiver}", json={"caregiver_id": caregiver, "role": "volunteer"}
            ),
            *(
                api.post(
                    "/devices",
                    json={"device_id": f"{household}-{kind}", "device_type": device_type, "household_id": household},
                )
                for kind, device_type in (("smoke", "smoke_alarm"), ("button", "call_button"))
            ),
        ]
        assert all(response.status_code in {200, 201} for response in created), [r.text for r in created]
        yield {"root": root, "household": household, "caregiver": caregiver, "carewatch": running, "api": api}


def _press(mqtt_url: str, world: dict[str, Any], device: str, event: str, at: datetime, seq: int) -> None:
    topic = f"{world['root']}/dev/{world['household']}-{device}/event"
    publish_raw(mqtt_url, [(topic, payload(ts=int(at.timestamp() * 1000), seq=seq, event=event))])


def _delivered(receiver: WebhookReceiver, kind: str, reason: str = "new") -> list[dict[str, Any]]:
    return [d.body for d in receiver.deliveries if d.body["kind"] == kind and d.body["reason"] == reason]


def _alerts(world: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    api: httpx.Client = world["api"]
    wait_until(lambda: _api_up(api), timeout=20)
    items: list[dict[str, Any]] = api.get("/alerts", params={"household_id": world["household"], "kind": kind}).json()[
        "items"
    ]
    return sorted(items, key=lambda alert: alert["alert_id"])


def _api_up(api: httpx.Client) -> bool:
    try:
        return api.get("/alerts", params={"limit": 1}).status_code == 200
    except httpx.HTTPError:
        return False


def _resolve(world: dict[str, Any], alert_id: int, outcome: str) -> None:
    response = world["api"].post(
        f"/alerts/{alert_id}/resolve", json={"actor": world["caregiver"], "outcome": outcome, "note": "checked"}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
def test_a_second_fire_after_a_resolved_alarm_pages_without_alarm_cleared(
    world: dict[str, Any], receiver: WebhookReceiver, mqtt_url: str, restart: bool
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    _press(mqtt_url, world, "smoke", "alarm", start, 1)
    wait_until(lambda: _delivered(receiver, "smoke"), timeout=30)
    # The same fire sounding on: an occurrence on the open alert, on its timeline, nobody paged twice.
    _press(mqtt_url, world, "smoke", "alarm", start + timedelta(seconds=20), 2)
    [first] = wait_until(lambda: [a for a in _alerts(world, "smoke") if a["occurrences"] == 2], timeout=30)
    timeline = world["api"].get(f"/alerts/{first['alert_id']}/timeline").json()
    assert [event["action"] for event in timeline].count("occurrence") == 1
    _resolve(world, first["alert_id"], "false_alarm_device")
    if restart:
        world["carewatch"].restart()
    # No alarm_cleared ever came (the battery was pulled): a second alarm is a second fire.
    _press(mqtt_url, world, "smoke", "alarm", start + timedelta(minutes=2), 3)
    second = wait_until(lambda: [a for a in _alerts(world, "smoke") if a["alert_id"] != first["alert_id"]], timeout=30)
    assert second[0]["status"] in {"open", "notified"}
    delivered = wait_until(lambda: _delivered(receiver, "smoke")[1:], timeout=30)
    assert [d["alert_id"] for d in delivered] == [second[0]["alert_id"]]
    assert len(_delivered(receiver, "smoke")) == 2


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
def test_an_sos_ten_seconds_after_a_resolved_one_pages_again(
    world: dict[str, Any], receiver: WebhookReceiver, mqtt_url: str, restart: bool
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    _press(mqtt_url, world, "button", "sos", start, 1)
    wait_until(lambda: _delivered(receiver, "sos"), timeout=30)
    # Held down or bounced: the same press, an occurrence on the timeline, not a second page.
    _press(mqtt_url, world, "button", "sos", start + timedelta(seconds=3), 2)
    [first] = wait_until(lambda: [a for a in _alerts(world, "sos") if a["occurrences"] == 2], timeout=30)
    _resolve(world, first["alert_id"], "resident_ok")
    if restart:
        world["carewatch"].restart()
    # Inside the old 60 s debounce, but that alert is resolved: a new emergency, heard.
    _press(mqtt_url, world, "button", "sos", start + timedelta(seconds=10), 3)
    delivered = wait_until(lambda: _delivered(receiver, "sos")[1:], timeout=30)
    [second] = [a for a in _alerts(world, "sos") if a["alert_id"] != first["alert_id"]]
    assert [d["alert_id"] for d in delivered] == [second["alert_id"]]
    assert not _delivered(receiver, "sos", "repeated")


def test_a_new_press_on_an_unclaimed_sos_notifies_again(
    world: dict[str, Any], receiver: WebhookReceiver, mqtt_url: str
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    _press(mqtt_url, world, "button", "sos", start, 1)
    wait_until(lambda: _delivered(receiver, "sos"), timeout=30)
    _press(mqtt_url, world, "button", "sos", start + timedelta(seconds=90), 2)
    [repeated] = wait_until(lambda: _delivered(receiver, "sos", "repeated"), timeout=30)
    [alert] = _alerts(world, "sos")
    assert repeated["alert_id"] == alert["alert_id"]
    assert alert["occurrences"] == 2
    assert len(_delivered(receiver, "sos")) == 1  # one alert, told twice: not two alerts


def test_an_inactivity_alert_resolved_while_still_no_water_raises_again_twelve_hours_later(
    world: dict[str, Any], receiver: WebhookReceiver, mqtt_url: str
) -> None:
    """The backstop's latch waits for water; resolving its alert ends it (the runner reads resolutions
    back), so twelve more quiet hours after the resolution page again instead of never."""
    meter = f"{world['household']}-meter"
    api: httpx.Client = world["api"]
    response = api.post(
        "/devices", json={"device_id": meter, "device_type": "water_meter", "household_id": world["household"]}
    )
    assert response.status_code == 201, response.text
    topic = f"{world['root']}/dev/{meter}/telemetry"
    now = datetime.now(UTC).replace(second=0, microsecond=0)

    def quiet(start: datetime, hours: float, seq: int) -> list[tuple[str, bytes]]:
        steps = int(hours * 4) + 1
        return [
            (topic, payload(ts=(start + timedelta(minutes=15 * i)).isoformat(), seq=seq + i, register_l=88.0))
            for i in range(steps)
        ]

    publish_raw(mqtt_url, quiet(now - timedelta(hours=13), 13, 1))
    [first] = wait_until(lambda: _alerts(world, "inactivity"), timeout=30)
    _resolve(world, first["alert_id"], "resident_ok")
    resolved_at = datetime.fromisoformat(api.get(f"/alerts/{first['alert_id']}").json()["resolved_at"])
    time.sleep(2)  # a few detector ticks: the runner reads the resolution back
    # Still no water (device times ahead of the clock: the meter's next 13 hours, sent at once).
    publish_raw(mqtt_url, quiet(now + timedelta(minutes=15), 13, 1000))
    second = wait_until(
        lambda: [a for a in _alerts(world, "inactivity") if a["alert_id"] != first["alert_id"]], timeout=30
    )
    started = datetime.fromisoformat(second[0]["started_at"])
    assert resolved_at - timedelta(seconds=1) <= started <= resolved_at + timedelta(seconds=1)
