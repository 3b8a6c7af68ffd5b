"""Smoke alarm and call button: exact findings per event sequence."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, Period
from schemas.findings import AlertClosure, Finding, FindingAction, PresenceSignal
from schemas.kinds import AlertKind, Severity
from tests.detectors.helpers import BUTTON, HH, SMOKE, at, event


def process(e: Engine, records: list[Any]) -> list[Finding]:
    """The findings that raise or annotate alerts (signs of life are tested on their own below)."""
    return [f for f in e.process(records) if f.action is not FindingAction.PRESENCE]


def engine() -> Engine:
    e = Engine(DetectorSuiteConfig())
    e.upsert_device(BUTTON)
    e.upsert_device(SMOKE)
    return e


def test_sos_raises_critical_at_once_and_cancel_in_window_annotates() -> None:
    e = engine()
    [sos] = process(e, [event("sos", at(9))])
    assert (sos.kind, sos.severity, sos.action) == (AlertKind.SOS, Severity.CRITICAL, FindingAction.RAISE)
    assert sos.at == at(9)
    assert sos.detected_at == at(9)
    assert "09:00" in sos.evidence
    [cancel] = process(e, [event("cancel", at(9) + timedelta(seconds=20), seq=2)])
    assert (cancel.kind, cancel.action) == (AlertKind.SOS, FindingAction.ANNOTATE)
    assert cancel.details == {"likely_accidental": True, "cancel_after_s": 20.0}
    assert cancel.at == at(9)


def test_cancel_after_window_is_not_accidental_and_bounce_is_one_press() -> None:
    e = engine()
    first, bounce = process(e, [event("sos", at(9)), event("sos", at(9) + timedelta(seconds=5), seq=2)])
    # A bounce is raised too (alerting attaches it to the open alert, or opens a new one if that is
    # resolved), but it is the same press: no news, no notification again.
    assert (first.notify_again, first.details) == (True, {})
    assert (bounce.action, bounce.notify_again, bounce.details) == (FindingAction.RAISE, False, {"repeat": True})
    assert bounce.at == at(9) + timedelta(seconds=5)
    [late] = process(e, [event("cancel", at(9) + timedelta(minutes=10), seq=3)])
    assert late.details["likely_accidental"] is False
    assert late.at == at(9)  # the counted press, not the bounce
    # A second press well after the first is new information: raised again, and news.
    [again] = process(e, [event("sos", at(10), seq=4)])
    assert (again.kind, again.notify_again) == (AlertKind.SOS, True)


def test_service_request_is_normal_task_with_note() -> None:
    e = engine()
    rec = event("service_request", at(11))
    rec = type(rec)(rec.device_id, rec.household_id, rec.device_type, rec.ts, 1, rec.kind, rec.received_at, "meal")
    [f] = process(e, [rec])
    assert (f.kind, f.severity) == (AlertKind.SERVICE_REQUEST, Severity.NORMAL)
    assert f.details == {"note": "meal"}
    assert '"meal"' in f.evidence


def test_smoke_alarm_hush_does_not_close_and_cleared_annotates() -> None:
    e = engine()
    [alarm] = process(e, [event("alarm", at(2), device=SMOKE)])
    assert (alarm.kind, alarm.severity, alarm.action) == (AlertKind.SMOKE, Severity.CRITICAL, FindingAction.RAISE)
    assert alarm.notify_again
    [hush] = process(e, [event("hush", at(2.1), device=SMOKE, seq=2)])
    assert hush.action is FindingAction.ANNOTATE
    assert "not cleared" in hush.evidence
    # The same fire, still sounding: an occurrence (raised, so a resolved alert cannot hide it), no news.
    [repeat] = process(e, [event("alarm", at(2.2), device=SMOKE, seq=3)])
    assert (repeat.action, repeat.notify_again, repeat.details["repeat"]) == (FindingAction.RAISE, False, True)
    [cleared] = process(e, [event("alarm_cleared", at(2.5), device=SMOKE, seq=4)])
    assert cleared.action is FindingAction.ANNOTATE
    assert cleared.at == at(2)
    [again] = process(e, [event("alarm", at(5), device=SMOKE, seq=5)])
    assert (again.action, again.notify_again) == (FindingAction.RAISE, True)
    assert again.at == at(5)


def test_smoke_alarm_sounding_again_after_a_quiet_spell_is_news_without_alarm_cleared() -> None:
    """alarm_cleared is often lost (battery pulled, unit burnt): 30 quiet minutes end the alarm too."""
    e = engine()
    process(e, [event("alarm", at(2), device=SMOKE)])
    [repeat] = process(e, [event("alarm", at(2) + timedelta(minutes=29), device=SMOKE, seq=2)])
    assert not repeat.notify_again
    # 29 min after the first, 30 min after the repeat: quiet long enough, sounding again.
    [again] = process(e, [event("alarm", at(2) + timedelta(minutes=59), device=SMOKE, seq=3)])
    assert again.notify_again
    assert again.details == {"alarm_since": (at(2) + timedelta(minutes=59)).isoformat(), "repeat": False}


def test_smoke_test_is_silent_and_maintenance_is_low_once() -> None:
    e = engine()
    assert process(e, [event("test", at(10), device=SMOKE)]) == []
    [low] = process(e, [event("low_battery", at(11), device=SMOKE, seq=2)])
    assert (low.kind, low.severity) == (AlertKind.MAINTENANCE, Severity.LOW)
    assert process(e, [event("low_battery", at(12), device=SMOKE, seq=3)]) == []
    [tamper] = process(e, [event("tamper", at(12), device=SMOKE, seq=4)])
    assert tamper.details == {"event": "tamper"}
    process(e, [event("tamper_cleared", at(13), device=SMOKE, seq=5)])
    assert len(process(e, [event("tamper", at(14), device=SMOKE, seq=6)])) == 1


def test_away_never_suppresses_emergencies() -> None:
    e = engine()
    e.set_household(HH, HouseholdSettings(away=(Period(at(0), at(48), "hospital"),)))
    kinds = [f.kind for f in process(e, [event("sos", at(3)), event("alarm", at(4), device=SMOKE)])]
    assert kinds == [AlertKind.SOS, AlertKind.SMOKE]


def test_restart_keeps_active_smoke_alarm() -> None:
    e = engine()
    process(e, [event("alarm", at(2), device=SMOKE)])
    restored = Engine(DetectorSuiteConfig(), e.snapshots())
    [repeat] = process(restored, [event("alarm", at(2.2), device=SMOKE, seq=2)])
    assert not repeat.notify_again
    assert len(process(restored, [event("alarm_cleared", at(3), device=SMOKE, seq=3)])) == 1


def test_resolved_maintenance_alert_ends_the_smoke_alarms_notices() -> None:
    e = engine()
    assert len(process(e, [event("low_battery", at(11), device=SMOKE)])) == 1
    assert process(e, [event("low_battery", at(12), device=SMOKE, seq=2)]) == []
    e.alert_closed(AlertClosure(HH, AlertKind.MAINTENANCE, SMOKE.device_id, at(13)))
    # A battery replaced without a test press, low again later: a new notice, not hidden by the old one.
    assert [f.kind for f in process(e, [event("low_battery", at(40), device=SMOKE, seq=3)])] == [AlertKind.MAINTENANCE]


def test_every_press_and_a_hush_or_test_are_signs_of_life() -> None:
    e = engine()
    signs = [
        f
        for f in e.process([event("service_request", at(8)), event("test", at(9), device=SMOKE, seq=2)])
        if f.action is FindingAction.PRESENCE
    ]
    assert [(f.details["signal"], f.at) for f in signs] == [
        (PresenceSignal.PRESS.value, at(8)),
        (PresenceSignal.SMOKE.value, at(9)),
    ]
    ok = event("checkin_ok", at(10), seq=3)
    ok = type(ok)(
        ok.device_id, ok.household_id, ok.device_type, ok.ts, 3, ok.kind, ok.received_at, None, "Ck-0123456789"
    )
    [answer] = e.process([ok])  # a checkin_ok raises nothing but the answer
    assert (answer.action, answer.details) == (
        FindingAction.PRESENCE,
        {"signal": "press", "checkin_id": "Ck-0123456789"},
    )
    assert "checkin_ok" in answer.evidence
