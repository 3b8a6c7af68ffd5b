"""The default suite's 12 h backstop, standing flow, never-heard devices and old snapshots."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from detectors import DetectorSuiteConfig, Engine
from i18n import english
from schemas.findings import AlertClosure, Finding, FindingAction
from schemas.kinds import AlertKind, Severity
from schemas.records import MeterSample
from tests.detectors.helpers import HH, METER, at, readings

CFG = DetectorSuiteConfig()
CFG = replace(CFG, routine=replace(CFG.routine, enabled=False))


def inactivity(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.kind is AlertKind.INACTIVITY and f.action is FindingAction.RAISE]


def engine() -> Engine:
    e = Engine(CFG)
    e.upsert_device(METER)
    return e


def test_backstop_counts_from_the_start_of_the_last_use_interval_and_ignores_drips() -> None:
    e = engine()
    # 20 L seen at the 21:00 reading (used somewhere in 20:45-21:00), then 0.5 L drips every hour.
    drips = [(at(21 + h), 0.5) for h in range(1, 14)]
    found = inactivity(e.process(list(readings(at(20), at(34), [(at(21), 20.0), *drips]))))
    assert [(f.detector, f.at, f.detected_at) for f in found] == [("backstop:flat_12h", at(20.75), at(32.75))]
    assert found[0].severity is Severity.HIGH
    assert english(found[0].evidence) == (
        "no water used for 12 h: none since 20:45 yesterday (5.5 L in drips over 12 h, reading at 08:45)"
    )


def test_backstop_clears_at_the_next_use_and_counts_again_from_there() -> None:
    e = engine()
    assert len(e.process(list(readings(at(0), at(13))))) == 1
    later = e.process(list(readings(at(13.25), at(26), [(at(14), 3.0)])))
    found = inactivity(later)
    assert [(f.at, f.detected_at) for f in found] == [(at(13.75), at(25.75))]
    # The first use after the finding is news: a sign of life that answers a check-in in progress.
    signs = [(f.at, f.details) for f in later if f.action is FindingAction.PRESENCE]
    assert signs == [(at(14), {"signal": "water"})]


def test_a_resolved_inactivity_alert_counts_twelve_hours_afresh_from_the_resolution() -> None:
    """The latch that waits for water must not outlive its alert: resolved at 14:00 while still no
    water (say, nobody answered the door), the backstop raises again at 02:00, not never."""
    e = engine()
    assert len(e.process(list(readings(at(0), at(13))))) == 1
    e.alert_closed(AlertClosure(HH, AlertKind.INACTIVITY, METER.device_id, at(14)))
    e.alert_closed(AlertClosure(HH, AlertKind.INACTIVITY, METER.device_id, at(14)))  # read twice: no change
    found = inactivity(e.process(list(readings(at(13.25), at(28)))))
    assert [(f.at, f.detected_at) for f in found] == [(at(14), at(26))]
    # An old resolution read again after the latch fired for a later stretch does not clear it.
    e.alert_closed(AlertClosure(HH, AlertKind.INACTIVITY, METER.device_id, at(14)))
    assert inactivity(e.process(list(readings(at(28.25), at(40))))) == []


def test_standing_leak_is_one_low_notice_and_does_not_hide_a_fall() -> None:
    e = engine()
    leak = 0.5  # litres per 15 minutes: 2 L/h, a running cistern; "use" above it counts
    recs, register = [], 100.0
    for i in range(4 * 24 * 5):
        t = at(i / 4)
        register += leak + (6.0 if i % 16 == 0 and i < 4 * 24 * 4 else 0.0)  # uses every 4 h for 4 days
        recs.append(replace(next(readings(t, t)), register_l=register))
    found = e.process(recs)
    notices = [f for f in found if f.detector == "flow_standing"]
    assert [(f.kind, f.severity, f.details) for f in notices] == [
        (AlertKind.MAINTENANCE, Severity.LOW, {"standing_lph": 2.0})
    ]
    assert notices[0].detected_at == at(72)  # when the third whole day of never-stopping flow closes
    # The last use is seen at the 20:00 reading of day 3; the leak goes on, the fall is still found.
    falls = inactivity(found)
    assert [(f.at, f.detected_at) for f in falls] == [(at(91.75), at(103.75))]
    # Before the floor is learned the new leak is what the flow rules are for: flowing through the first
    # two nights and for 24 h. The third night is "recurring" (2 of the last 14) and stays quiet, and
    # from day 3 the learned floor is subtracted: one maintenance notice instead of a nightly alert.
    flow = [(f.detector, f.detected_at) for f in found if f.kind is AlertKind.CONTINUOUS_FLOW]
    # Once the floor is subtracted the intervals stop "flowing": the raised flow has stopped (presence).
    assert flow == [
        ("flow_overnight", at(5)),
        ("flow_all_day", at(24)),
        ("flow_overnight", at(29)),
        ("presence", at(72.25)),
    ]


def test_registered_device_that_never_reports_goes_offline() -> None:
    e = engine()
    assert e.tick(at(9)) == []  # the first tick starts its clock
    assert e.next_timer() == at(9.5)
    [f] = e.tick(at(9.5))
    assert (f.kind, f.details["reason"]) == (AlertKind.DEVICE_OFFLINE, "never_heard")
    assert "never reported since it was registered" in english(f.evidence)
    restored = Engine(CFG, e.snapshots())
    assert restored.tick(at(20)) == []  # still offline: not raised again


def test_unreadable_or_old_snapshot_starts_that_device_fresh(caplog: pytest.LogCaptureFixture) -> None:
    e = engine()
    e.process(list(readings(at(0), at(6))))
    snaps = e.snapshots()
    snaps["dev:m1"] = {"v": 0, "whatever": [1, 2]}
    snaps["dev:m2"] = {"v": 1, "info": ["m2"]}
    with caplog.at_level(logging.WARNING):
        restored = Engine(CFG, snaps)
    assert sum("starting that device fresh" in r.getMessage() for r in caplog.records) == 2
    restored.upsert_device(METER)
    assert restored.process(list(readings(at(6.25), at(7)))) == []


def test_a_reading_that_shows_use_after_a_long_gap_is_news_not_the_backstop() -> None:
    """Readings lost for 14 h (never back-filled), then one that shows the water used somewhere in them:
    that use is news (the quiet before it is unknown, and the silence rule's); if no use follows, the
    next reading raises the backstop from the gap's start."""
    e = engine()
    e.process(list(readings(at(6), at(8), [(at(8), 5.0)])))
    after = e.process(list(readings(at(22), at(22), [(at(22), 9.0)], register=105.0)))
    assert inactivity(after) == []
    [f] = inactivity(e.process(list(readings(at(22.25), at(23), register=114.0))))
    assert (f.at, f.detected_at) == (at(8), at(22.25))


def test_rescheduled_timers_do_not_pile_up() -> None:
    """Every reading moves its meter's timer; the stale entries are dropped, so a meter reading every
    few seconds for hours does not grow the engine (bench/soak.py found ~140 stale entries a second)."""
    e = engine()
    t0 = at(8)
    register = 1000.0
    for i in range(5000):  # one reading a call, as the live runner often delivers them
        register += 0.5
        moment = t0 + timedelta(seconds=2 * i)
        e.process([MeterSample(METER.device_id, HH, moment, register, moment)])
    live = sum(map(len, e._due.values()))
    assert len(e._heap) <= 2 * live + 1024
    assert len(e._heap) < 2000  # 5,000 reschedules, a handful of live timers
