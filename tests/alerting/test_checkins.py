"""Resident check-ins in the alerting service, on the real database (alerting/checkins.py).

Each test opens an alert in a household with a call button and a resident phone, then moves a hand
clock through the check-in: attempts, answers, signs of life, the page when nobody answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerting import checkins
from alerting.away import raise_away_followups
from alerting.service import AlertingConfig, apply_findings, claim_alert, escalate_due, resolve_alert
from schemas.findings import Finding, FindingAction, PresenceSignal
from schemas.kinds import AlertKind, CheckinAnswer, Outcome
from storage import service_levels
from tests.alerting.helpers import T0, Clock, Member, finding, open_alert, provision, timeline_actions

pytestmark = pytest.mark.services

CONFIG = AlertingConfig()
WAIT = timedelta(minutes=10)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        # Each test starts with no alerts: the escalation pass below is fleet-wide.
        connection.execute("TRUNCATE alerts CASCADE")
        yield connection


def home(
    conn: psycopg.Connection, *, button: bool = True, phone: bool = True, settings: dict[str, Any] | None = None
) -> str:
    household = f"hh-{uuid.uuid4().hex[:8]}"
    provision(
        conn, household, [Member(f"vol-{household}", "volunteer", 1, webhook_url="http://127.0.0.1:9/x", secret="s")]
    )
    if settings is not None:
        conn.execute("UPDATE households SET settings = %s WHERE household_id = %s", (Jsonb(settings), household))
    if button:
        conn.execute(
            "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s)"
            " VALUES (%s, 'call_button', %s, 3600)",
            (f"{household}-btn", household),
        )
    conn.execute(
        "INSERT INTO residents (resident_id, household_id, name, phone) VALUES (%s, %s, 'resident', %s)",
        (f"res-{household}", household, "13800138000" if phone else ""),
    )
    return household


def outbox(conn: psycopg.Connection, alert_id: int) -> list[tuple[Any, ...]]:
    """(channel, caregiver or None, check-in attempt or None, status) of every outbox row, in order."""
    return conn.execute(
        "SELECT channel, caregiver_id, (body ->> 'attempt')::int, status FROM notifications WHERE alert_id = %s"
        " ORDER BY notification_id",
        (alert_id,),
    ).fetchall()


def alert(conn: psycopg.Connection, alert_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT status, outcome, resolved_by, evidence, paged_at, next_escalation_at FROM alerts WHERE alert_id = %s",
        (alert_id,),
    ).fetchone()
    assert row is not None
    return dict(
        zip(("status", "outcome", "resolved_by", "evidence", "paged_at", "next_escalation_at"), row, strict=True)
    )


def checkin_of(conn: psycopg.Connection, alert_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT checkin_id, status, attempt, answer, answered_via FROM checkins WHERE alert_id = %s", (alert_id,)
    ).fetchone()
    assert row is not None
    return dict(zip(("checkin_id", "status", "attempt", "answer", "answered_via"), row, strict=True))


def tick(conn: psycopg.Connection, now: datetime) -> int:
    with conn.transaction():
        return escalate_due(conn, now, CONFIG)


def presence(household: str, signal: PresenceSignal, at: datetime, **details: str) -> Finding:
    return Finding(
        kind=AlertKind.CONTINUOUS_FLOW if signal is PresenceSignal.FLOW_STOPPED else AlertKind.INACTIVITY,
        severity=finding(household).severity,
        household_id=household,
        device_id=None,
        at=at,
        detected_at=at,
        evidence=f"{signal.value} at {at:%H:%M}",
        detector="presence",
        action=FindingAction.PRESENCE,
        details={"signal": signal.value, **details},
    )


def test_an_inactivity_alert_asks_the_resident_by_button_and_phone_and_pages_nobody(conn: psycopg.Connection) -> None:
    household = home(conn)
    alert_id = open_alert(conn, finding(household, AlertKind.INACTIVITY), T0, CONFIG)
    assert alert(conn, alert_id)["status"] == "checking_in"
    assert alert(conn, alert_id)["next_escalation_at"] == T0 + WAIT
    assert alert(conn, alert_id)["paged_at"] is None
    assert outbox(conn, alert_id) == [("button", None, 1, "pending"), ("voice", None, 1, "pending")]
    body = conn.execute(
        "SELECT body FROM notifications WHERE alert_id = %s AND channel = 'voice'", (alert_id,)
    ).fetchone()
    assert body is not None
    assert body[0]["text"].startswith("您好，这里是社区平安守护")  # the resident's language
    assert timeline_actions(conn, alert_id) == ["opened", "checkin"]


def test_nobody_answering_two_attempts_pages_the_care_plan_with_the_check_in_history(conn: psycopg.Connection) -> None:
    household = home(conn)
    alert_id = open_alert(conn, finding(household, AlertKind.INACTIVITY), T0, CONFIG)
    assert tick(conn, T0 + WAIT - timedelta(seconds=1)) == 0
    assert tick(conn, T0 + WAIT) == 1  # attempt 2
    assert checkin_of(conn, alert_id)["attempt"] == 2
    assert [row[:3] for row in outbox(conn, alert_id)][2:] == [("button", None, 2), ("voice", None, 2)]
    assert alert(conn, alert_id)["status"] == "checking_in"
    assert tick(conn, T0 + 2 * WAIT) == 1  # no answer to either: the page
    state = alert(conn, alert_id)
    assert state["status"] == "open"
    assert state["paged_at"] == T0 + 2 * WAIT
    # The history in the household's time (Asia/Shanghai: 02:00Z is 10:00).
    assert (
        "checked in with the resident at 10:00 by call button and phone call"
        "; at 10:10 by call button and phone call: no answer"
    ) in state["evidence"]
    assert [row[:2] for row in outbox(conn, alert_id)][4:] == [("webhook", f"vol-{household}")]
    assert checkin_of(conn, alert_id)["status"] == "unanswered"
    assert timeline_actions(conn, alert_id)[-2:] == ["checkin_ended", "notify"]


def test_an_ok_resolves_the_alert_as_resident_ok_withdraws_the_rest_and_pages_nobody(conn: psycopg.Connection) -> None:
    household = home(conn)
    alert_id = open_alert(conn, finding(household, AlertKind.ROUTINE_MISSED), T0, CONFIG)
    checkin_id = checkin_of(conn, alert_id)["checkin_id"]
    conn.execute("UPDATE notifications SET status = 'sent' WHERE alert_id = %s AND channel = 'button'", (alert_id,))
    with conn.transaction():
        result = checkins.answer(
            conn, checkin_id, CheckinAnswer.OK, "voice", T0 + timedelta(minutes=3), T0 + timedelta(minutes=3), CONFIG
        )
    assert result == "resolved"
    state = alert(conn, alert_id)
    assert (state["status"], state["outcome"], state["resolved_by"], state["paged_at"]) == (
        "resolved", "resident_ok", "resident", None,
    )  # fmt: skip
    assert outbox(conn, alert_id) == [("button", None, 1, "sent"), ("voice", None, 1, "cancelled")]
    assert checkin_of(conn, alert_id) | {"checkin_id": ""} == {
        "checkin_id": "", "status": "answered", "attempt": 1, "answer": "ok", "answered_via": "voice",
    }  # fmt: skip
    # A second callback for the same answer changes nothing.
    with conn.transaction():
        assert (
            checkins.answer(conn, checkin_id, CheckinAnswer.OK, "voice", T0, T0 + timedelta(minutes=4), CONFIG)
            == "late"
        )
    assert tick(conn, T0 + 3 * WAIT) == 0


def test_help_pages_at_once_and_a_late_ok_is_only_noted(conn: psycopg.Connection) -> None:
    household = home(conn)
    alert_id = open_alert(conn, finding(household, AlertKind.INACTIVITY), T0, CONFIG)
    checkin_id = checkin_of(conn, alert_id)["checkin_id"]
    at = T0 + timedelta(minutes=2)
    with conn.transaction():
        assert checkins.answer(conn, checkin_id, CheckinAnswer.HELP, "voice", at, at, CONFIG) == "paged"
    state = alert(conn, alert_id)
    assert state["status"] == "open"
    assert "the resident asked for help (by phone call, 10:02)" in state["evidence"]
    assert outbox(conn, alert_id)[-1][:2] == ("webhook", f"vol-{household}")
    with conn.transaction():
        assert checkins.answer(conn, checkin_id, CheckinAnswer.OK, "voice", at, at, CONFIG) == "late"
    assert alert(conn, alert_id)["status"] == "open"  # a person closes a paged alert


def test_away_resolves_as_away_and_announces_an_absence_until_water_is_used(conn: psycopg.Connection) -> None:
    household = home(conn)
    alert_id = open_alert(conn, finding(household, AlertKind.INACTIVITY), T0, CONFIG)
    with conn.transaction():
        checkins.answer(
            conn, checkin_of(conn, alert_id)["checkin_id"], CheckinAnswer.AWAY, "resident_sms", T0, T0, CONFIG
        )
    assert alert(conn, alert_id)["outcome"] == "away"
    row = conn.execute("SELECT settings -> 'away' FROM households WHERE household_id = %s", (household,)).fetchone()
    assert row is not None
    [period] = row[0]
    assert (period["until_use"], datetime.fromisoformat(period["end"]) - datetime.fromisoformat(period["start"])) == (
        True, timedelta(hours=72),
    )  # fmt: skip
    # A day later, still away: a daily check-in of its own.
    with conn.transaction():
        assert raise_away_followups(conn, T0 + timedelta(hours=23), CONFIG) == 0
        assert raise_away_followups(conn, T0 + timedelta(hours=24), CONFIG) == 1
        assert raise_away_followups(conn, T0 + timedelta(hours=25), CONFIG) == 0
    [(followup, status)] = conn.execute(
        "SELECT alert_id, status FROM alerts WHERE household_id = %s AND detector = 'away_followup'", (household,)
    ).fetchall()
    assert status == "checking_in"
    # Water used on day 2: the resident is back, the absence ends there (and answers the follow-up).
    back = T0 + timedelta(hours=30)
    with conn.transaction():
        apply_findings(conn, [presence(household, PresenceSignal.WATER, back)], back, CONFIG)
    row = conn.execute("SELECT settings -> 'away' FROM households WHERE household_id = %s", (household,)).fetchone()
    assert row is not None
    assert datetime.fromisoformat(row[0][0]["end"]) == back
    assert alert(conn, followup)["outcome"] == "resident_ok"


@pytest.mark.parametrize(
    ("signal", "kind", "answers"),
    [
        (PresenceSignal.WATER, AlertKind.INACTIVITY, True),
        (PresenceSignal.PRESS, AlertKind.INACTIVITY, True),
        (PresenceSignal.SMOKE, AlertKind.ROUTINE_MISSED, True),
        (PresenceSignal.PRESS, AlertKind.CONTINUOUS_FLOW, True),
        (PresenceSignal.FLOW_STOPPED, AlertKind.CONTINUOUS_FLOW, True),
        (PresenceSignal.WATER, AlertKind.CONTINUOUS_FLOW, False),  # water is no answer to a running tap
        (PresenceSignal.FLOW_STOPPED, AlertKind.INACTIVITY, False),
    ],
)
def test_signs_of_life_answer_the_check_ins_they_fit(
    conn: psycopg.Connection, signal: PresenceSignal, kind: AlertKind, answers: bool
) -> None:
    household = home(conn)
    alert_id = open_alert(conn, finding(household, kind), T0, CONFIG)
    at = T0 + timedelta(minutes=4)
    with conn.transaction():
        apply_findings(conn, [presence(household, signal, at)], at, CONFIG)
    state = alert(conn, alert_id)
    assert (state["status"], state["outcome"]) == (("resolved", "resident_ok") if answers else ("checking_in", None))
    if answers:
        assert checkin_of(conn, alert_id)["answered_via"] == signal.value


def test_a_checkin_ok_press_names_its_check_in_and_also_answers_the_homes_other_check_ins(
    conn: psycopg.Connection,
) -> None:
    household = home(conn)
    routine = open_alert(conn, finding(household, AlertKind.ROUTINE_MISSED), T0, CONFIG)
    inactivity = open_alert(conn, finding(household, AlertKind.INACTIVITY), T0 + timedelta(minutes=1), CONFIG)
    named = checkin_of(conn, inactivity)["checkin_id"]
    at = T0 + timedelta(minutes=2)
    with conn.transaction():
        apply_findings(conn, [presence(household, PresenceSignal.PRESS, at, checkin_id=named)], at, CONFIG)
    # Answered by the button's checkin_ok, and the routine check-in waiting beside it with it.
    assert checkin_of(conn, inactivity)["answered_via"] == "button"
    assert checkin_of(conn, routine)["answered_via"] == "button"
    assert {alert(conn, a)["outcome"] for a in (routine, inactivity)} == {"resident_ok"}


def test_a_sign_of_life_after_the_page_is_noted_for_the_caregiver_not_resolved(conn: psycopg.Connection) -> None:
    household = home(conn)
    alert_id = open_alert(conn, finding(household, AlertKind.INACTIVITY), T0, CONFIG)
    tick(conn, T0 + WAIT)
    tick(conn, T0 + 2 * WAIT)
    at = T0 + timedelta(minutes=25)
    with conn.transaction():
        apply_findings(conn, [presence(household, PresenceSignal.WATER, at)], at, CONFIG)
    assert alert(conn, alert_id)["status"] == "open"
    assert timeline_actions(conn, alert_id)[-1] == "note"


def test_emergencies_never_check_in_and_a_household_may_turn_check_ins_off(conn: psycopg.Connection) -> None:
    household = home(conn)
    sos = open_alert(conn, finding(household, AlertKind.SOS), T0, CONFIG)
    smoke = open_alert(conn, finding(household, AlertKind.SMOKE), T0, CONFIG)
    assert {alert(conn, a)["status"] for a in (sos, smoke)} == {"open"}
    assert {row[0] for a in (sos, smoke) for row in outbox(conn, a)} == {"webhook"}
    off = home(conn, settings={"checkin": {"inactivity": {"enabled": False}}})
    paged = open_alert(conn, finding(off, AlertKind.INACTIVITY), T0, CONFIG)
    assert alert(conn, paged)["status"] == "open"
    assert alert(conn, paged)["paged_at"] == T0


def test_a_home_where_the_resident_cannot_be_reached_pages_at_once(conn: psycopg.Connection) -> None:
    household = home(conn, button=False, phone=False)
    alert_id = open_alert(conn, finding(household, AlertKind.INACTIVITY), T0, CONFIG)
    assert alert(conn, alert_id)["status"] == "open"
    assert timeline_actions(conn, alert_id) == ["opened", "note", "notify"]
    # Phone only: the button channel is skipped, the phone used.
    phone_only = home(conn, button=False)
    alert_id = open_alert(conn, finding(phone_only, AlertKind.INACTIVITY), T0, CONFIG)
    assert outbox(conn, alert_id) == [("voice", None, 1, "pending")]


def test_every_delivery_of_an_attempt_dying_pages_now(conn: psycopg.Connection) -> None:
    household = home(conn)
    alert_id = open_alert(conn, finding(household, AlertKind.INACTIVITY), T0, CONFIG)
    checkin_id = checkin_of(conn, alert_id)["checkin_id"]
    at = T0 + timedelta(minutes=1)
    conn.execute("UPDATE notifications SET status = 'dead' WHERE alert_id = %s AND channel = 'button'", (alert_id,))
    with conn.transaction():
        checkins.delivery_died(conn, alert_id, checkin_id, at, CONFIG)
    assert alert(conn, alert_id)["status"] == "checking_in"  # the phone call may still reach them
    conn.execute("UPDATE notifications SET status = 'dead' WHERE alert_id = %s AND channel = 'voice'", (alert_id,))
    with conn.transaction():
        checkins.delivery_died(conn, alert_id, checkin_id, at, CONFIG)
    state = alert(conn, alert_id)
    assert state["status"] == "open"
    assert "the resident could not be reached" in state["evidence"]


def test_a_person_claiming_or_resolving_during_the_check_in_ends_it(conn: psycopg.Connection) -> None:
    clock = Clock()
    household = home(conn)
    claimed = open_alert(conn, finding(household, AlertKind.INACTIVITY), clock(), CONFIG)
    with conn.transaction():
        claim_alert(conn, claimed, f"vol-{household}", clock.advance(minutes=1), CONFIG)
    assert checkin_of(conn, claimed)["status"] == "cancelled"
    assert alert(conn, claimed)["paged_at"] == clock()
    other = home(conn)
    resolved = open_alert(conn, finding(other, AlertKind.ROUTINE_MISSED), clock(), CONFIG)
    with conn.transaction():
        resolve_alert(conn, resolved, "op", Outcome.RESIDENT_OK, "phoned her", clock.advance(minutes=1))
    assert checkin_of(conn, resolved)["status"] == "cancelled"
    assert [row[3] for row in outbox(conn, resolved)] == ["cancelled", "cancelled"]
    assert tick(conn, clock.advance(hours=1)) == 0


def test_service_levels_count_pages_and_check_ins_and_time_pages_from_the_page(conn: psycopg.Connection) -> None:
    answered_home, silent_home = home(conn), home(conn)
    answered = open_alert(conn, finding(answered_home, AlertKind.INACTIVITY), T0, CONFIG)
    silent = open_alert(conn, finding(silent_home, AlertKind.INACTIVITY), T0, CONFIG)
    sos = open_alert(conn, finding(answered_home, AlertKind.SOS), T0, CONFIG)
    with conn.transaction():
        checkins.answer(conn, checkin_of(conn, answered)["checkin_id"], CheckinAnswer.OK, "voice", T0, T0, CONFIG)
    tick(conn, T0 + WAIT)
    tick(conn, T0 + 2 * WAIT)  # the silent home's check-in ends: paged at T0 + 20 min
    with conn.transaction():
        claim_alert(conn, silent, f"vol-{silent_home}", T0 + 2 * WAIT + timedelta(minutes=5), CONFIG)
        claim_alert(conn, sos, f"vol-{answered_home}", T0 + timedelta(seconds=40), CONFIG)
    [row] = service_levels.service_levels(
        conn, since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1), group_by="district"
    )
    assert {key: row[key] for key in ("alerts", "pages", "checkins", "checkins_ok", "checkins_unanswered")} == {
        "alerts": 3, "pages": 2, "checkins": 2, "checkins_ok": 1, "checkins_unanswered": 1,
    }  # fmt: skip
    # The silent home's alert was claimed 5 min after its page (not 25 min after it opened): within 15 min.
    assert (row["high"], row["high_900"], row["critical"], row["critical_60"]) == (1, 1, 1, 1)
