"""Compact per-meter state: the shared zone-offset cache and snapshot round trips of the packed state."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from detectors import DetectorSuiteConfig, Engine, FlatRuleConfig
from detectors.context import ZoneClock, to_dt, zone
from tests.detectors.helpers import METER, at, readings


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("Europe/London", datetime(2024, 3, 30, 12, tzinfo=UTC)),  # spring forward 01:00 UTC
        ("America/New_York", datetime(2024, 11, 2, 12, tzinfo=UTC)),  # fall back 06:00 UTC
        ("Australia/Lord_Howe", datetime(2024, 4, 6, 6, tzinfo=UTC)),  # half an hour back at 14:30 UTC
    ],
)
def test_zone_clock_matches_zoneinfo_across_transitions(name: str, start: datetime) -> None:
    clock = ZoneClock(zone(name))
    for minute in range(0, 36 * 60, 7):
        t = (start + timedelta(minutes=minute)).timestamp()
        exact = to_dt(t).astimezone(zone(name)).utcoffset()
        assert exact is not None
        assert clock.offset_s(t) == exact.total_seconds(), to_dt(t)


def test_zone_clock_cache_is_bounded() -> None:
    clock = ZoneClock(zone("Asia/Shanghai"))
    for hour in range(ZoneClock.MAX_HOURS + 10):
        assert clock.offset_s(hour * 3600.0) == 8 * 3600
    assert len(clock.hours) <= ZoneClock.MAX_HOURS


def test_meter_snapshot_round_trips_latches_steps_and_ledger() -> None:
    # Program rule and backstop both on, so step points and both kinds of latch are in the state.
    cfg = DetectorSuiteConfig()
    cfg = replace(cfg, flat_rules=(*cfg.flat_rules, FlatRuleConfig(name="program", window_h=10.0)))
    e = Engine(cfg)
    e.upsert_device(METER)
    uses = [(at(7, day=d), 30.0) for d in range(9)] + [(at(19, day=d), 12.0) for d in range(9)]
    e.process(list(readings(at(0), at(0, day=10), sorted(uses))))
    snap = json.loads(json.dumps(e.all_snapshots()))
    logic = snap[f"dev:{METER.device_id}"]["logic"]
    assert set(logic["fired"]) == {"flat_12h", "program"}
    assert logic["steps"]
    assert len(logic["days"]["bits"]) == 10
    restored = Engine(cfg, snap)
    assert json.loads(json.dumps(restored.all_snapshots())) == snap
