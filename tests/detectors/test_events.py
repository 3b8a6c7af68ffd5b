"""Smoke alarm and call button: exact findings per event sequence."""

from __future__ import annotations

from datetime import timedelta

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, Period
from schemas.findings import FindingAction
from schemas.kinds import AlertKind, Severity
from tests.detectors.helpers import BUTTON, HH, SMOKE, at, event


def engine() -> Engine:
    e = Engine(DetectorSuiteConfig())
    e.upsert_device(BUTTON)
    e.upsert_device(SMOKE)
    return e


def test_sos_raises_critical_at_once_and_cancel_in_window_annotates() -> None:
    e = engine()
    [sos] = e.process([event("sos", at(9))])
    assert (sos.kind, sos.severity, sos.action) == (AlertKind.SOS, Severity.CRITICAL, FindingAction.RAISE)
    assert sos.at == at(9)
    assert sos.detected_at == at(9)
    assert "09:00" in sos.evidence
    [cancel] = e.process([event("cancel", at(9) + timedelta(seconds=20), seq=2)])
    assert (cancel.kind, cancel.action) == (AlertKind.SOS, FindingAction.ANNOTATE)
    assert cancel.details == {"likely_accidental": True, "cancel_after_s": 20.0}
    assert cancel.at == at(9)


def test_cancel_after_window_is_not_accidental_and_bounce_is_one_press() -> None:
    e = engine()
    assert len(e.process([event("sos", at(9)), event("sos", at(9) + timedelta(seconds=5), seq=2)])) == 1
    [late] = e.process([event("cancel", at(9) + timedelta(minutes=10), seq=3)])
    assert late.details["likely_accidental"] is False
    # A second press well after the first is new information: raised again (alerting attaches it).
    assert [f.kind for f in e.process([event("sos", at(10), seq=4)])] == [AlertKind.SOS]


def test_service_request_is_normal_task_with_note() -> None:
    e = engine()
    rec = event("service_request", at(11))
    rec = type(rec)(rec.device_id, rec.household_id, rec.device_type, rec.ts, 1, rec.kind, rec.received_at, "meal")
    [f] = e.process([rec])
    assert (f.kind, f.severity) == (AlertKind.SERVICE_REQUEST, Severity.NORMAL)
    assert f.details == {"note": "meal"}
    assert '"meal"' in f.evidence


def test_smoke_alarm_hush_does_not_close_and_cleared_annotates() -> None:
    e = engine()
    [alarm] = e.process([event("alarm", at(2), device=SMOKE)])
    assert (alarm.kind, alarm.severity, alarm.action) == (AlertKind.SMOKE, Severity.CRITICAL, FindingAction.RAISE)
    [hush] = e.process([event("hush", at(2.1), device=SMOKE, seq=2)])
    assert hush.action is FindingAction.ANNOTATE
    assert "not cleared" in hush.evidence
    assert e.process([event("alarm", at(2.2), device=SMOKE, seq=3)]) == []  # same fire, still active
    [cleared] = e.process([event("alarm_cleared", at(2.5), device=SMOKE, seq=4)])
    assert cleared.action is FindingAction.ANNOTATE
    assert cleared.at == at(2)
    [again] = e.process([event("alarm", at(5), device=SMOKE, seq=5)])
    assert again.action is FindingAction.RAISE
    assert again.at == at(5)


def test_smoke_test_is_silent_and_maintenance_is_low_once() -> None:
    e = engine()
    assert e.process([event("test", at(10), device=SMOKE)]) == []
    [low] = e.process([event("low_battery", at(11), device=SMOKE, seq=2)])
    assert (low.kind, low.severity) == (AlertKind.MAINTENANCE, Severity.LOW)
    assert e.process([event("low_battery", at(12), device=SMOKE, seq=3)]) == []
    [tamper] = e.process([event("tamper", at(12), device=SMOKE, seq=4)])
    assert tamper.details == {"event": "tamper"}
    e.process([event("tamper_cleared", at(13), device=SMOKE, seq=5)])
    assert len(e.process([event("tamper", at(14), device=SMOKE, seq=6)])) == 1


def test_away_never_suppresses_emergencies() -> None:
    e = engine()
    e.set_household(HH, HouseholdSettings(away=(Period(at(0), at(48), "hospital"),)))
    kinds = [f.kind for f in e.process([event("sos", at(3)), event("alarm", at(4), device=SMOKE)])]
    assert kinds == [AlertKind.SOS, AlertKind.SMOKE]


def test_restart_keeps_active_smoke_alarm() -> None:
    e = engine()
    e.process([event("alarm", at(2), device=SMOKE)])
    restored = Engine(DetectorSuiteConfig(), e.snapshots())
    assert restored.process([event("alarm", at(2.2), device=SMOKE, seq=2)]) == []
    assert len(restored.process([event("alarm_cleared", at(3), device=SMOKE, seq=3)])) == 1
