"""Every access rule of the API, one role at a time (see ``api.auth``'s table).

Out-of-scope rows answer 404 exactly like missing ones; forbidden endpoints answer 403; no or bad
tokens 401 with ``WWW-Authenticate: Bearer``; every answer is problem+json. Views of personal data and
every write leave an audit row with ids only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from api.auth import authenticate, create_token
from tests.api.world import Served, World

V1 = "/api/v1"


def get(server: Served, token: str | None, path: str, **params: object) -> tuple[int, object]:
    with server.client(token) as client:
        response = client.get(V1 + path, params=params)  # type: ignore[arg-type]
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    return response.status_code, response.json() if response.content else None


def post(server: Served, token: str | None, path: str, body: object) -> tuple[int, object]:
    with server.client(token) as client:
        response = client.post(V1 + path, json=body)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    return response.status_code, response.json() if response.content else None


def test_health_endpoints_are_open_and_everything_else_needs_a_token(server: Served, world: World) -> None:
    with server.client(None) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        response = client.get(V1 + "/households")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["title"] == "Unauthorized"
    for bad in ("nonsense", "cw_0123456789abcdef_" + "x" * 43, world.tokens.admin[:-2] + "zz"):
        assert get(server, bad, "/whoami")[0] == 401
    spec = server.app.openapi()
    operations = [(method, path) for path, item in spec["paths"].items() if path.startswith(V1) for method in item]
    assert len(operations) >= 25
    with server.client(None) as client:
        for method, path in operations:
            concrete = path.replace("{alert_id}", "1").replace("{token_id}", "x").replace("{household_id}", "hh-a1")
            concrete = concrete.replace("{caregiver_id}", "cg-fam").replace("{device_id}", "a1-meter")
            concrete = concrete.replace("{checkin_id}", "Ck-00000000")  # the gateway's callback: signed, else 401
            status = client.request(method.upper(), concrete).status_code
            assert status == 401, (method, concrete, status)


def test_revoked_and_expired_tokens_are_refused(server: Served, world: World, database_url: str) -> None:
    status, issued = post(server, world.tokens.admin, "/tokens", {"role": "caregiver", "subject": "cg-vol"})
    assert status == 201
    token = issued["token"]  # type: ignore[index]
    assert get(server, token, "/whoami")[1]["role"] == "caregiver"  # type: ignore[index]
    with server.client(world.tokens.admin) as client:
        assert client.delete(f"{V1}/tokens/{issued['token_id']}").status_code == 204  # type: ignore[index]
    assert get(server, token, "/whoami")[0] == 401
    with psycopg.connect(database_url) as conn:
        expired = create_token(conn, "admin", "old", expires_at=datetime.now(UTC) - timedelta(seconds=1))
        row = conn.execute(
            "SELECT secret_sha256 FROM api_tokens WHERE token_id = %s", (expired.split("_")[1],)
        ).fetchone()
    assert get(server, expired, "/whoami")[0] == 401
    assert row is not None
    assert expired.split("_")[2] not in row[0]


def test_only_admins_mint_tokens_and_read_the_audit_log(server: Served, world: World) -> None:
    for token in (world.tokens.op_a, world.tokens.cg_fam, world.tokens.provisioner):
        assert post(server, token, "/tokens", {"role": "admin", "subject": "me"})[0] == 403
        assert get(server, token, "/audit")[0] == 403
    assert post(server, world.tokens.admin, "/tokens", {"role": "operator", "subject": "op-x"})[0] == 422


def test_operator_sees_only_their_district(server: Served, world: World) -> None:
    op = world.tokens.op_a
    households = get(server, op, "/households")[1]["items"]  # type: ignore[index]
    assert {h["household_id"] for h in households} == {"hh-a1", "hh-a2"}
    assert get(server, op, "/households", district="Putuo")[1]["items"] == []  # type: ignore[index]
    assert get(server, op, "/households/hh-a1")[0] == 200
    for path in (
        "/households/hh-b1",
        "/households/hh-b1/residents",
        "/households/hh-b1/care-plan",
        "/devices/b1-meter",
        "/devices/b1-meter/usage",
        f"/alerts/{world.alerts['b1-sos']}",
        f"/alerts/{world.alerts['b1-sos']}/timeline",
    ):
        status, body = get(server, op, path)
        assert status == 404, path
        assert body == get(server, op, path.replace("b1", "zz"))[1] or status == 404
    alerts = get(server, op, "/alerts")[1]["items"]  # type: ignore[index]
    assert {a["household_id"] for a in alerts} <= {"hh-a1", "hh-a2"}
    assert post(server, op, f"/alerts/{world.alerts['b1-sos']}/claim", {"caregiver_id": "cg-b"})[0] == 404
    # Creating: their own district only; another district's household cannot receive a device from them.
    assert post(server, op, "/households", {"name": "x", "district": "Putuo"})[0] == 403
    status, created = post(server, op, "/households", {"household_id": "hh-a3", "name": "x"})
    assert status == 201
    assert created["district"] == "Changning"
    assert (
        post(server, op, "/devices", {"device_id": "x1", "device_type": "water_meter", "household_id": "hh-b1"})[0]
        == 404
    )
    residents = get(server, op, "/households/hh-a1/residents")[1]
    assert residents[0]["medical_notes"] == "diabetic; insulin in fridge"  # type: ignore[index]
    fleet = get(server, op, "/fleet/health")[1]
    assert fleet["devices_total"] == 3  # type: ignore[index]  # a1-meter, a1-button, a2-smoke


def test_caregiver_sees_only_their_care_plans_with_404_for_the_rest(server: Served, world: World) -> None:
    cg = world.tokens.cg_fam
    assert [h["household_id"] for h in get(server, cg, "/households")[1]["items"]] == ["hh-a1"]  # type: ignore[index]
    for path in (
        "/households/hh-a2",
        "/households/hh-b1",
        "/households/hh-b1/residents",
        "/devices/b1-meter",
        "/devices/b1-meter/readings",
        f"/alerts/{world.alerts['a2-smoke']}",
        "/caregivers/cg-vol",
    ):
        assert get(server, cg, path)[0] == 404, path
    assert get(server, cg, "/households/hh-nope")[1] == {  # same body shape whether absent or hidden
        "type": "about:blank",
        "title": "Not found",
        "status": 404,
        "detail": "household hh-nope not found",
    }
    alerts = get(server, cg, "/alerts")[1]["items"]  # type: ignore[index]
    assert {a["household_id"] for a in alerts} == {"hh-a1"}
    assert get(server, cg, "/alerts", household_id="hh-b1")[1]["items"] == []  # type: ignore[index]
    assert [d["device_id"] for d in get(server, cg, "/devices")[1]["items"]] == ["a1-button", "a1-meter"]  # type: ignore[index]
    assert [c["caregiver_id"] for c in get(server, cg, "/caregivers")[1]["items"]] == ["cg-fam"]  # type: ignore[index]
    # Caregivers read, claim and resolve; they do not create or provision.
    assert post(server, cg, "/households", {"name": "x"})[0] == 403
    assert post(server, cg, "/caregivers", {"name": "x"})[0] == 403
    assert (
        post(server, cg, "/devices", {"device_id": "x2", "device_type": "water_meter", "household_id": "hh-a1"})[0]
        == 403
    )
    assert post(server, cg, "/households/hh-a1/residents", {"name": "x"})[0] == 403
    assert get(server, cg, "/fleet/health")[0] == 403


def test_medical_notes_follow_the_care_role(server: Served, world: World) -> None:
    family = get(server, world.tokens.cg_fam, "/households/hh-a1/residents")[1]
    volunteer = get(server, world.tokens.cg_vol, "/households/hh-a1/residents")[1]
    assert family[0]["medical_notes"] == "diabetic; insulin in fridge"  # type: ignore[index]
    assert family[0]["medical_notes_visible"] is True  # type: ignore[index]
    assert volunteer[0]["medical_notes"] is None  # type: ignore[index]
    assert volunteer[0]["medical_notes_visible"] is False  # type: ignore[index]


def test_caregiver_claims_and_resolves_as_themselves(server: Served, world: World) -> None:
    alert_id = world.alerts["a1-inactivity"]
    assert post(server, world.tokens.cg_vol, f"/alerts/{alert_id}/claim", {"caregiver_id": "cg-fam"})[0] == 403
    status, claimed = post(server, world.tokens.cg_vol, f"/alerts/{alert_id}/claim", {"caregiver_id": "cg-vol"})
    assert status == 200
    assert claimed["claimed_by"] == "cg-vol"
    assert post(server, world.tokens.cg_fam, f"/alerts/{alert_id}/claim", {"caregiver_id": "cg-fam"})[0] == 409
    status, resolved = post(
        server, world.tokens.cg_vol, f"/alerts/{alert_id}/resolve", {"actor": "someone-else", "outcome": "resident_ok"}
    )
    assert status == 200
    assert resolved["resolved_by"] == "cg-vol"
    assert post(server, world.tokens.cg_vol, f"/alerts/{alert_id}/resolve", {"actor": "x", "outcome": "test"})[0] == 409


def test_device_provisioner_manages_devices_only(server: Served, world: World) -> None:
    prov = world.tokens.provisioner
    for path in ("/households", "/households/hh-a1", "/alerts", "/caregivers", "/devices/a1-meter/usage"):
        assert get(server, prov, path)[0] == 403, path
    assert get(server, prov, "/devices")[0] == 200
    assert get(server, prov, "/fleet/health")[1]["devices_total"] == 4  # type: ignore[index]
    status, device = post(
        server, prov, "/devices", {"device_id": "b1-smoke", "device_type": "smoke_alarm", "household_id": "hh-b1"}
    )
    assert status == 201
    assert device["mqtt_username"] == "b1-smoke"
    assert len(device["mqtt_password"]) >= 24
    assert "mqtt_password" not in get(server, prov, "/devices/b1-smoke")[1]  # type: ignore[operator]


def test_admin_reaches_everything(server: Served, world: World) -> None:
    admin = world.tokens.admin
    assert len(get(server, admin, "/households")[1]["items"]) >= 3  # type: ignore[index]
    assert get(server, admin, "/households/hh-b1/residents")[1][0]["medical_notes"] == "hearing aid"  # type: ignore[index]
    assert get(server, admin, f"/alerts/{world.alerts['b1-sos']}")[0] == 200


def test_views_and_writes_are_audited_with_ids_only(server: Served, world: World, database_url: str) -> None:
    get(server, world.tokens.cg_fam, "/households/hh-a1/residents")
    post(
        server,
        world.tokens.admin,
        "/caregivers",
        {"caregiver_id": "cg-new", "name": "Zhang San", "phone": "13912345678"},
    )
    status, page = get(server, world.tokens.admin, "/audit", subject="cg-fam", resource="residents")
    assert status == 200
    entry = page["items"][0]  # type: ignore[index]
    assert entry["action"] == "view"
    assert entry["resource_id"] == "hh-a1"
    assert entry["role"] == "caregiver"
    assert entry["client"] == "127.0.0.1"
    assert entry["detail"] == "with medical notes"
    created = get(server, world.tokens.admin, "/audit", resource="caregiver", resource_id="cg-new")[1]["items"]  # type: ignore[index]
    assert [e["action"] for e in created] == ["create"]
    with psycopg.connect(database_url) as conn:
        dump = " ".join(str(row) for row in conn.execute("SELECT * FROM audit_log").fetchall())
    for personal in ("Zhang San", "13912345678", "13800000000", "secret address", "Elder hh-a1", "diabetic"):
        assert personal not in dump
    with server.client(None) as client:
        metrics = client.get("/metrics").text
    assert "hh-a1" not in metrics
    assert "Zhang" not in metrics
    assert 'route="/api/v1/households/{household_id}/residents"' in metrics


@pytest.mark.parametrize("role", ["operator", "caregiver"])
def test_create_token_bootstrap(database_url: str, role: str) -> None:
    with psycopg.connect(database_url) as conn:
        token = create_token(conn, role, "subj", "Changning" if role == "operator" else None)
        principal = authenticate(conn, token, datetime.now(UTC))
    assert principal is not None
    assert principal.role.value == role
    with pytest.raises(ValueError, match="district"), psycopg.connect(database_url) as conn:
        create_token(conn, "operator", "x")
