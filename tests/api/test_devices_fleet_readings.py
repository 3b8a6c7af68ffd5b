"""Exact answers of the endpoints the role tests only reach: fleet health (every rule and its edge),
usage per hour and per local day (register differences, resets, gaps), the normal band, credential
rotation and decommissioning, and ``/readyz`` saying 503 and naming the check that failed.

Rows are built directly in the database (device health as the detector runner writes it, receipts as
ingest writes them) and the API is run with a fixed clock, so every expected value is written out.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from api.auth import create_token
from schemas.api import ReadyCheck
from storage import auth as credentials
from storage.devices import get_devices
from storage.migrate import StorageMode, current_mode
from tests.api.world import NOW, Served, World, serve

V1 = "/api/v1"
T = NOW  # the fixed clock of this module's second server
H = timedelta(hours=1)


# --- fleet health ----------------------------------------------------------------------------------

# (device_id, type, expected_interval_s, created_at, last_seen_at, online, battery_pct)
FLEET_DEVICES = [
    ("f-ok", "water_meter", 3600, T - 48 * H, T - 0.2 * H, True, 80),
    ("f-lwt", "call_button", 6 * 3600, T - 48 * H, T - 0.1 * H, False, 90),  # Last Will: offline now
    ("f-quiet", "smoke_alarm", 6 * 3600, T - 48 * H, T - 13 * H, None, 50),  # 13 h > 2 x 6 h
    ("f-edge", "smoke_alarm", 6 * 3600, T - 48 * H, T - 11 * H, None, 20),  # 11 h < 12 h; 20 % is not low
    ("f-batt", "call_button", 6 * 3600, T - 48 * H, T - 1 * H, True, 19),
    ("f-silent", "water_meter", 3600, T - 48 * H, T - 0.1 * H, True, 70),  # status lives, readings stopped
    ("f-gaps", "water_meter", 3600, T - 48 * H, T - 0.1 * H, True, 70),
    ("f-never", "call_button", 3600, T - 3 * H, None, None, None),  # never heard from, 3 h > 2 x 1 h
    ("f-new", "call_button", 3600, T - 1 * H, None, None, None),  # provisioned an hour ago: not yet
]
# Newest reading per meter (device time).
LAST_READING = {"f-ok": T - 0.25 * H, "f-silent": T - 25 * H, "f-gaps": T - 0.5 * H}
# Receipts (device_id, seq, ts, received_at): f-gaps misses 3 and 4, then restarts (a jump > 1,000 is
# not loss); an old gap before the last 24 h does not count; f-ok wraps around 2^32 without a gap.
RECEIPTS = [
    ("f-gaps", 90, T - 30 * H, T - 30 * H),
    ("f-gaps", 95, T - 29 * H, T - 29 * H),
    *[("f-gaps", seq, T - (10 - seq) * H, T - (10 - seq) * H) for seq in (1, 2, 5, 6)],
    ("f-gaps", 50_000, T - 2 * H, T - 2 * H),
    ("f-ok", 4_294_967_294, T - 3 * H, T - 3 * H),
    ("f-ok", 4_294_967_295, T - 2 * H, T - 2 * H),
    ("f-ok", 0, T - 1 * H, T - 1 * H),
]


@pytest.fixture(scope="module")
def fleet(database_url: str, world: World) -> Iterator[tuple[Served, str]]:
    """The fleet household ``hh-f1`` in district Minhang, and a server whose clock stands at ``T``."""
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO households (household_id, name, district) VALUES ('hh-f1', 'fleet', 'Minhang')")
        for device_id, kind, interval, created, seen, online, battery in FLEET_DEVICES:
            conn.execute(
                "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s, created_at,"
                " last_seen_at, online, battery_pct) VALUES (%s, %s, 'hh-f1', %s, %s, %s, %s, %s)",
                (device_id, kind, interval, created, seen, online, battery),
            )
        for device_id, ts in LAST_READING.items():
            for age in (H, timedelta(0)):  # an older reading too: the newest is the one that counts
                conn.execute(
                    "INSERT INTO readings (device_id, ts, register_l, received_at) VALUES (%s, %s, 1.0, %s)",
                    (device_id, ts - age, ts - age),
                )
        for device_id, seq, ts, received in RECEIPTS:
            conn.execute(
                "INSERT INTO message_receipts (device_id, seq, ts, channel, received_at)"
                " VALUES (%s, %s, %s, 'status', %s)",
                (device_id, seq, ts, received),
            )
        token = create_token(conn, "operator", "op-m", "Minhang")
    with serve(database_url, clock=lambda: T) as served:
        yield served, token


def _times(device: dict[str, Any]) -> dict[str, Any]:
    return {
        key: datetime.fromisoformat(value) if key in {"last_seen_at", "last_reading_at"} and value else value
        for key, value in device.items()
    }


def test_fleet_health_applies_every_rule(fleet: tuple[Served, str], world: World) -> None:
    served, operator = fleet
    with served.client(operator) as client:
        body = client.get(V1 + "/fleet/health").json()
    expected = [
        ("f-batt", "call_button", ["low_battery"], T - 1 * H, True, 19, None, 0),
        ("f-gaps", "water_meter", ["seq_gaps"], T - 0.1 * H, True, 70, T - 0.5 * H, 2),
        ("f-lwt", "call_button", ["offline"], T - 0.1 * H, False, 90, None, 0),
        ("f-never", "call_button", ["offline"], None, None, None, None, 0),
        ("f-quiet", "smoke_alarm", ["offline"], T - 13 * H, None, 50, None, 0),
        ("f-silent", "water_meter", ["silent_meter"], T - 0.1 * H, True, 70, T - 25 * H, 0),
    ]
    assert {k: v for k, v in body.items() if k != "problem_devices"} == {
        "devices_total": 9,
        "offline": 3,
        "low_battery": 1,
        "silent_meters": 1,
        "with_seq_gaps": 1,
    }
    assert [_times(d) for d in body["problem_devices"]] == [
        {
            "device_id": device_id,
            "device_type": kind,
            "household_id": "hh-f1",
            "problems": problems,
            "last_seen_at": seen,
            "online": online,
            "battery_pct": battery,
            "last_reading_at": reading,
            "seq_gaps_24h": gaps,
        }
        for device_id, kind, problems, seen, online, battery, reading, gaps in expected
    ]
    # The admin, filtered to the household, gets the same; the limit cuts the page, not the counts.
    with served.client(world.tokens.admin) as client:
        assert client.get(V1 + "/fleet/health", params={"household_id": "hh-f1"}).json() == body
        limited = client.get(V1 + "/fleet/health", params={"household_id": "hh-f1", "limit": 2}).json()
    assert [d["device_id"] for d in limited["problem_devices"]] == ["f-batt", "f-gaps"]
    assert limited["offline"] == 3
    # Another district's operator sees none of it.
    with served.client(world.tokens.op_a) as client:
        other = client.get(V1 + "/fleet/health", params={"household_id": "hh-f1"}).json()
    assert other == {
        "devices_total": 0,
        "offline": 0,
        "low_battery": 0,
        "silent_meters": 0,
        "with_seq_gaps": 0,
        "problem_devices": [],
    }


# --- usage -------------------------------------------------------------------------------------------

DAY0 = datetime(2024, 3, 10, 16, tzinfo=UTC)  # 2024-03-11 00:00 in Shanghai
USAGE_READINGS = [
    (DAY0 - 0.5 * H, 100.0),  # before the range: gives the first reading in range its difference
    (DAY0, 103.0),
    (DAY0 + 0.5 * H, 110.0),
    (DAY0 + 1.25 * H, 112.5),
    (DAY0 + 2 * H, 5.0),  # register reset (meter replaced): a new series, 0 L
    (DAY0 + 2.75 * H, 9.0),
    (DAY0 + 4 * H, 100_009.0),  # impossible jump (100 m3 in 75 min): a new series, 0 L
    (DAY0 + 24.5 * H, 100_019.0),  # next local day; no readings at all in between (absent, not 0)
]


@pytest.fixture(scope="module")
def meters(database_url: str, world: World) -> None:
    with psycopg.connect(database_url) as conn:
        for device_id in ("u-meter", "band-meter"):
            conn.execute(
                "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s)"
                " VALUES (%s, 'water_meter', 'hh-a1', 900)",
                (device_id,),
            )
        rows = [("u-meter", ts, register) for ts, register in USAGE_READINGS]
        # Band: local 07:30 (nothing since yesterday) and 08:30 (1, 2, 3, 4, 5 L on five days).
        register = 0.0
        for day in range(5):
            morning = datetime(2024, 4, 1 + day, tzinfo=UTC) - 0.5 * H  # 07:30 Shanghai
            rows.append(("band-meter", morning, register))
            register += day + 1
            rows.append(("band-meter", morning + H, register))
        for device_id, ts, register_l in rows:
            conn.execute(
                "INSERT INTO readings (device_id, ts, register_l, received_at) VALUES (%s, %s, %s, %s)",
                (device_id, ts, register_l, ts),
            )


def _usage(server: Served, token: str, path: str, **params: str) -> dict[str, Any] | list[Any]:
    with server.client(token) as client:
        response = client.get(V1 + path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] | list[Any] = response.json()
    return body


def _buckets(body: dict[str, Any]) -> list[tuple[datetime, float, int, float | None]]:
    return [
        (datetime.fromisoformat(b["bucket"]), b["consumption_l"], b["samples"], b["register_last"])
        for b in body["buckets"]
    ]


def test_usage_per_hour_and_per_local_day(server: Served, world: World, meters: None, database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        source = "readings_hourly" if current_mode(conn) is StorageMode.TIMESCALEDB else "readings"
    window = {"start": DAY0.isoformat(), "end": (DAY0 + 26 * H).isoformat()}
    hourly = _usage(server, world.tokens.cg_fam, "/devices/u-meter/usage", **window)
    assert isinstance(hourly, dict)
    assert {k: v for k, v in hourly.items() if k != "buckets"} == {
        "device_id": "u-meter",
        "resolution": "hour",
        "source": source,
    }
    assert _buckets(hourly) == [
        (DAY0, 10.0, 2, 110.0),
        (DAY0 + 1 * H, 2.5, 1, 112.5),
        (DAY0 + 2 * H, 4.0, 2, 9.0),  # the reset counts 0, the 4 L after it count
        (DAY0 + 4 * H, 0.0, 1, 100_009.0),
        (DAY0 + 24 * H, 10.0, 1, 100_019.0),
    ]
    daily = _usage(server, world.tokens.op_a, "/devices/u-meter/usage", resolution="day", **window)
    assert isinstance(daily, dict)
    assert daily["resolution"] == "day"
    assert _buckets(daily) == [  # local (Asia/Shanghai) days, starting at 16:00 UTC
        (DAY0, 16.5, 6, 100_009.0),
        (DAY0 + 24 * H, 10.0, 1, 100_019.0),
    ]
    # Half-open range: the reading at ``end`` is not in it.
    one_hour = {"start": DAY0.isoformat(), "end": (DAY0 + H).isoformat()}
    cut = _usage(server, world.tokens.admin, "/devices/u-meter/usage", **one_hour)
    assert isinstance(cut, dict)
    assert _buckets(cut) == [(DAY0, 10.0, 2, 110.0)]
    with server.client(world.tokens.admin) as client:
        entries = client.get(V1 + "/audit", params={"resource": "usage", "resource_id": "u-meter"}).json()["items"]
    assert {(e["subject"], e["action"]) for e in entries} == {("cg-fam", "view"), ("op-a", "view"), ("root", "view")}


def test_usage_band_percentiles_per_local_hour(server: Served, world: World, meters: None) -> None:
    band = _usage(server, world.tokens.cg_fam, "/devices/band-meter/usage/band", end="2024-04-06T00:00:00Z", days="7")
    assert band == [
        {"hour_of_day": 7, "p10_l": 0.0, "p50_l": 0.0, "p90_l": 0.0},
        {"hour_of_day": 8, "p10_l": pytest.approx(1.4), "p50_l": 3.0, "p90_l": pytest.approx(4.6)},
    ]
    # Outside the window: no band rather than a band of zeros.
    assert _usage(server, world.tokens.cg_fam, "/devices/band-meter/usage/band", end="2024-03-01T00:00:00Z") == []


def test_raw_readings_page_by_timestamp(server: Served, world: World, meters: None) -> None:
    window = {"start": DAY0.isoformat(), "end": (DAY0 + 26 * H).isoformat(), "limit": "3"}
    first = _usage(server, world.tokens.op_a, "/devices/u-meter/readings", **window)
    assert isinstance(first, dict)
    assert [(datetime.fromisoformat(r["ts"]), r["register_l"]) for r in first["items"]] == USAGE_READINGS[1:4]
    assert datetime.fromisoformat(first["next_cursor"]) == USAGE_READINGS[3][0]
    rest = _usage(server, world.tokens.op_a, "/devices/u-meter/readings", cursor=first["next_cursor"], **window)
    assert isinstance(rest, dict)
    assert [(datetime.fromisoformat(r["ts"]), r["register_l"]) for r in rest["items"]] == USAGE_READINGS[4:7]


# --- credentials and decommissioning -------------------------------------------------------------------


def _password_hash(database_url: str, username: str) -> str | None:
    with psycopg.connect(database_url) as conn:
        return credentials.device_password_hash(conn, username)


def test_rotating_credentials_replaces_the_password(server: Served, world: World, database_url: str) -> None:
    device = {"device_id": "rot-meter", "device_type": "water_meter", "household_id": "hh-a2"}
    with server.client(world.tokens.provisioner) as client:
        created = client.post(V1 + "/devices", json=device)
        assert created.status_code == 201
        first = created.json()
        rotated = client.post(V1 + "/devices/rot-meter/credentials")
    assert rotated.status_code == 200
    second = rotated.json()
    assert {k: v for k, v in second.items() if k != "mqtt_password"} == {
        k: v for k, v in first.items() if k != "mqtt_password"
    }
    assert second["mqtt_username"] == "rot-meter"
    assert second["expected_interval_s"] == 3600
    assert second["mqtt_password"] != first["mqtt_password"]
    stored = _password_hash(database_url, "rot-meter")
    assert stored is not None
    assert stored.startswith("$7$")
    assert not credentials.verify_device_password(first["mqtt_password"], stored)
    assert credentials.verify_device_password(second["mqtt_password"], stored)
    # Operators rotate in their district only; caregivers never.
    with server.client(world.tokens.op_b) as client:
        assert client.post(V1 + "/devices/rot-meter/credentials").status_code == 404
    with server.client(world.tokens.cg_fam) as client:
        assert client.post(V1 + "/devices/a1-meter/credentials").status_code == 403
    with server.client(world.tokens.admin) as client:
        audit = client.get(V1 + "/audit", params={"resource": "device", "resource_id": "rot-meter"}).json()["items"]
    assert [(e["subject"], e["action"]) for e in audit] == [("prov-1", "rotate_credentials"), ("prov-1", "create")]


def test_decommissioning_removes_the_device_and_revokes_its_login(
    server: Served, world: World, database_url: str
) -> None:
    device = {"device_id": "dec-smoke", "device_type": "smoke_alarm", "household_id": "hh-a2"}
    with server.client(world.tokens.op_a) as client:
        password = client.post(V1 + "/devices", json=device).json()["mqtt_password"]
    with psycopg.connect(database_url) as conn:
        assert list(get_devices(conn, ["dec-smoke"])) == ["dec-smoke"]
    stored = _password_hash(database_url, "dec-smoke")
    assert stored is not None
    assert credentials.verify_device_password(password, stored)

    with server.client(world.tokens.cg_fam) as client:
        assert client.post(V1 + "/devices/dec-smoke/decommission").status_code == 403
    with server.client(world.tokens.op_b) as client:
        assert client.post(V1 + "/devices/dec-smoke/decommission").status_code == 404
    with server.client(world.tokens.op_a) as client:
        response = client.post(V1 + "/devices/dec-smoke/decommission")
        assert response.status_code == 204
        assert response.content == b""
        # Gone from the API, and it cannot be given a new login or decommissioned twice.
        assert client.get(V1 + "/devices/dec-smoke").status_code == 404
        assert "dec-smoke" not in [d["device_id"] for d in client.get(V1 + "/devices").json()["items"]]
        assert client.post(V1 + "/devices/dec-smoke/credentials").status_code == 404
        assert client.post(V1 + "/devices/dec-smoke/decommission").status_code == 404
    with psycopg.connect(database_url) as conn:
        assert get_devices(conn, ["dec-smoke"]) == {}  # ingest's lookup: its messages are refused
        assert not credentials.device_credentials_active(conn, "dec-smoke")
        row = conn.execute("SELECT decommissioned_at FROM devices WHERE device_id = 'dec-smoke'").fetchone()
    assert row is not None
    assert row[0] is not None
    assert _password_hash(database_url, "dec-smoke") is None  # the broker's password export drops it


# --- readiness -------------------------------------------------------------------------------------------


def test_readyz_names_the_failing_runtime_check(database_url: str) -> None:
    def broker() -> ReadyCheck:
        return ReadyCheck(name="broker", ok=False, detail="not connected")

    def ingest_backlog() -> ReadyCheck:
        raise RuntimeError("ingest gone")

    with serve(database_url, readiness_checks=[broker, ingest_backlog]) as served, served.client(None) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "ready": False,
        "checks": [
            {"name": "database", "ok": True, "detail": "reachable"},
            {"name": "dispatcher_backlog", "ok": True, "detail": "0 notifications overdue"},
            {"name": "broker", "ok": False, "detail": "not connected"},
            {"name": "ingest_backlog", "ok": False, "detail": "RuntimeError"},
        ],
    }


def test_readyz_is_503_when_the_dispatcher_falls_behind(server: Served, world: World, database_url: str) -> None:
    def readyz() -> httpx.Response:
        with server.client(None) as client:
            return client.get("/readyz")

    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM notifications")  # the world's own deliveries are not this test's
        overdue = datetime.now(UTC) - timedelta(minutes=5)
        for n in range(50):
            conn.execute(
                "INSERT INTO notifications (alert_id, caregiver_id, channel, idempotency_key, body, next_attempt_at,"
                " deadline) VALUES (%s, 'cg-fam', 'webhook', %s, '{}', %s, %s)",
                (world.alerts["a1-sos"], f"ready-{n}", overdue, overdue + timedelta(hours=1)),
            )
    at_bound = readyz()
    assert at_bound.status_code == 200
    backlog = at_bound.json()["checks"][1]
    assert backlog == {"name": "dispatcher_backlog", "ok": True, "detail": "50 notifications overdue"}
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO notifications (alert_id, caregiver_id, channel, idempotency_key, body, next_attempt_at,"
            " deadline) VALUES (%s, 'cg-fam', 'webhook', 'ready-50', '{}', %s, %s)",
            (world.alerts["a1-sos"], overdue, overdue + timedelta(hours=1)),
        )
    over = readyz()
    assert over.status_code == 503
    assert over.json() == {
        "ready": False,
        "checks": [
            {"name": "database", "ok": True, "detail": "reachable"},
            {"name": "dispatcher_backlog", "ok": False, "detail": "51 notifications overdue"},
        ],
    }
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM notifications WHERE idempotency_key LIKE 'ready-%'")
    assert readyz().status_code == 200


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    # A pool aimed at a port nobody listens on; health needs no token, so no database for auth either.
    with serve("postgresql://postgres@127.0.0.1:9/nowhere?connect_timeout=1") as served, served.client(None) as client:
        response = client.get("/readyz")
        assert client.get("/healthz").json() == {"status": "ok"}
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False
    assert [(c["name"], c["ok"]) for c in body["checks"]] == [("database", False), ("dispatcher_backlog", False)]
    assert body["checks"][0]["detail"] == "PoolTimeout"
