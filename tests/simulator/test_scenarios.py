"""Scenarios: parsing, placement, their effect on the messages, and the ground truth they leave."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from schemas.kinds import AlertKind
from simulator import ScenarioKind, ScenarioRequest, demo_scenarios, parse_scenarios
from simulator.demo import DEMO_BACKFILL, demo_fleet
from simulator.scenarios import ScenarioError, expected_alert
from tests.simulator.helpers import START, small_fleet


def test_parse_specs() -> None:
    [req] = parse_scenarios("fall:home=3,at=6h,for=14h")
    assert req == ScenarioRequest(ScenarioKind.FALL, home=3, at="6h", duration_ms=14 * 3_600_000)
    [req] = parse_scenarios("away_trip:home=t-000002,announced=yes")
    assert req.home == "t-000002"
    assert req.announced is True
    assert len(parse_scenarios("all")) == len(ScenarioKind)
    with pytest.raises(ScenarioError):
        parse_scenarios("earthquake")
    with pytest.raises(ScenarioError):
        parse_scenarios("fall:colour=red")


def test_every_kind_in_ground_truth_with_its_expected_alert() -> None:
    fleet = small_fleet(homes=12)
    sim = fleet.simulate(timedelta(days=1), scenarios=parse_scenarios("all"))
    messages = list(sim)
    truth = [r for r in sim.ground_truth() if r.category == "incident"]
    assert {r.kind for r in truth} == {k.value for k in ScenarioKind}
    for record in truth:
        assert record.expected_alert == expected_alert(ScenarioKind(record.kind))
        assert record.household_id.startswith("t-")
        line = json.loads(record.to_json())
        assert set(line) >= {"home", "kind", "start", "end", "expected_alert"}
    assert expected_alert(ScenarioKind.AWAY_TRIP, announced=True) is None
    assert expected_alert(ScenarioKind.AWAY_TRIP) is AlertKind.INACTIVITY
    assert any(m.kind == "call_sos" for m in messages)
    assert any(m.kind == "smoke_alarm" for m in messages)


def test_device_offline_goes_silent_then_uploads_its_backlog() -> None:
    fleet = small_fleet(homes=3)
    meter = fleet.homes[0].meter
    request = ScenarioRequest(ScenarioKind.DEVICE_OFFLINE, home=0, at="2h", duration_ms=4 * 3_600_000, device="wm")
    sim = fleet.simulate(timedelta(hours=10), scenarios=[request])
    mine = [m for m in sim if m.device_id == meter.device_id]
    start = START.timestamp() * 1000
    silent = [m for m in mine if start + 2 * 3_600_000 + 91_000 < m.at_ms < start + 6 * 3_600_000]
    assert silent == []
    wills = [m for m in mine if m.kind == "will"]
    assert len(wills) == 1
    assert json.loads(wills[0].payload)["online"] is False
    assert wills[0].retain
    back = [m for m in mine if m.at_ms >= start + 6 * 3_600_000]
    assert back[0].kind == "status"
    batches = [json.loads(m.payload) for m in back if m.kind == "meter_batch"]
    # The readings taken while offline arrive late, with their own (older) timestamps.
    assert batches
    assert min(r["ts"] for r in batches[0]["readings"]) < start + 6 * 3_600_000


def test_emergency_and_fire_events() -> None:
    fleet = small_fleet(homes=3)
    sim = fleet.simulate(
        timedelta(hours=3),
        scenarios=[
            ScenarioRequest(ScenarioKind.EMERGENCY_PRESS, home=1, at="30m"),
            ScenarioRequest(ScenarioKind.FIRE, home=2, at="1h", duration_ms=600_000),
        ],
    )
    events = [(m.device_id, json.loads(m.payload)["event"]) for m in sim if m.topic.endswith("/event")]
    assert ("t-000001-cb", "sos") in events
    assert ("t-000002-sa1", "alarm") in events
    assert ("t-000002-sa1", "alarm_cleared") in events


def test_demo_scenarios_happen_within_a_minute() -> None:
    live = START + timedelta(days=1)
    fleet = demo_fleet(30, 7, live)
    assert fleet.start == live - DEMO_BACKFILL
    incidents = demo_scenarios(fleet, live, speed=10.0)
    kinds = {i.kind for i in incidents}
    assert kinds == {ScenarioKind.FALL, ScenarioKind.EMERGENCY_PRESS, ScenarioKind.FIRE}
    live_ms = int(live.timestamp() * 1000)
    for incident in incidents:
        if incident.kind is ScenarioKind.FALL:
            # Twelve hours without water are already over when the live part begins.
            assert incident.start_ms + 12 * 3_600_000 < live_ms
        else:
            assert 0 < (incident.start_ms - live_ms) / 10 / 1000 <= 60
    sim = fleet.simulate(DEMO_BACKFILL + timedelta(minutes=10), scenarios=incidents)
    kinds_seen = {m.kind for m in sim}
    assert {"call_sos", "smoke_alarm"} <= kinds_seen
