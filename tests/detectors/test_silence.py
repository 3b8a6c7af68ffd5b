"""Silence is not safety: a meter silent after a long quiet raises an urgent "cannot confirm" (pure)."""

from __future__ import annotations

from dataclasses import replace

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, Period
from i18n import english
from schemas.findings import AlertClosure, Finding, FindingAction
from schemas.kinds import AlertKind, DeviceType, Severity
from schemas.records import DeviceInfo
from tests.detectors.helpers import BUTTON, HH, METER, SMOKE, at, event, readings, status

CFG = DetectorSuiteConfig()
CFG = replace(CFG, routine=replace(CFG.routine, enabled=False))
HOURLY = replace(METER, expected_interval_s=3600)
LEAD = HouseholdSettings(checkin_lead_s=1200.0)


def engine(*devices: DeviceInfo, settings: HouseholdSettings = LEAD) -> Engine:
    e = Engine(CFG)
    for d in devices or (HOURLY,):
        e.upsert_device(d)
    e.set_household(HH, settings)
    return e


def raised(found: list[Finding], detector: str = "silence") -> list[Finding]:
    return [f for f in found if f.detector == detector and f.action is FindingAction.RAISE]


def run_until(e: Engine, end_h: float) -> list[Finding]:
    """Tick the engine's timers up to ``end_h`` (local hours of day 0)."""
    out: list[Finding] = []
    timer = e.next_timer()
    while timer is not None and timer <= at(end_h):
        out += e.tick(timer)
        timer = e.next_timer()
    return out


def test_a_meter_silent_after_a_long_quiet_cannot_confirm_the_resident_is_well() -> None:
    e = engine()
    # Water at the 20:00 reading (used in 19:00-20:00), none after; the last transmission is at 02:00.
    e.process(list(readings(at(18), at(26), [(at(20), 6.0)], step_min=60)))
    found = run_until(e, 40)
    [f] = raised(found)
    assert (f.kind, f.severity, f.device_id) == (AlertKind.INACTIVITY, Severity.HIGH, "m1")
    # 12 h from the start of the last use's hour, less the 20 min check-in: the page is due by 07:00.
    assert (f.at, f.detected_at) == (at(19), at(30) + (at(31) - at(30)) * 2 / 3)
    assert f.details["cannot_confirm"] is True
    assert f.details["silent_since"] == at(26).isoformat()
    assert f.details["quiet_since"] == at(19).isoformat()
    assert f.details["devices"] == ["m1"]
    text = english(f.evidence)
    assert "cannot confirm the resident is well" in text
    assert "silent since 02:00" in text
    assert "no water used since 19:00 yesterday" in text
    # The meter's own silence was the usual DEVICE_OFFLINE notice, hours before (normal severity).
    [offline] = [g for g in found if g.kind is AlertKind.DEVICE_OFFLINE]
    assert (offline.detected_at, offline.severity) == (at(28), Severity.NORMAL)
    assert e.next_timer() is None  # once for the stretch


def test_a_meter_silent_while_use_was_recent_is_only_offline() -> None:
    e = engine()
    e.process(list(readings(at(6), at(9), [(at(8), 6.0)], step_min=60)))
    found = run_until(e, 18)
    assert [f.kind for f in found] == [AlertKind.DEVICE_OFFLINE]
    # Readings resume, showing use, before the window has passed: nothing more, nothing to answer.
    back = e.process(list(readings(at(16), at(17), [(at(17), 5.0)], register=106.0, step_min=60)))
    assert [(f.kind, f.action) for f in back] == [(AlertKind.DEVICE_OFFLINE, FindingAction.ANNOTATE)]
    assert raised(run_until(e, 27)) == []
    # (Silent again from 17:00, the rule's deadline is 12 h less the lead after the 16:00-17:00 use.)
    assert e.next_timer() == at(27) + (at(28) - at(27)) * 2 / 3


def test_a_daily_upload_meter_between_uploads_is_not_silent() -> None:
    daily = replace(METER, expected_interval_s=86400)
    e = engine(daily)
    # Yesterday's readings uploaded at 00:00; the last use at 20:00 yesterday.
    e.process(list(readings(at(-24), at(0), [(at(-4), 6.0)], received=at(0))))
    assert raised(run_until(e, 24)) == []  # the next upload is due at midnight
    # It does not come: silent once its period and the slack (2.4 h) have passed, and raised then.
    [f] = raised(run_until(e, 27))
    assert f.detected_at == at(26.4)


def test_never_while_away_and_counted_from_the_return() -> None:
    e = engine(settings=replace(LEAD, away=(Period(at(21), at(36)),)))
    e.process(list(readings(at(18), at(26), [(at(20), 6.0)], step_min=60)))
    found = run_until(e, 60)
    [f] = raised(found)
    assert (f.at, f.detected_at) == (at(36), at(47) + (at(48) - at(47)) * 2 / 3)


