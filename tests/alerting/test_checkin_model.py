"""The evaluation's model of alerts through the check-in (alerting/checkin_model.py): pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from alerting.checkin_model import CheckinChain
from schemas.findings import AlertClosure, Finding, FindingAction
from schemas.kinds import AlertKind, Severity

T0 = datetime(2026, 1, 5, 8, tzinfo=UTC)


def finding(kind: AlertKind, minutes: float, action: FindingAction = FindingAction.RAISE, **details: str) -> Finding:
    at = T0 + timedelta(minutes=minutes)
    return Finding(kind, Severity.HIGH, "h1", "m1", at, at, "evidence", "backstop:flat_12h", action, dict(details))


def chains(n: int, fallen_at: datetime | None = None) -> list[CheckinChain]:
    out = []
    for seed in range(n):
        chain = CheckinChain("h1", random.Random(seed), fallen_at=fallen_at)
        chain.finding(finding(AlertKind.INACTIVITY, 0), T0)
        out.append(chain)
    return out


def test_a_fine_resident_answers_per_the_fixed_model_and_the_rest_page_after_the_last_attempt() -> None:
    outcomes = []
    for chain in chains(4000):
        closures = chain.settle(T0 + timedelta(hours=1))
        [alert] = chain.alerts
        outcomes.append(alert.outcome)
        if alert.outcome == "answered":
            assert alert.resolved_at is not None
            assert T0 < alert.resolved_at < T0 + timedelta(minutes=20)
            assert closures == [AlertClosure("h1", AlertKind.INACTIVITY, None, alert.resolved_at)]
        else:
            assert alert.paged_at == T0 + timedelta(minutes=20)  # two attempts of 10 min each
            assert closures == []  # resolved by the caregiver later
    paged = outcomes.count("paged") / len(outcomes)
    assert 0.08 < paged < 0.12  # (1 - 0.8) x (1 - 0.5)


def test_a_fallen_resident_never_answers_and_a_sign_of_life_answers_at_once() -> None:
    for chain in chains(200, fallen_at=T0 - timedelta(hours=1)):
        chain.settle(T0 + timedelta(hours=1))
        assert chain.alerts[0].paged_at == T0 + timedelta(minutes=20)
    [chain] = chains(1, fallen_at=T0 - timedelta(hours=1))
    chain.finding(finding(AlertKind.INACTIVITY, 5, FindingAction.PRESENCE, signal="water"), T0 + timedelta(minutes=5))
    assert chain.settle(T0 + timedelta(hours=1)) == [
        AlertClosure("h1", AlertKind.INACTIVITY, None, T0 + timedelta(minutes=5))
    ]
    assert chain.alerts[0].outcome == "sign_of_life"


def test_one_alert_per_kind_findings_attach_and_a_flow_stop_does_not_answer_inactivity() -> None:
    [chain] = chains(1, fallen_at=T0)
    chain.finding(finding(AlertKind.INACTIVITY, 3), T0 + timedelta(minutes=3))
    stop = finding(AlertKind.CONTINUOUS_FLOW, 4, FindingAction.PRESENCE, signal="flow_stopped")
    chain.finding(stop, T0 + timedelta(minutes=4))
    chain.finding(finding(AlertKind.ROUTINE_MISSED, 5), T0 + timedelta(minutes=5))
    chain.settle(T0 + timedelta(hours=3))
    assert [(a.kind, a.occurrences, a.outcome) for a in chain.alerts] == [
        (AlertKind.INACTIVITY, 2, "paged"),
        (AlertKind.ROUTINE_MISSED, 1, "paged"),
    ]
    # Paged alerts are resolved by the caregiver two hours on; the next finding opens a new alert.
    assert chain.settle(T0 + timedelta(hours=3)) == []
    assert [a.resolved_at for a in chain.alerts] == [T0 + timedelta(minutes=140), T0 + timedelta(minutes=145)]
    chain.finding(finding(AlertKind.INACTIVITY, 200), T0 + timedelta(minutes=200))
    assert len(chain.alerts) == 3


def test_emergencies_page_at_once() -> None:
    chain = CheckinChain("h1", random.Random(1))
    chain.finding(finding(AlertKind.SOS, 0), T0)
    assert (chain.alerts[0].outcome, chain.alerts[0].paged_at, chain.alerts[0].checked_in) == ("paged", T0, False)
