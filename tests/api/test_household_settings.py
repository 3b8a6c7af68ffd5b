"""Per-household detector settings through the API: exact bodies, what is stored (and that the
detectors' own reader accepts it), validation as 422 problems, each role's rule, and the audit rows.

World (``tests.api.world``): ``hh-a1`` (Changning; cg-fam, cg-vol), ``hh-a2`` (Changning), ``hh-b1``
(Putuo; cg-b). This module's database is its own, so the settings written here stay here.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import psycopg

from detectors.config import HouseholdSettings, Period, QuietWindow
from tests.api.world import Served, World

V1 = "/api/v1"
SOON = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)

DEFAULTS: dict[str, Any] = {
    "flat_min_litres": None,
    "flat_window_h": None,
    "daily_max_l": None,
    "routine_enabled": True,
    "away": [],
    "quiet": [],
}
SETTINGS = {
    "flat_min_litres": 8.0,
    "flat_window_h": 10.0,
    "daily_max_l": 1500.0,
    "routine_enabled": False,
    # Given in Shanghai time; stored and answered in UTC.
    "away": [{"start": "2030-02-01T09:00:00+08:00", "end": "2030-02-08T18:00:00+08:00", "reason": "away"}],
    "quiet": [{"start": "22:30", "end": "06:45"}],
}


def call(server: Served, token: str, method: str, path: str, body: object = None) -> httpx.Response:
    with server.client(token) as client:
        response = client.request(method, V1 + path, json=body)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    return response


def stored(database_url: str, household_id: str) -> dict[str, Any]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT settings FROM households WHERE household_id = %s", (household_id,)).fetchone()
    assert row is not None
    return dict(row[0])


def test_settings_default_and_round_trip_through_the_detectors_reader(
    server: Served, world: World, database_url: str
) -> None:
    got = call(server, world.tokens.op_a, "GET", "/households/hh-a2/settings")
    assert got.status_code == 200
    assert got.json() == {"household_id": "hh-a2", "timezone": "Asia/Shanghai", **DEFAULTS}

    put = call(server, world.tokens.op_a, "PUT", "/households/hh-a2/settings", SETTINGS)
    assert put.status_code == 200, put.text
    expected = {
        "household_id": "hh-a2",
        "timezone": "Asia/Shanghai",
        **SETTINGS,
        "away": [{"start": "2030-02-01T01:00:00Z", "end": "2030-02-08T10:00:00Z", "reason": "away"}],
    }
    assert put.json() == expected
    assert call(server, world.tokens.op_a, "GET", "/households/hh-a2/settings").json() == expected
    # What the runner's refresh reads (storage.registry.household_settings -> from_json): the same values.
    raw = stored(database_url, "hh-a2")
    assert "timezone" not in raw  # the household's column is the one source of the timezone
    assert HouseholdSettings.from_json(raw, timezone="Asia/Shanghai") == HouseholdSettings(
        timezone="Asia/Shanghai",
        flat_min_litres=8.0,
        flat_window_h=10.0,
        daily_max_l=1500.0,
        routine_enabled=False,
        away=(Period(datetime(2030, 2, 1, 1, tzinfo=UTC), datetime(2030, 2, 8, 10, tzinfo=UTC), "away"),),
        quiet=(QuietWindow(time(22, 30), time(6, 45)),),
    )
    # A PUT replaces everything: omitted fields fall back to the defaults.
    assert call(server, world.tokens.admin, "PUT", "/households/hh-a2/settings", {}).json() == {
        "household_id": "hh-a2",
        "timezone": "Asia/Shanghai",
        **DEFAULTS,
    }
    assert stored(database_url, "hh-a2") == {"routine_enabled": True, "away": [], "quiet": []}


def test_bodies_the_detectors_would_refuse_are_422_problems_and_nothing_is_stored(
    server: Served, world: World, database_url: str
) -> None:
    assert call(server, world.tokens.op_a, "PUT", "/households/hh-a2/settings", SETTINGS).status_code == 200
    before = stored(database_url, "hh-a2")
    period = {"start": "2030-03-01T00:00:00Z", "end": "2030-03-02T00:00:00Z"}
    bad_bodies: list[dict[str, Any]] = [
        {"away": [{**period, "end": "2030-02-28T00:00:00Z"}]},  # ends before it starts
        {"away": [{**period, "end": period["start"]}]},  # empty
        {"away": [{"start": "2030-03-01T00:00:00", "end": "2030-03-02T00:00:00"}]},  # no offset
        {"away": [{**period, "reason": "holiday"}]},
        {"away": [{"start": "2030-01-01T00:00:00Z", "end": "2031-06-01T00:00:00Z"}]},  # over a year
        {"away": [{"start": "2030-03-01T00:00:00Z"}]},
        # Valid for the schema; from_json cannot convert it to UTC (year 10000): the second check.
        {"away": [{"start": "9999-12-31T20:00:00-05:00", "end": "9999-12-31T22:00:00-05:00"}]},
        {"quiet": [{"start": "25:00", "end": "07:00"}]},
        {"quiet": [{"start": "22:00", "end": "22:00"}]},
        {"flat_window_h": 0},
        {"flat_min_litres": -1},
        {"daily_max_l": 0},
        {"timezone": "Europe/Paris"},  # the household's column, not a setting
        {"flat_min_liters": 5},  # a typo is refused, not ignored
    ]
    for body in bad_bodies:
        response = call(server, world.tokens.op_a, "PUT", "/households/hh-a2/settings", body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["title"] == "Invalid request"
    overflow = call(server, world.tokens.op_a, "PUT", "/households/hh-a2/settings", bad_bodies[6]).json()
    assert overflow["detail"].startswith("the detectors refuse these settings")
    assert stored(database_url, "hh-a2") == before


def test_who_may_read_and_write_settings(server: Served, world: World) -> None:
    t = world.tokens
    # Reading: admin, the district's operator, the care plan's caregivers.
    for token in (t.admin, t.op_a, t.cg_fam, t.cg_vol):
        assert call(server, token, "GET", "/households/hh-a1/settings").status_code == 200
    # Out of scope is a 404 with the body of a household that does not exist.
    missing = call(server, t.admin, "GET", "/households/hh-nope/settings").json()
    for token, household_id in ((t.op_b, "hh-a1"), (t.cg_b, "hh-a1"), (t.cg_fam, "hh-a2"), (t.op_a, "hh-b1")):
        for method, path, body in (
            ("GET", "/settings", None),
            ("PUT", "/settings", {}),
            ("POST", "/absences", {"start": SOON.isoformat(), "end": (SOON + timedelta(days=2)).isoformat()}),
            ("POST", "/absences/end", {}),
        ):
            if method == "PUT" and token in (t.cg_b, t.cg_fam):
                continue  # caregivers never PUT: 403 comes first (below)
            response = call(server, token, method, f"/households/{household_id}{path}", body)
            assert response.status_code == 404, (household_id, method, path)
            assert response.json() == {**missing, "detail": f"household {household_id} not found"}
    # Caregivers announce absences but do not replace the thresholds; provisioners do neither.
    for token in (t.cg_fam, t.cg_b):
        assert call(server, token, "PUT", "/households/hh-a1/settings", {}).status_code == 403
    for method, path in (("GET", "/settings"), ("PUT", "/settings"), ("POST", "/absences"), ("POST", "/absences/end")):
        body = {"start": SOON.isoformat(), "end": (SOON + timedelta(days=1)).isoformat()} if path == "/absences" else {}
        assert call(server, t.provisioner, method, f"/households/hh-a1{path}", body).status_code == 403
    # The admin reaches every district.
    assert call(server, t.admin, "PUT", "/households/hh-b1/settings", {"daily_max_l": 900}).json()["daily_max_l"] == 900


def test_caregiver_announces_an_absence_and_ends_it_early(server: Served, world: World, database_url: str) -> None:
    t = world.tokens
    call(server, t.admin, "PUT", "/households/hh-a1/settings", {"flat_min_litres": 6, "quiet": SETTINGS["quiet"]})
    trip = {"start": (SOON - timedelta(days=2)).isoformat(), "end": (SOON + timedelta(days=5)).isoformat()}
    later = {
        "start": (SOON + timedelta(days=20)).isoformat(),
        "end": (SOON + timedelta(days=30)).isoformat(),
        "reason": "hospital",
    }
    first = call(server, t.cg_fam, "POST", "/households/hh-a1/absences", trip)
    assert first.status_code == 201, first.text
    second = call(server, t.cg_vol, "POST", "/households/hh-a1/absences", later)
    assert second.status_code == 201
    body = second.json()
    assert body["flat_min_litres"] == 6  # the rest of the settings is kept
    assert body["quiet"] == SETTINGS["quiet"]
    assert [(datetime.fromisoformat(p["start"]), p["reason"]) for p in body["away"]] == [
        (SOON - timedelta(days=2), "away"),
        (SOON + timedelta(days=20), "hospital"),
    ]
    # An absence that is already over would only hide late readings from the detectors.
    past = {"start": (SOON - timedelta(days=9)).isoformat(), "end": (SOON - timedelta(days=3)).isoformat()}
    assert call(server, t.cg_fam, "POST", "/households/hh-a1/absences", past).status_code == 422
    assert call(server, t.cg_fam, "POST", "/households/hh-a1/absences", {**trip, "reason": "x"}).status_code == 422

    # Home early: the trip under way ends now; the hospital stay planned for later stays.
    back = SOON - timedelta(hours=3)
    ended = call(server, t.cg_fam, "POST", "/households/hh-a1/absences/end", {"at": back.isoformat()})
    assert ended.status_code == 200
    assert [
        (datetime.fromisoformat(p["start"]), datetime.fromisoformat(p["end"]), p["reason"])
        for p in ended.json()["away"]
    ] == [
        (SOON - timedelta(days=2), back, "away"),
        (SOON + timedelta(days=20), SOON + timedelta(days=30), "hospital"),
    ]
    settings = HouseholdSettings.from_json(stored(database_url, "hh-a1"), timezone="Asia/Shanghai")
    assert [p.end for p in settings.away] == [back, SOON + timedelta(days=30)]

    with server.client(t.admin) as client:
        audit = client.get(V1 + "/audit", params={"resource_id": "hh-a1"})
    rows = [(e["subject"], e["action"], e["resource"]) for e in audit.json()["items"]]
    assert ("cg-fam", "create", "absence") in rows
    assert ("cg-vol", "create", "absence") in rows
    assert ("cg-fam", "update", "absence") in rows
    assert ("root", "update", "household_settings") in rows
    assert ("cg-fam", "view", "household_settings") in rows


def test_settings_written_outside_the_api_that_the_detectors_refuse_are_a_409(
    server: Served, world: World, database_url: str
) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            """UPDATE households SET settings = '{"away": [{"start": "soon"}]}' WHERE household_id = 'hh-b1'"""
        )
    response = call(server, world.tokens.op_b, "GET", "/households/hh-b1/settings")
    assert response.status_code == 409
    assert response.json()["title"] == "Invalid stored settings"
    absence = {"start": SOON.isoformat(), "end": (SOON + timedelta(days=1)).isoformat()}
    assert call(server, world.tokens.cg_b, "POST", "/households/hh-b1/absences", absence).status_code == 409
    # Staff repair them with a complete PUT.
    assert call(server, world.tokens.op_b, "PUT", "/households/hh-b1/settings", {"away": [absence]}).status_code == 200
    assert len(call(server, world.tokens.cg_b, "GET", "/households/hh-b1/settings").json()["away"]) == 1
