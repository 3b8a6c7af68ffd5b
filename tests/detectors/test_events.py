"""Smoke alarm and call button: exact findings per event sequence."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, Period
from i18n import english
from schemas.findings import AlertClosure, Finding, FindingAction
from schemas.kinds import AlertKind, Severity
from tests.detectors.helpers import BUTTON, HH, SMOKE, at, event


def raised(found: list[Finding]) -> list[Finding]:
    """Without the PRESENCE findings every press emits (pinned in their own tests below)."""
    return [f for f in found if f.action is not FindingAction.PRESENCE]


def engine() -> Engine:
    e = Engine(DetectorSuiteConfig())
    e.upsert_device(BUTTON)
    e.upsert_device(SMOKE)
    return e


def test_sos_raises_critical_at_once_and_cancel_in_window_annotates() -> None:
    e = engine()
    [sos] = raised(e.process([event("sos", at(9))]))
    assert (sos.kind, sos.severity, sos.action) == (AlertKind.SOS, Severity.CRITICAL, FindingAction.RAISE)
    assert sos.at == at(9)
    assert sos.detected_at == at(9)
    assert "09:00" in english(sos.evidence)
    [cancel] = raised(e.process([event("cancel", at(9) + timedelta(seconds=20), seq=2)]))
    assert (cancel.kind, cancel.action) == (AlertKind.SOS, FindingAction.ANNOTATE)
    assert cancel.details == {"likely_accidental": True, "cancel_after_s": 20.0}
    assert cancel.at == at(9)


def test_cancel_after_window_is_not_accidental_and_bounce_is_one_press() -> None:
    e = engine()
    first, bounce = raised(e.process([event("sos", at(9)), event("sos", at(9) + timedelta(seconds=5), seq=2)]))
    # A bounce is raised too (alerting attaches it to the open alert, or opens a new one if that is
    # resolved), but it is the same press: no news, no notification again.
    assert (first.notify_again, first.details) == (True, {})
    assert (bounce.action, bounce.notify_again, bounce.details) == (FindingAction.RAISE, False, {"repeat": True})
    assert bounce.at == at(9) + timedelta(seconds=5)
    [late] = raised(e.process([event("cancel", at(9) + timedelta(minutes=10), seq=3)]))
    assert late.details["likely_accidental"] is False
    assert late.at == at(9)  # the counted press, not the bounce
    # A second press well after the first is new information: raised again, and news.
    [again] = raised(e.process([event("sos", at(10), seq=4)]))
    assert (again.kind, again.notify_again) == (AlertKind.SOS, True)


def test_service_request_is_normal_task_with_note() -> None:
    e = engine()
    rec = event("service_request", at(11))
    rec = type(rec)(rec.device_id, rec.household_id, rec.device_type, rec.ts, 1, rec.kind, rec.received_at, "meal")
    [f] = raised(e.process([rec]))
    assert (f.kind, f.severity) == (AlertKind.SERVICE_REQUEST, Severity.NORMAL)
    assert f.details == {"note": "meal"}
    assert '"meal"' in english(f.evidence)


def test_smoke_alarm_hush_does_not_close_and_cleared_annotates() -> None:
    e = engine()
    [alarm] = raised(e.process([event("alarm", at(2), device=SMOKE)]))
    assert (alarm.kind, alarm.severity, alarm.action) == (AlertKind.SMOKE, Severity.CRITICAL, FindingAction.RAISE)
    assert alarm.notify_again
    [hush] = raised(e.process([event("hush", at(2.1), device=SMOKE, seq=2)]))
    assert hush.action is FindingAction.ANNOTATE
    assert "not cleared" in english(hush.evidence)
    # The same fire, still sounding: an occurrence (raised, so a resolved alert cannot hide it), no news.
    [repeat] = raised(e.process([event("alarm", at(2.2), device=SMOKE, seq=3)]))
    assert (repeat.action, repeat.notify_again, repeat.details["repeat"]) == (FindingAction.RAISE, False, True)
    [cleared] = raised(e.process([event("alarm_cleared", at(2.5), device=SMOKE, seq=4)]))
    assert cleared.action is FindingAction.ANNOTATE
    assert cleared.at == at(2)
    [again] = raised(e.process([event("alarm", at(5), device=SMOKE, seq=5)]))
    assert (again.action, again.notify_again) == (FindingAction.RAISE, True)
    assert again.at == at(5)


def test_smoke_alarm_sounding_again_after_a_quiet_spell_is_news_without_alarm_cleared() -> None:
    """alarm_cleared is often lost (battery pulled, unit burnt): 30 quiet minutes end the alarm too."""
    e = engine()
    e.process([event("alarm", at(2), device=SMOKE)])
    [repeat] = raised(e.process([event("alarm", at(2) + timedelta(minutes=29), device=SMOKE, seq=2)]))
    assert not repeat.notify_again
    # 29 min after the first, 30 min after the repeat: quiet long enough, sounding again.
    [again] = raised(e.process([event("alarm", at(2) + timedelta(minutes=59), device=SMOKE, seq=3)]))
    assert again.notify_again
    assert again.details == {"alarm_since": (at(2) + timedelta(minutes=59)).isoformat(), "repeat": False}


def test_smoke_test_is_silent_and_maintenance_is_low_once() -> None:
    e = engine()
    [press] = e.process([event("test", at(10), device=SMOKE)])  # a person pressed it: presence only
    assert (press.action, press.details) == (FindingAction.PRESENCE, {"signal": "smoke"})
    [low] = raised(e.process([event("low_battery", at(11), device=SMOKE, seq=2)]))
    assert (low.kind, low.severity) == (AlertKind.MAINTENANCE, Severity.LOW)
    assert e.process([event("low_battery", at(12), device=SMOKE, seq=3)]) == []
    [tamper] = raised(e.process([event("tamper", at(12), device=SMOKE, seq=4)]))
    assert tamper.details == {"event": "tamper"}
    raised(e.process([event("tamper_cleared", at(13), device=SMOKE, seq=5)]))
    assert len(raised(e.process([event("tamper", at(14), device=SMOKE, seq=6)]))) == 1


def test_away_never_suppresses_emergencies() -> None:
    e = engine()
    e.set_household(HH, HouseholdSettings(away=(Period(at(0), at(48), "hospital"),)))
    kinds = [f.kind for f in raised(e.process([event("sos", at(3)), event("alarm", at(4), device=SMOKE)]))]
    assert kinds == [AlertKind.SOS, AlertKind.SMOKE]


def test_restart_keeps_active_smoke_alarm() -> None:
    e = engine()
    raised(e.process([event("alarm", at(2), device=SMOKE)]))
    restored = Engine(DetectorSuiteConfig(), e.snapshots())
    [repeat] = raised(restored.process([event("alarm", at(2.2), device=SMOKE, seq=2)]))
    assert not repeat.notify_again
    assert len(raised(restored.process([event("alarm_cleared", at(3), device=SMOKE, seq=3)]))) == 1


def test_resolved_maintenance_alert_ends_the_smoke_alarms_notices() -> None:
    e = engine()
    assert len(raised(e.process([event("low_battery", at(11), device=SMOKE)]))) == 1
    assert raised(e.process([event("low_battery", at(12), device=SMOKE, seq=2)])) == []
    e.alert_closed(AlertClosure(HH, AlertKind.MAINTENANCE, SMOKE.device_id, at(13)))
    # A battery replaced without a test press, low again later: a new notice, not hidden by the old one.
    assert [f.kind for f in e.process([event("low_battery", at(40), device=SMOKE, seq=3)])] == [AlertKind.MAINTENANCE]


def test_every_call_button_event_and_a_smoke_alarm_pressed_is_presence() -> None:
    e = engine()
    [ok] = e.process([replace(event("checkin_ok", at(8)), checkin_id="ck-1")])  # raises nothing else
    assert (ok.kind, ok.action) == (AlertKind.INACTIVITY, FindingAction.PRESENCE)
    assert ok.details == {"signal": "press", "checkin_id": "ck-1"}
    assert (ok.at, ok.device_id) == (at(8), "c1")
    for seq, kind in enumerate(("sos", "cancel", "service_request"), start=2):
        found = e.process([event(kind, at(9 + seq), seq=seq)])
        assert [f.details for f in found if f.action is FindingAction.PRESENCE] == [{"signal": "press"}], kind
    hush = e.process([event("alarm", at(20), device=SMOKE), event("hush", at(20.1), device=SMOKE, seq=2)])
    assert [f.details for f in hush if f.action is FindingAction.PRESENCE] == [{"signal": "smoke"}]
    # An alarm, its clearing and the maintenance events are not a person pressing anything.
    quiet = e.process(
        [event("alarm_cleared", at(21), device=SMOKE, seq=3), event("fault", at(22), device=SMOKE, seq=4)]
    )
    assert all(f.action is not FindingAction.PRESENCE for f in quiet)
