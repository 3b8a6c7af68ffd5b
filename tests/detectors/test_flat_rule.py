"""The flat program rule (< 10 L in 12 h of device time), registers, late data, away, restarts."""

from __future__ import annotations

from dataclasses import replace

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, Period
from i18n import english
from schemas.findings import FindingAction
from schemas.kinds import AlertKind, Severity
from tests.detectors.helpers import HH, METER, at, readings, sample

# Routine/flow/excess off, program rule exactly as written: these tests pin the program rule alone.
CFG = DetectorSuiteConfig()
CFG = replace(
    CFG,
    flat_rules=(replace(CFG.flat_rules[0], personal=False), CFG.flat_rules[1]),
    routine=replace(CFG.routine, enabled=False),
    flow=replace(CFG.flow, enabled=False),
)


def engine(settings: HouseholdSettings | None = None) -> Engine:
    e = Engine(CFG)
    e.upsert_device(METER)
    if settings:
        e.set_household(HH, settings)
    return e


def inactivity(findings: list) -> list:  # type: ignore[type-arg]
    return [f for f in findings if f.kind is AlertKind.INACTIVITY and f.action is FindingAction.RAISE]


def test_fires_once_when_12h_pass_with_under_10_litres() -> None:
    e = engine()
    # Last real use at 21:00 (20 L), then only a 3 L drip over the night.
    recs = list(readings(at(20), at(34), [(at(21), 20.0), (at(26), 3.0)]))
    found = inactivity(e.process(recs))
    assert len(found) == 1
    f = found[0]
    assert f.severity is Severity.HIGH
    assert f.at == at(21)
    assert f.detected_at == at(33)
    assert f.details["litres"] == 3.0
    assert f.details["rule"] == "flat_12h"
    assert english(f.evidence) == "less than 10 L in 12 h: 3.0 L since 21:00 yesterday (12 h, reading at 09:00)"


def test_no_refire_until_water_resumes_then_fires_again_after_another_12h() -> None:
    e = engine()
    assert len(inactivity(e.process(list(readings(at(0), at(13)))))) == 1
    assert inactivity(e.process(list(readings(at(13.25), at(20), register=100.0)))) == []
    # 5 L at 20:15 clears it; the next window counts from there.
    later = list(readings(at(20.25), at(33), [(at(20.25), 5.0)]))
    found = inactivity(e.process(later))
    assert [f.at for f in found] == [at(20.25)]
    assert found[0].detected_at == at(32.25)


def test_late_batch_is_evaluated_for_the_device_time_it_covers() -> None:
    e = engine()
    e.process(list(readings(at(19), at(20), [(at(20), 30.0)])))
    # The meter uploads 13 h of stored readings at once, two hours after the last of them.
    batch = list(readings(at(20.25), at(33), register=130.0, received=at(35)))
    [f] = inactivity(e.process(batch))
    assert f.at == at(20)
    assert f.detected_at == at(35)
    assert f.details["due_at"] == at(32).isoformat()


def test_out_of_order_batch_within_a_call_is_sorted() -> None:
    e = engine()
    recs = list(readings(at(0), at(12.5)))
    [f] = inactivity(e.process(list(reversed(recs))))
    assert f.at == at(0)
    assert f.detected_at == at(12)


def test_register_reset_never_counts_negative_or_huge_use_and_restarts_the_window() -> None:
    e = engine()
    e.process(list(readings(at(0), at(6), register=5000.0)))
    # Battery swap at 06:15: the register restarts near zero. Quiet continues.
    found = inactivity(e.process(list(readings(at(6.25), at(19), register=0.0))))
    assert [f.at for f in found] == [at(6.25)]  # counted from the reset, never from 00:00
    assert found[0].detected_at == at(18.25)


def test_single_glitch_reading_resumes_the_old_series() -> None:
    e = engine()
    e.process(list(readings(at(0), at(2), register=5000.0)))
    e.process([sample(at(2.25), 0.0)])  # glitch
    # Back on the old register: the 5000 L jump must not count as water use.
    found = inactivity(e.process(list(readings(at(2.5), at(15), register=5000.0))))
    assert [f.at for f in found] == [at(2.5)]


def test_away_period_suppresses_and_window_restarts_at_return() -> None:
    away = HouseholdSettings(away=(Period(at(8), at(30), "away"),))
    e = engine(away)
    assert inactivity(e.process(list(readings(at(0), at(30))))) == []
    found = inactivity(e.process(list(readings(at(30.25), at(43)))))
    assert [(f.at, f.detected_at) for f in found] == [(at(30), at(42))]


def test_household_threshold_override() -> None:
    e = engine(HouseholdSettings(flat_min_litres=20.0, flat_window_h=8.0))
    [f] = inactivity(e.process(list(readings(at(0), at(9), [(at(1), 15.0)]))))
    assert f.at == at(0)
    assert f.detected_at == at(8)
    assert english(f.evidence).startswith("less than 20 L in 8 h: 15.0 L since 00:00")


def test_restart_mid_window_neither_forgets_nor_reraises() -> None:
    e = engine()
    e.process(list(readings(at(0), at(6))))
    snap = e.snapshots()
    e2 = Engine(CFG, snap)
    [f] = inactivity(e2.process(list(readings(at(6.25), at(13)))))
    assert f.at == at(0)
    assert f.detected_at == at(12)
    e3 = Engine(CFG, {**snap, **e2.snapshots()})
    assert inactivity(e3.process(list(readings(at(13.25), at(20))))) == []


def test_daily_minimum_variant() -> None:
    rules = (replace(CFG.flat_rules[0], enabled=False), replace(CFG.flat_rules[1], enabled=True))
    e = Engine(replace(CFG, flat_rules=rules))
    e.upsert_device(METER)
    [f] = inactivity(e.process(list(readings(at(0), at(25), [(at(10), 9.0)]))))
    assert f.details["rule"] == "daily_min_24h"
    assert f.detected_at == at(24)
