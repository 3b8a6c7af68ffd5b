"""Every message the simulator makes fits protocol v1 (``schemas.device``) and its topic rules."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

from schemas.device import DEVICE_ID_PATTERN, MAX_BATCH_READINGS, MAX_PAYLOAD_BYTES, MeterBatch
from simulator import parse_scenarios
from tests.simulator.helpers import small_fleet, validate


def test_every_payload_validates() -> None:
    fleet = small_fleet(homes=20)
    types = {d.device_id: d.device_type for d in fleet.devices}
    sim = fleet.simulate(timedelta(days=2), scenarios=parse_scenarios("all"))
    kinds: Counter[str] = Counter()
    for message in sim:
        root, dev, device_id, channel = message.topic.rsplit("/", 3)
        assert (root, dev) == ("care/v1", "dev")
        assert DEVICE_ID_PATTERN.fullmatch(device_id)
        assert len(message.payload) <= MAX_PAYLOAD_BYTES
        model = validate(types[device_id], channel, message.payload)
        if isinstance(model, MeterBatch):
            assert len(model.readings) <= MAX_BATCH_READINGS
        assert message.retain == (channel == "status")
        kinds[message.kind] += 1
    assert {"meter_reading", "meter_batch", "status", "will", "smoke_alarm", "call_sos"} <= set(kinds)


def test_device_ids_and_registry_info() -> None:
    fleet = small_fleet(homes=5)
    infos = fleet.device_infos()
    assert len(infos) == sum(len(h.devices) for h in fleet.homes)
    assert len({i.device_id for i in infos}) == len(infos)
    for home in fleet.homes:
        assert {d.slot for d in home.devices} >= {"wm", "sa1", "cb"}
        assert all(d.household_id == home.household_id for d in home.devices)
    meter = fleet.homes[0].meter
    assert meter.meter_mode is not None
    assert meter.expected_interval_s == meter.meter_mode.upload_period_s


def test_timestamp_forms() -> None:
    """Meters send epoch milliseconds, alarms and buttons RFC 3339 with +08:00."""
    sim = small_fleet(homes=3).simulate(timedelta(hours=2))
    for message in sim:
        ts = json.loads(message.payload)["ts"]
        if message.device_id.endswith("-wm"):
            assert isinstance(ts, int)
        else:
            assert isinstance(ts, str)
            assert ts.endswith("+08:00")
