"""An away trip announced through the API silences inactivity detection on the running pipeline.

Two households with a meter each get the same 13 quiet hours of readings over real MQTT. The family of
one of them announced a trip through ``POST /households/{id}/absences`` while the pipeline was running
(the detector runner reloads settings every ``detector_refresh_s``). The other household's inactivity
alert proves the detectors judged those readings; the announced one gets none.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

import httpx
import psycopg

from api.auth import create_token
from tests.support import payload, pipeline_settings, publish_raw, running_pipeline, wait_until

REFRESH_S = 0.2


def test_announced_absence_suppresses_inactivity(mqtt_url: str, database_url: str) -> None:
    topic_root = f"test/{secrets.token_hex(4)}/care/v1"
    settings = pipeline_settings(topic_root, detector_refresh_s=REFRESH_S)
    with psycopg.connect(database_url) as conn:
        admin = create_token(conn, "admin", "abs-admin")
        family = create_token(conn, "caregiver", "abs-fam")
    with (
        running_pipeline(settings, mqtt_url, database_url) as pipeline,
        httpx.Client(base_url=pipeline.api_url + "/api/v1", timeout=10) as api,
    ):
        as_admin = {"Authorization": f"Bearer {admin}"}
        wait_until(lambda: _up(pipeline.api_url), timeout=15)
        for household_id in ("hh-away", "hh-home"):
            household = {"household_id": household_id, "name": "x"}
            assert api.post("/households", json=household, headers=as_admin).is_success
            device = {"device_id": f"{household_id}-m", "device_type": "water_meter", "household_id": household_id}
            assert api.post("/devices", json=device, headers=as_admin).status_code == 201
        assert api.post("/caregivers", json={"caregiver_id": "abs-fam", "name": "x"}, headers=as_admin).is_success
        contact = {"caregiver_id": "abs-fam", "role": "family"}
        assert api.put("/households/hh-away/care-plan/abs-fam", json=contact, headers=as_admin).is_success

        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = now - timedelta(hours=13)
        trip = {"start": (start - timedelta(hours=1)).isoformat(), "end": (now + timedelta(days=3)).isoformat()}
        announced = api.post("/households/hh-away/absences", json=trip, headers={"Authorization": f"Bearer {family}"})
        assert announced.status_code == 201, announced.text
        time.sleep(REFRESH_S * 5)  # the runner's next registry refresh reads it

        messages = [
            (
                f"{topic_root}/dev/{household_id}-m/telemetry",
                payload(ts=(start + timedelta(minutes=15 * step)).isoformat(), seq=step + 1, register_l=500.0),
            )
            for household_id in ("hh-away", "hh-home")  # the announced household's readings go first
            for step in range(13 * 4 + 1)
        ]
        publish_raw(mqtt_url, messages)

        def inactivity(household_id: str) -> list[dict[str, object]]:
            params = {"household_id": household_id, "kind": "inactivity"}
            items: list[dict[str, object]] = api.get("/alerts", params=params, headers=as_admin).json()["items"]
            return items

        assert wait_until(lambda: inactivity("hh-home"), timeout=30)
        time.sleep(1.0)  # a few more detector rounds and ticks
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM readings WHERE device_id = 'hh-away-m'").fetchone()
        assert row == (53,)  # the readings arrived and were judged ...
        assert inactivity("hh-away") == []  # ... and the announced trip kept them from raising an alert


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
