"""Signs of life: presence findings, the quiet clock they reset, the check-in lead, until_use absences."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, Period
from i18n import english
from schemas.findings import AlertClosure, Finding, FindingAction
from schemas.kinds import AlertKind
from tests.detectors.helpers import BUTTON, HH, METER, SMOKE, at, event, readings

CFG = DetectorSuiteConfig()
CFG = replace(CFG, routine=replace(CFG.routine, enabled=False))
PROGRAM = replace(CFG, flat_rules=(replace(CFG.flat_rules[0], personal=False),))


def engine(cfg: DetectorSuiteConfig = CFG, settings: HouseholdSettings | None = None) -> Engine:
    e = Engine(cfg)
    for d in (METER, BUTTON, SMOKE):
        e.upsert_device(d)
    if settings is not None:
        e.set_household(HH, settings)
    return e


def inactivity(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.kind is AlertKind.INACTIVITY and f.action is FindingAction.RAISE]


def signs(found: list[Finding]) -> list[tuple[str, str | None, str]]:
    return [(f.details["signal"], f.device_id, f.at.isoformat()) for f in found if f.action is FindingAction.PRESENCE]


def test_a_press_resets_the_quiet_clock_and_the_evidence_says_so() -> None:
    e = engine()
    e.process(list(readings(at(20), at(21), [(at(21), 20.0)])))
    e.process([event("service_request", at(33.2))])  # 09:12 next morning
    found = inactivity(e.process(list(readings(at(21.25), at(46), register=120.0))))
    # Not at 08:45 (12 h after the last use): the press showed the resident up at 09:12.
    [f] = found
    assert (f.at, f.detected_at) == (at(33.2), at(45.25))
    assert "none since 09:12 (when the call button was pressed)" in english(f.evidence)
    assert f.details["sign_of_life"] == {"signal": "press", "device_id": "c1", "at": at(33.2).isoformat()}


def test_a_smoke_alarm_test_resets_it_too_and_so_does_the_program_rule_window() -> None:
    e = engine(PROGRAM)
    e.process(list(readings(at(20), at(21), [(at(21), 20.0)])))
    e.process([event("test", at(30), device=SMOKE)])
    [f] = inactivity(e.process(list(readings(at(21.25), at(44), register=120.0))))
    assert (f.detector, f.at, f.detected_at) == ("flat_rule:flat_12h", at(30), at(42))
    assert "since 06:00 (when the smoke alarm was pressed)" in english(f.evidence)


def test_a_press_known_before_an_upload_covers_its_earlier_readings() -> None:
    """The press at 09:12 was received live; the day's readings come later: the 12 h reached at 08:45
    is not raised, because by then the resident was known to be up at 09:12."""
    e = engine()
    e.process(list(readings(at(20), at(21), [(at(21), 20.0)])))
    e.process([event("sos", at(33.2))])
    late = list(readings(at(21.25), at(36), register=120.0, received=at(36)))
    assert inactivity(e.process(late)) == []


def test_a_press_ends_a_fired_backstop_and_nothing_waits_for_water_then() -> None:
    e = engine()
    assert len(inactivity(e.process(list(readings(at(0), at(13)))))) == 1
    pressed = e.process([event("cancel", at(14))])
    assert signs(pressed) == [("press", "c1", at(14).isoformat())]
    found = e.process(list(readings(at(13.25), at(27), [(at(27), 4.0)])))
    # 12 h after the press, again; and the water at 03:00 is news (that finding was raised).
    assert [f.at for f in inactivity(found)] == [at(14)]
    assert signs(found) == [("water", "m1", at(27).isoformat())]


def test_water_presence_once_after_each_raised_stretch_and_flow_stopped_once() -> None:
    e = engine()
    e.process(list(readings(at(0), at(13))))
    found = e.process(list(readings(at(13.25), at(16), [(at(14), 3.0), (at(15), 3.0)])))
    assert signs(found) == [("water", "m1", at(14).isoformat())]  # not at 15:00: not news any more
    # A tap left running (6 L/min for 90 min): the continuous-flow finding, then the stop is news.
    tap = [(at(16.25) + timedelta(minutes=15 * i), 90.0) for i in range(6)]
    flow = e.process(list(readings(at(16.25), at(18.5), tap, register=106.0)))
    assert [f.detector for f in flow if f.kind is AlertKind.CONTINUOUS_FLOW and f.action is FindingAction.RAISE] == [
        "flow_running"
    ]
    [stopped] = [f for f in flow if f.action is FindingAction.PRESENCE]
    assert (stopped.kind, stopped.details, stopped.at) == (
        AlertKind.CONTINUOUS_FLOW,
        {"signal": "flow_stopped"},
        at(17.75),
    )


@pytest.mark.parametrize(
    ("step_min", "lead_s", "quiet_h"), [(15, 0, 12), (15, 1200, 11.5), (60, 1200, 11), (15, 3600, 11)]
)
def test_the_check_in_lead_raises_the_backstop_earlier_on_the_meters_grid(
    step_min: int, lead_s: float, quiet_h: float
) -> None:
    """Raised at the last reading before 12 h less the lead, so that with nobody answering the check-in
    the page still comes within 12 h of a use seen at the start of its interval (a fall right after)."""
    e = engine(settings=HouseholdSettings(checkin_lead_s=lead_s))
    found = inactivity(e.process(list(readings(at(20), at(36), [(at(21), 20.0)], step_min=step_min))))
    [f] = found
    start = at(21) - timedelta(minutes=step_min)
    assert (f.at, f.detected_at) == (start, start + timedelta(hours=quiet_h))
    assert f.detected_at + timedelta(seconds=lead_s) <= start + timedelta(hours=12)
    text = english(f.evidence)
    assert text.startswith("no water used for 12 h")  # the window it keeps; quiet_s how much has passed
    assert f.evidence.message.quiet_s == (f.detected_at - start).total_seconds()  # type: ignore[union-attr]
    # The program rule stays exactly as the programs write it.
    p = engine(PROGRAM, HouseholdSettings(checkin_lead_s=lead_s))
    [g] = inactivity(p.process(list(readings(at(20), at(36), [(at(21), 20.0)], step_min=step_min))))
    assert g.detected_at == at(33)


def test_an_away_until_use_absence_ends_at_the_first_use_or_press_bounded_by_its_end() -> None:
    away = Period(at(22), at(22 + 72), "away", until_use=True)
    # The resident comes back at 18:00 next day and uses water: the absence is over from there.
    e = engine(settings=HouseholdSettings(away=(away,)))
    e.process(list(readings(at(20), at(21), [(at(21), 20.0)])))
    back = e.process(list(readings(at(21.25), at(60), [(at(42), 5.0)], register=120.0)))
    assert [f.at for f in inactivity(back)] == [at(41.75)]  # 12 h after that use, inside the 72 h
    # Or a press ends it.
    e = engine(settings=HouseholdSettings(away=(away,)))
    e.process(list(readings(at(20), at(21), [(at(21), 20.0)])))
    e.process([event("service_request", at(30))])
    assert [f.at for f in inactivity(e.process(list(readings(at(21.25), at(44), register=120.0))))] == [at(30)]
    # Nobody comes back: suppressed for the 72 h, then counted from their end.
    e = engine(settings=HouseholdSettings(away=(away,)))
    e.process(list(readings(at(20), at(21), [(at(21), 20.0)])))
    gone = inactivity(e.process(list(readings(at(21.25), at(108), register=120.0))))
    assert [(f.at, f.detected_at) for f in gone] == [(at(94), at(106))]


def test_settings_json_accepts_the_check_in_policy_and_until_use_periods() -> None:
    raw = {
        "checkin": {"inactivity": {"wait_s": 600}},
        "away": [{"start": at(22).isoformat(), "end": at(94).isoformat(), "reason": "away", "until_use": True}],
    }
    settings = HouseholdSettings.from_json(raw)
    assert settings.away == (Period(at(22), at(94), "away", until_use=True),)
    assert settings.checkin_lead_s == 0.0  # the runner sets it from the policy
    assert HouseholdSettings.from_json(settings.to_json()) == settings
    with pytest.raises(ValueError, match="unknown household settings"):
        HouseholdSettings.from_json({"checkins": {}})


def test_a_resolved_routine_alert_rearms_the_backstop_from_the_resolution() -> None:
    e = engine()
    e.process(list(readings(at(20), at(21), [(at(21), 20.0)])))
    e.process(list(readings(at(21.25), at(26), register=120.0)))
    # The routine's alert was answered at 03:00 (the resident is fine): 12 h more from there.
    e.alert_closed(AlertClosure(HH, AlertKind.ROUTINE_MISSED, "m1", at(27)))
    [f] = inactivity(e.process(list(readings(at(26.25), at(40), register=120.0))))
    assert (f.at, f.detected_at) == (at(27), at(39))
    # Any other kind leaves the windows alone.
    e = engine()
    e.process(list(readings(at(20), at(21), [(at(21), 20.0)])))
    e.alert_closed(AlertClosure(HH, AlertKind.SOS, "c1", at(27)))
    [g] = inactivity(e.process(list(readings(at(21.25), at(40), register=120.0))))
    assert g.at == at(20.75)