def test_once_per_stretch_then_the_backstop_attaches_and_use_is_presence() -> None:
    e = engine()
    e.process(list(readings(at(18), at(26), [(at(20), 6.0)], step_min=60)))
    assert len(raised(run_until(e, 31))) == 1
    # The readings come back and show no use: the backstop raises too (alerting attaches it to the same
    # open INACTIVITY alert); the silence rule does not raise again.
    later = e.process(list(readings(at(27), at(33), step_min=60, register=106.0)))
    assert [f.detector for f in later if f.action is FindingAction.RAISE] == ["backstop:flat_12h"]
    assert raised(run_until(e, 40)) == []
    # Water again: a sign of life that answers the check-in; the next stretch may raise again.
    back = e.process(list(readings(at(40), at(42), [(at(41), 4.0)], register=106.0, step_min=60)))
    assert [(f.action, f.details) for f in back if f.action is FindingAction.PRESENCE] == [
        (FindingAction.PRESENCE, {"signal": "water"})
    ]
    [again] = raised(run_until(e, 60))
    assert again.at == at(40)


def test_a_press_ends_the_latch_and_the_quiet_counts_from_it() -> None:
    e = engine(HOURLY, BUTTON)
    e.process(list(readings(at(18), at(26), [(at(20), 6.0)], step_min=60)))
    e.process([status(at(26), BUTTON)])
    assert len(raised(run_until(e, 31))) == 1
    e.process([event("service_request", at(32))])
    [f] = raised(run_until(e, 50))
    assert (f.at, f.detected_at) == (at(32), at(43) + (at(44) - at(43)) * 2 / 3)
    assert "no water used since 08:00 (when the call button was pressed)" in english(f.evidence)
    assert f.details["sign_of_life"] == {"signal": "press", "device_id": "c1", "at": at(32).isoformat()}


def test_a_resolved_alert_rearms_it_from_the_resolution() -> None:
    e = engine()
    e.process(list(readings(at(18), at(26), [(at(20), 6.0)], step_min=60)))
    assert len(raised(run_until(e, 31))) == 1
    e.alert_closed(AlertClosure(HH, AlertKind.INACTIVITY, "m1", at(32)))
    [f] = raised(run_until(e, 50))
    assert f.at == at(32)
    # And a routine alert resolved re-arms it the same way (the resident was confirmed fine then).
    e.alert_closed(AlertClosure(HH, AlertKind.ROUTINE_MISSED, "m1", at(45)))
    [g] = raised(run_until(e, 60))
    assert g.at == at(45)


def test_a_whole_home_outage_is_one_finding_naming_the_silent_devices() -> None:
    e = engine(HOURLY, BUTTON, SMOKE)
    e.process(list(readings(at(18), at(26), [(at(20), 6.0)], step_min=60)))
    e.process([status(at(26), BUTTON), status(at(26), SMOKE)])
    found = run_until(e, 40)
    [f] = raised(found)
    assert f.details["devices"] == ["c1", "m1", "s1"]
    text = english(f.evidence)
    assert "also silent: call button c1 (last heard" in text
    assert "smoke alarm s1 (last heard" in text
    [offline] = [g for g in found if g.kind is AlertKind.DEVICE_OFFLINE]
    assert sorted(offline.details["devices"]) == ["c1", "m1", "s1"]


def test_two_meters_in_a_home_are_judged_together() -> None:
    second = DeviceInfo("m2", DeviceType.WATER_METER, HH, 3600)
    e = engine(HOURLY, second)
    e.process(list(readings(at(18), at(26), [(at(20), 6.0)], step_min=60)))
    # The second meter saw use at 22:00 and reports until 07:00: the home is not silent while it reports
    # (its own readings prove the quiet), and its last known use is the later one.
    later = [replace(s, device_id="m2") for s in readings(at(18), at(31), [(at(22), 3.0)], step_min=60)]
    for s in later:
        assert raised(run_until(e, (s.ts - at(0)).total_seconds() / 3600)) == []
        e.process([s])
    [f] = raised(run_until(e, 60))
    assert (f.at, f.detected_at) == (at(21), at(32) + (at(33) - at(32)) * 2 / 3)
    assert f.details["devices"] == ["m1", "m2"]


def test_the_deadline_survives_a_restart_and_a_fired_latch_does_not_refire() -> None:
    e = engine()
    e.process(list(readings(at(18), at(26), [(at(20), 6.0)], step_min=60)))
    restored = Engine(CFG, e.all_snapshots())
    restored.set_household(HH, LEAD)
    assert restored.next_timer() == e.next_timer()
    [f] = raised(run_until(restored, 40))
    assert f.detected_at == at(30) + (at(31) - at(30)) * 2 / 3
    again = Engine(CFG, restored.all_snapshots())
    again.set_household(HH, LEAD)
    assert raised(run_until(again, 60)) == []


def test_disabled_without_a_backstop_or_by_configuration() -> None:
    program = replace(CFG, flat_rules=(replace(CFG.flat_rules[0], personal=False),))
    off = replace(CFG, silence=replace(CFG.silence, enabled=False))
    for cfg in (program, off):
        e = Engine(cfg)
        e.upsert_device(HOURLY)
        e.process(list(readings(at(18), at(26), [(at(20), 6.0)], step_min=60)))
        assert raised(run_until(e, 60)) == []
