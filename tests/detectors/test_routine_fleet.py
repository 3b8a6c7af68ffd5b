"""The routine's limits for many meters at once (detectors/routine_fleet.py) are byte for byte the
scalar ones (detectors.routine.quiet_limits), for every configuration the routine has."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings
from detectors.context import HouseholdView
from detectors.daily import DayLedger
from detectors.meter import MeterLogic
from detectors.routine import RoutineLogic, quiet_limits
from detectors.routine_fleet import quiet_limits_many
from detectors.testing import PROFILES, Resident, meter_samples
from schemas.kinds import DeviceType
from schemas.records import DeviceInfo

SUITE = DetectorSuiteConfig()
METER = DeviceInfo("m", DeviceType.WATER_METER, "h", 900)
VIEWS = [HouseholdView(HouseholdSettings()), HouseholdView(HouseholdSettings(timezone="Europe/London"))]


def lived(count: int) -> list[DayLedger]:
    """Ledgers of simulated residents (every profile) after 30 days of 15-minute readings."""
    engine = Engine(SUITE)
    names = list(PROFILES)
    out = []
    for i in range(count):
        info = DeviceInfo(f"m{i}", DeviceType.WATER_METER, f"h{i}", 900)
        engine.upsert_device(info)
        uses = Resident(info.household_id, info.device_id, PROFILES[names[i % len(names)]], i).uses(31)
        engine.process(list(meter_samples(info.device_id, info.household_id, uses, 0, 30 * 24.0)))
        logic = engine._logic[info.device_id]  # the test looks inside
        assert isinstance(logic, MeterLogic)
        out.append(logic.ledger)
    return out


def made(rng: np.random.Generator, count: int) -> list[DayLedger]:
    """Hand-made ledgers: 0..28 days, sparse, dense and empty masks, partly or wholly invalid days."""
    out = []
    for _ in range(count):
        days = int(rng.choice([0, 1, 2, 3, 7, 14, 27, 28, 28, 28]))
        density = float(rng.choice([0.0, 0.05, 0.3, 0.9]))
        bits = [int(sum(1 << s for s in range(48) if rng.random() < density)) for _ in range(days)]
        valid = int(sum(1 << d for d in range(days) if rng.random() < float(rng.choice([0.0, 0.6, 0.9, 1.0, 1.0]))))
        newest = 19_700 + int(rng.integers(14))
        state = {"bits": bits, "totals": [0.0] * days, "valid": valid, "newest": newest if days else None}
        out.append(DayLedger(METER, SUITE, state))
    return out


CONFIGS = {
    "default": SUITE.routine,
    "same type only": replace(SUITE.routine, pool_day_types=False),
    "one exception": replace(SUITE.routine, allowed_exceptions=1),
    "two exceptions, no tolerance": replace(SUITE.routine, allowed_exceptions=2, tolerance_min=0),
    "90 min tolerance": replace(SUITE.routine, tolerance_min=90),
    "quantile spread": replace(SUITE.routine, spread_quantile=0.75, margin_factor=1.5),
    "median spread": replace(SUITE.routine, spread_quantile=0.5, pool_day_types=False),
    "one day per type": replace(SUITE.routine, min_days_per_type=1),
    "many days per type": replace(SUITE.routine, min_days_per_type=15),
    # np.quantile over a single row (both neighbours the last row, weight against index -1), and at 0.
    "quantile of one row": replace(SUITE.routine, spread_quantile=0.5, min_days_per_type=1),
    "zero quantile": replace(SUITE.routine, spread_quantile=0.0, tolerance_min=30),
    "scalar fallback": replace(SUITE.routine, allowed_exceptions=-1),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_many_meters_limits_equal_the_scalar_ones(name: str) -> None:
    cfg = replace(SUITE, routine=CONFIGS[name])
    rng = np.random.default_rng(len(name))
    ledgers = lived(12) + made(rng, 120)
    items = []
    for i, ledger in enumerate(ledgers):
        newest = ledger.newest if ledger.newest is not None else 19_700
        for day in (newest + 1, newest + 1 + int(rng.integers(1, 7))):  # weekdays and weekends
            items.append((ledger, day, VIEWS[i % len(VIEWS)]))
    expected = [quiet_limits(ledger, day, view, cfg) for ledger, day, view in items]
    assert quiet_limits_many(items, cfg) == expected
    assert sum(found is not None for found in expected) >= 20  # not only the None cases
    assert quiet_limits_many([], cfg) == []


def test_chunks_and_groups_of_different_history_lengths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several chunks per history length, chunks whose meters all lack comparable days, and histories
    longer than ``history_days`` (a restored snapshot may hold them) in their own group."""
    monkeypatch.setattr("detectors.routine_fleet.CHUNK", 5)
    rng = np.random.default_rng(7)
    ledgers = made(rng, 60)
    for days in (5, 9, 40):
        bits = [int(rng.integers(1 << 48)) & int(rng.integers(1 << 48)) for _ in range(days)]
        state = {"bits": bits, "totals": [0.0] * days, "valid": (1 << days) - 1 - 4, "newest": 19_700 + days}
        ledgers.append(DayLedger(METER, SUITE, state))
    # Seven ledgers in a row that never have enough comparable days: a chunk of five dropped whole.
    ledgers[10:10] = [DayLedger(METER, SUITE, {"bits": [1] * 28, "valid": 0, "newest": 19_800})] * 7
    items = [(ledger, (ledger.newest or 0) + 1, VIEWS[i % 2]) for i, ledger in enumerate(ledgers)]
    assert quiet_limits_many(items, SUITE) == [quiet_limits(ledger, day, view, SUITE) for ledger, day, view in items]


def test_primed_limits_are_what_limits_returns_without_recomputing(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = lived(1)[0]
    assert ledger.newest is not None
    day, view = ledger.newest + 1, VIEWS[0]
    routine = RoutineLogic(METER, SUITE)
    assert routine.stale(ledger, day)
    (found,) = quiet_limits_many([(ledger, day, view)], SUITE)
    assert found is not None
    routine.prime(ledger, found)
    assert not routine.stale(ledger, day)
    monkeypatch.setattr("detectors.routine.quiet_limits", lambda *_: pytest.fail("recomputed"))
    assert routine.limits(ledger, day, view) == found
