"""Device health: silence, Last Will, battery/signal, one finding per household outage."""

from __future__ import annotations

from datetime import time, timedelta

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, QuietWindow
from i18n import english
from schemas.findings import FindingAction
from schemas.kinds import AlertKind, Severity
from tests.detectors.helpers import BUTTON, HH, METER, SMOKE, at, event, sample, status


def engine() -> Engine:
    e = Engine(DetectorSuiteConfig())
    for d in (METER, SMOKE, BUTTON):
        e.upsert_device(d)
    return e


def test_meter_silent_past_interval_times_grace_is_offline_not_inactive() -> None:
    e = Engine(DetectorSuiteConfig())
    e.upsert_device(METER)
    e.process([sample(at(10), 100.0)])
    # 10:20, silent (15 min + 5): the silence rule looks at the household, nothing to raise (the quiet
    # is 20 minutes old); 10:30, offline (900 s x grace 2.0).
    assert e.next_timer() == at(10) + timedelta(minutes=20)
    assert e.tick(at(10.4)) == []
    assert e.next_timer() == at(10.5)
    [f] = e.tick(at(10.5))
    assert (f.kind, f.severity, f.device_id) == (AlertKind.DEVICE_OFFLINE, Severity.NORMAL, "m1")
    assert f.at == at(10)
    assert f.detected_at == at(10.5)
    assert "silent since 10:00 (expected every 15 min)" in english(f.evidence)
    assert e.tick(at(20)) == []
    # Nothing more until the silence rule's deadline: 12 h after the quiet began (no use seen since the
    # first reading), when no reading can prove use any more (tests/detectors/test_silence.py).
    assert e.next_timer() == at(22)
    [back] = e.process([sample(at(20), 100.0)])
    assert (back.kind, back.action) == (AlertKind.DEVICE_OFFLINE, FindingAction.ANNOTATE)


def test_whole_household_silent_at_once_is_one_finding() -> None:
    e = engine()
    e.process(
        [sample(at(10), 100.0), status(at(10) - timedelta(minutes=5), SMOKE), event("test", at(10), device=BUTTON)]
    )
    found = e.tick(at(10.5))
    assert len(found) == 1
    assert found[0].details["devices"] == ["m1", "c1", "s1"]
    assert "whole home offline" in english(found[0].evidence)
    # The smoke alarm's and button's own (hourly x2) deadlines pass later: no more findings.
    assert e.tick(at(13)) == []
    # Back only when every device of the incident has been heard again.
    assert e.process([sample(at(13), 100.0), status(at(13), SMOKE)]) == []
    [back] = e.process([event("test", at(13.1), device=BUTTON, seq=2)])
    assert back.action is FindingAction.ANNOTATE


def test_last_will_is_offline_at_once() -> None:
    e = engine()
    e.process([status(at(9), SMOKE)])
    [f] = e.process([status(at(9.2), SMOKE, online=False)])
    assert f.kind is AlertKind.DEVICE_OFFLINE
    assert f.details["reason"] == "last_will"
    assert e.tick(at(20)) == []


def test_heard_before_its_last_will_is_back_without_negative_silence() -> None:
    e = Engine(DetectorSuiteConfig())
    e.upsert_device(METER)
    e.process([sample(at(9), 100.0)])
    [off] = e.process([status(at(10), METER, online=False)])
    assert off.at == at(10)
    # A reading received five minutes before the will reached us, committed after it.
    [back] = e.process([sample(at(10.1), 100.0, received=at(10) - timedelta(minutes=5))])
    assert back.action is FindingAction.ANNOTATE
    assert back.at == at(10)
    assert english(back.evidence) == "back online at 10:00 after 0 min of silence"


def test_low_battery_and_weak_signal_with_hysteresis() -> None:
    e = engine()
    [bat] = e.process([status(at(9), METER, battery_pct=15)])
    assert (bat.kind, bat.severity, bat.detector) == (AlertKind.MAINTENANCE, Severity.LOW, "health_battery")
    assert e.process([status(at(10), METER, battery_pct=22)]) == []  # not recovered enough
    assert e.process([status(at(11), METER, battery_pct=18)]) == []
    [rssi] = e.process([status(at(12), METER, rssi_dbm=-115)])
    assert rssi.detector == "health_signal"


def test_quiet_window_holds_low_severity_until_morning() -> None:
    e = engine()
    e.set_household(HH, HouseholdSettings(quiet=(QuietWindow(time(22), time(7)),)))
    assert e.process([status(at(23), METER, battery_pct=10)]) == []
    # Emergencies are never held.
    assert [(f.kind, f.action) for f in e.process([event("sos", at(23.5))])] == [
        (AlertKind.SOS, FindingAction.RAISE),
        (AlertKind.INACTIVITY, FindingAction.PRESENCE),  # a sign of life: never held either
    ]
    snap = e.snapshots()
    restored = Engine(DetectorSuiteConfig(), snap)
    restored.set_household(HH, HouseholdSettings(quiet=(QuietWindow(time(22), time(7)),)))
    maintenance = [f for f in restored.tick(at(30.9)) if f.kind is AlertKind.MAINTENANCE]
    assert maintenance == []  # (the devices' own silence is reported meanwhile: not held, NORMAL)
    [held] = restored.tick(at(31))
    assert held.detector == "health_battery"
    assert held.details["held_until"] == at(31).isoformat()


def test_offline_deadline_survives_restart() -> None:
    e = engine()
    e.process([sample(at(10), 100.0)])
    restored = Engine(DetectorSuiteConfig(), e.snapshots())
    assert restored.next_timer() == at(10) + timedelta(minutes=20)  # the silence rule's gate, then 10:30
    assert [f.kind for f in restored.tick(at(11))] == [AlertKind.DEVICE_OFFLINE]
