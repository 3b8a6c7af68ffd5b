"""The alerting API: full care plans (medical notes by role), visits and overdue-visit tasks, decline,
service levels per district and caregiver, outcomes per detector, dead deliveries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from alerting.service import AlertingConfig, claim_alert, resolve_alert
from alerting.visits import raise_overdue_visits
from api.auth import create_token
from schemas.kinds import AlertKind, Outcome
from storage import outbox
from tests.alerting.helpers import Member, finding, open_alert, provision
from tests.api.world import serve

CONFIG = AlertingConfig()
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as connection:
        provision(
            connection,
            "hh-api",
            [
                Member("api-fam", "family", 1, "http://127.0.0.1:9/hook", "s" * 16, email="fam@example.org"),
                Member("api-vol", "volunteer", 1, "http://127.0.0.1:9/hook", "s" * 16),
                Member("api-sup", "supervisor", 3),
            ],
            district="Jingan",
        )
        connection.execute(
            "INSERT INTO residents (resident_id, household_id, name, medical_notes) VALUES"
            " ('res-api', 'hh-api', 'Zhang Nainai', 'warfarin; pacemaker')"
        )
        yield connection


@pytest.fixture(scope="module")
def tokens(conn: psycopg.Connection) -> dict[str, str]:
    with conn.transaction():
        return {
            "admin": create_token(conn, "admin", "adm"),
            "op": create_token(conn, "operator", "op-j", "Jingan"),
            "op-other": create_token(conn, "operator", "op-x", "Xuhui"),
            "fam": create_token(conn, "caregiver", "api-fam"),
            "vol": create_token(conn, "caregiver", "api-vol"),
        }


@pytest.fixture(scope="module")
def client(database_url: str, conn: psycopg.Connection) -> Iterator[httpx.Client]:
    # The API tests' live server (uvicorn in a thread): the app exactly as deployed, auth included.
    with serve(database_url, alerting=CONFIG) as served, httpx.Client(base_url=served.url + "/api/v1") as http:
        yield http


def auth(tokens: dict[str, str], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[who]}"}


PLAN = {
    "visit_interval_days": 30,
    "access_notes": "key with the neighbour in 302",
    "contacts": [
        {"caregiver_id": "api-fam", "role": "family", "channels": ["webhook", "email"]},
        {
            "caregiver_id": "api-vol",
            "role": "volunteer",
            "keyholder": True,
            "access_notes": "has a key",
            "working_hours": {"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "20:00"},
        },
        {"caregiver_id": "api-sup", "role": "supervisor", "medical_access": False},
    ],
}


def test_care_plan_roundtrip_and_medical_notes_by_role(client: httpx.Client, tokens: dict[str, str]) -> None:
    assert client.put("/care-plans/hh-api", json=PLAN, headers=auth(tokens, "vol")).status_code == 403
    assert client.put("/care-plans/hh-api", json=PLAN, headers=auth(tokens, "op-other")).status_code == 404
    written = client.put("/care-plans/hh-api", json=PLAN, headers=auth(tokens, "op"))
    assert written.status_code == 200, written.text
    plan = written.json()
    assert [(c["caregiver_id"], c["tier"]) for c in plan["contacts"]] == [
        ("api-fam", 1),
        ("api-vol", 1),
        ("api-sup", 3),
    ]
    assert plan["contacts"][1]["keyholder"] is True
    assert plan["contacts"][1]["working_hours"]["start"] == "08:00:00"
    assert plan["residents"][0]["medical_notes"] == "warfarin; pacemaker"
    as_family = client.get("/care-plans/hh-api", headers=auth(tokens, "fam")).json()
    as_volunteer = client.get("/care-plans/hh-api", headers=auth(tokens, "vol")).json()
    assert as_family["residents"][0]["medical_notes"] == "warfarin; pacemaker"
    assert as_volunteer["residents"][0]["medical_notes"] is None
    mine = client.get("/caregivers/api-vol/households", headers=auth(tokens, "vol")).json()
    assert [(h["household_id"], h["role"], h["keyholder"]) for h in mine] == [("hh-api", "volunteer", True)]
    duplicate = {**PLAN, "contacts": [PLAN["contacts"][0], PLAN["contacts"][0]]}  # type: ignore[index]
    assert client.put("/care-plans/hh-api", json=duplicate, headers=auth(tokens, "admin")).status_code == 422


def test_overdue_visit_becomes_a_task_and_a_visit_closes_it(
    client: httpx.Client, tokens: dict[str, str], conn: psycopg.Connection
) -> None:
    with conn.transaction():
        assert raise_overdue_visits(conn, NOW + timedelta(days=29), CONFIG) == 0
    with conn.transaction():
        assert raise_overdue_visits(conn, NOW + timedelta(days=31), CONFIG) == 1
    with conn.transaction():
        assert raise_overdue_visits(conn, NOW + timedelta(days=32), CONFIG) == 0  # one open task only
    task = conn.execute("SELECT alert_id, severity, evidence FROM alerts WHERE kind = 'visit_overdue'").fetchone()
    assert task is not None
    assert task[1] == "normal"
    assert "no home visit logged" in task[2]
    forged = client.post("/households/hh-api/visits", json={"caregiver_id": "api-fam"}, headers=auth(tokens, "vol"))
    assert forged.status_code == 403
    logged = client.post(
        "/households/hh-api/visits", json={"caregiver_id": "api-vol", "note": "all well"}, headers=auth(tokens, "vol")
    )
    assert logged.status_code == 201, logged.text
    status = conn.execute("SELECT status, outcome, resolved_by FROM alerts WHERE alert_id = %s", (task[0],)).fetchone()
    assert status == ("resolved", "other", "api-vol")
    visits = client.get("/households/hh-api/visits", headers=auth(tokens, "fam")).json()
    assert [v["note"] for v in visits] == ["all well"]


def test_decline_through_the_api(client: httpx.Client, tokens: dict[str, str], conn: psycopg.Connection) -> None:
    alert_id = open_alert(conn, finding("hh-api", AlertKind.SMOKE, NOW), NOW, CONFIG)
    forged = client.post(f"/alerts/{alert_id}/decline", json={"caregiver_id": "api-fam"}, headers=auth(tokens, "vol"))
    assert forged.status_code == 403
    answer = client.post(f"/alerts/{alert_id}/decline", json={"caregiver_id": "api-vol"}, headers=auth(tokens, "vol"))
    assert answer.json() == {"alert_id": alert_id, "declined_by": "api-vol", "escalated": False}
    answer = client.post(f"/alerts/{alert_id}/decline", json={"caregiver_id": "api-fam"}, headers=auth(tokens, "fam"))
    assert answer.json()["escalated"] is True  # everyone at step 0 declined: the supervisor is next
    declines = conn.execute(
        "SELECT subject, resource_id FROM audit_log WHERE action = 'decline' ORDER BY audit_id"
    ).fetchall()
    assert declines == [("api-vol", str(alert_id)), ("api-fam", str(alert_id))]  # every write is audited
    deliveries = client.get(f"/alerts/{alert_id}/deliveries", headers=auth(tokens, "op")).json()
    assert {(d["caregiver_id"], d["channel"], d["level"]) for d in deliveries} >= {
        ("api-fam", "webhook", 0),
        ("api-fam", "email", 0),
        ("api-vol", "webhook", 0),
    }
    assert client.get(f"/alerts/{alert_id}/deliveries", headers=auth(tokens, "op-other")).status_code == 404
    with conn.transaction():
        resolve_alert(conn, alert_id, "api-sup", Outcome.FALSE_ALARM_DEVICE, "steam from the kitchen", NOW)


def _answered(conn: psycopg.Connection, kind: AlertKind, household: str, claim_after_s: float, outcome: Outcome) -> int:
    opened = NOW - timedelta(hours=1)
    alert_id = open_alert(conn, finding(household, kind, opened), opened, CONFIG)
    with conn.transaction():
        outbox.mark_alert_notified(conn, alert_id, opened + timedelta(seconds=2))
        claim_alert(conn, alert_id, "api-fam", opened + timedelta(seconds=claim_after_s), CONFIG)
        resolve_alert(conn, alert_id, "api-fam", outcome, "", opened + timedelta(seconds=claim_after_s + 600))
    return alert_id


def test_service_levels_outcomes_and_dead_deliveries(
    client: httpx.Client, tokens: dict[str, str], conn: psycopg.Connection
) -> None:
    _answered(conn, AlertKind.SOS, "hh-api", 45, Outcome.NEEDED_HELP)
    _answered(conn, AlertKind.SOS, "hh-api", 120, Outcome.RESIDENT_OK)
    _answered(conn, AlertKind.INACTIVITY, "hh-api", 600, Outcome.AWAY)
    since = (NOW - timedelta(hours=2)).isoformat()
    until = (NOW - timedelta(minutes=1)).isoformat()
    by_district = client.get(
        "/service-levels", params={"since": since, "until": until}, headers=auth(tokens, "op")
    ).json()
    (row,) = by_district["rows"]
    assert (row["group"], row["critical"], row["high"]) == ("Jingan", 2, 1)
    assert (row["critical_claimed_60s"], row["critical_claimed_180s"], row["high_claimed_15min"]) == (0.5, 1.0, 1.0)
    assert row["median_to_first_notification_s"] == 2.0
    assert row["median_to_claim_s"] == 120.0
    by_caregiver = client.get(
        "/service-levels",
        params={"since": since, "until": until, "group_by": "caregiver"},
        headers=auth(tokens, "admin"),
    ).json()
    assert {r["group"]: r["critical"] for r in by_caregiver["rows"]} == {"api-fam": 2, "api-vol": 2}
    other = client.get("/service-levels", params={"since": since, "until": until}, headers=auth(tokens, "op-other"))
    assert other.json()["rows"] == []
    assert client.get("/service-levels", headers=auth(tokens, "fam")).status_code == 403

    outcomes = {o["detector"]: o for o in client.get("/service-levels/outcomes", headers=auth(tokens, "op")).json()}
    assert outcomes["test"]["outcomes"] == {"needed_help": 1, "resident_ok": 1, "away": 1, "false_alarm_device": 1}
    assert outcomes["test"]["false_alarm_rate"] == 0.75
    assert outcomes["visits"]["false_alarm_rate"] is None

    pending = conn.execute("SELECT notification_id FROM notifications WHERE status = 'pending' LIMIT 1").fetchone()
    assert pending is not None
    with conn.transaction():
        outbox.record_attempt(conn, pending[0], 1, NOW, False, "HTTP 500")
        outbox.mark_dead(conn, pending[0], 1, "HTTP 500")
    dead = client.get("/deliveries/dead", headers=auth(tokens, "op")).json()
    assert [(d["notification_id"], d["status"], d["attempt_log"][0]["detail"]) for d in dead] == [
        (pending[0], "dead", "HTTP 500")
    ]
    assert client.get("/deliveries/dead", headers=auth(tokens, "op-other")).json() == []
