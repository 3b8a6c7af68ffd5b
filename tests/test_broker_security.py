"""Devices speak only for themselves: the whole system on a Mosquitto running the production config.

One private Mosquitto (deploy/mosquitto/carewatch.conf: no anonymous clients, dynamic security, a TLS
listener with a CA made in this test) and one ``carewatch run`` pipeline whose services log in as
themselves over TLS and whose API is served over HTTPS. Devices are provisioned, rotated and
decommissioned through the API, which pushes each change to the broker; every claim is checked with
real clients: what the broker accepts, what a subscriber and the ingest (the database) see.
"""

from __future__ import annotations

import json
import secrets
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.auth import create_token
from carewatch import cli
from carewatch.broker.dynsec import DynsecAdmin
from carewatch.broker.dynsec_file import dynsec_json
from carewatch.broker.endpoints import access_config, admin_url
from carewatch.broker.sync import desired_accounts
from carewatch.runtime import Pipeline
from carewatch.settings import Settings
from schemas.api import HouseholdCreate
from simulator.payloads import SimMessage
from simulator.publisher import MqttTarget, SharedPublisher
from storage import registry
from tests.broker_clients import Probe
from tests.fixtures.fix_secure_broker import DYNSEC_AVAILABLE, DYNSEC_MISSING, SecureBroker, secure_broker
from tests.fixtures.fix_tls import Pki, make_pki
from tests.support import pipeline_settings, wait_until

pytestmark = [pytest.mark.skipif(not DYNSEC_AVAILABLE, reason=DYNSEC_MISSING), pytest.mark.slow]

ROOT = "care/v1"
HOUSEHOLD = "hh-sec"


@dataclass
class Stack:
    broker: SecureBroker
    settings: Settings
    pipeline: Pipeline
    api: httpx.Client
    database_url: str
    pki: Pki

    @property
    def device_url(self) -> str:
        return self.broker.tls_url


def _passwords() -> dict[str, str]:
    names = ("mqtt_ingest_password", "mqtt_dispatcher_password", "mqtt_simulator_password", "broker_admin_password")
    return {name: secrets.token_urlsafe(16) for name in names}


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    work = tmp_path_factory.mktemp("secure-broker")
    secrets_ = _passwords()
    settings = pipeline_settings(
        ROOT,
        mqtt_ca_file=str(pki.ca_file),
        api_tls_cert_file=str(pki.server_cert),
        api_tls_key_file=str(pki.server_key),
        broker_retry_s=0.5,
        ingest_process=False,
        dispatch_process=False,
        **secrets_,
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        registry.insert_household(conn, HouseholdCreate(household_id=HOUSEHOLD, name="Home", district="Changning"))
        token = create_token(conn, "device_provisioner", "prov-sec")
        staff = create_token(conn, "admin", "root-sec")
        first = dynsec_json(
            desired_accounts(conn, access_config(settings)),
            admin_username=settings.broker_admin_username,
            admin_password=secrets_["broker_admin_password"],
        )
    broker = secure_broker(work, pki, first)
    # Services (and the admin) reach the broker over TLS too, with the CA of this test.
    mqtt_url = f"mqtts://127.0.0.1:{broker.tls_port}"
    pipeline = Pipeline(settings=settings, mqtt_url=mqtt_url, database_url=database_url)
    try:
        pipeline.start()
        trust = ssl.create_default_context(cafile=str(pki.ca_file))
        headers = {"Authorization": f"Bearer {token}", "X-Staff-Token": staff}
        with httpx.Client(base_url=pipeline.api_url, headers=headers, verify=trust, timeout=20) as api:
            wait_until(pipeline.ingest.connected.is_set, timeout=30)
            wait_until(lambda: _answers(api), timeout=30)
            yield Stack(broker, settings, pipeline, api, database_url, pki)
    finally:
        pipeline.stop()
        broker.stop()


def _answers(api: httpx.Client) -> bool:
    try:
        return api.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


def _provision(stack: Stack, device_id: str, device_type: str = "water_meter") -> dict[str, Any]:
    response = stack.api.post(
        "/api/v1/devices", json={"device_id": device_id, "device_type": device_type, "household_id": HOUSEHOLD}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["broker"] == "applied"
    return body


def _device(stack: Stack, body: dict[str, Any], password: str | None = None) -> Probe:
    return Probe(
        stack.device_url, body["mqtt_username"], password or body["mqtt_password"], client_id=body["device_id"]
    )


def _reading(seq: int, litres: float) -> str:
    return json.dumps({"ts": int(time.time() * 1000), "seq": seq, "register_l": litres})


def _stored(stack: Stack, device_id: str) -> list[int]:
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT seq FROM message_receipts WHERE device_id = %s ORDER BY seq", (device_id,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def test_api_is_served_over_https_with_the_test_ca(stack: Stack) -> None:
    assert stack.pipeline.api_url.startswith("https://")
    with pytest.raises(httpx.ConnectError):  # a client that does not trust the test CA refuses the server
        httpx.get(f"{stack.pipeline.api_url}/healthz", timeout=5)


def test_unknown_and_anonymous_clients_cannot_connect(stack: Stack) -> None:
    for username, password in ((None, None), ("nobody", "guess"), ("carewatch.ingest", "wrong")):
        probe = Probe(stack.device_url, username, password)
        assert not probe.accepted, (username, probe.connack)
        probe.close()
    plain = Probe(stack.broker.plain_url, None, None)  # the services' loopback listener refuses them too
    assert not plain.accepted
    plain.close()


def test_a_device_publishes_only_as_itself_and_the_ingest_stores_its_messages(stack: Stack) -> None:
    a = _provision(stack, "wm-sec-a")
    b = _provision(stack, "wm-sec-b")
    watcher = Probe(stack.device_url, "carewatch.ingest", stack.settings.mqtt_ingest_password)
    assert watcher.subscribe(f"{ROOT}/dev/#") == [True]
    forger = _device(stack, a)
    assert forger.accepted
    forger.publish(f"{ROOT}/dev/wm-sec-b/telemetry", _reading(7, 1.0))  # a forgery: as device b
    # MQTT 3.1.1 lets a broker close the connection of a client whose publish it refuses; Mosquitto
    # 2.0.11 with carewatch's queue settings does (docs/operations.md, "Security").
    forger.disconnected.wait(2)
    forger.close()
    device_a = _device(stack, a)
    device_a.publish(f"{ROOT}/dev/wm-sec-a/telemetry", _reading(1, 2.0))
    wait_until(lambda: _stored(stack, "wm-sec-a") == [1], timeout=30)
    seen = [topic for topic, _ in watcher.received(2.0)]
    assert f"{ROOT}/dev/wm-sec-a/telemetry" in seen
    assert f"{ROOT}/dev/wm-sec-b/telemetry" not in seen  # the broker dropped it: no subscriber gets it
    assert _stored(stack, "wm-sec-b") == []  # and the ingest never stored it
    device_a.close()
    watcher.close()
    assert b["mqtt_username"] == "wm-sec-b"


def test_a_device_reads_its_own_commands_and_no_one_elses(stack: Stack) -> None:
    a = _provision(stack, "cb-sec-a", "call_button")
    b = _provision(stack, "cb-sec-b", "call_button")
    device_a = _device(stack, a)
    assert device_a.subscribe(f"{ROOT}/dev/cb-sec-a/cmd") == [True]
    assert device_a.subscribe(f"{ROOT}/dev/cb-sec-b/cmd", f"{ROOT}/dev/+/cmd", "#") == [False, False, False]
    dispatcher = Probe(stack.device_url, "carewatch.dispatcher", stack.settings.mqtt_dispatcher_password)
    dispatcher.publish(f"{ROOT}/dev/cb-sec-b/cmd", '{"cmd": "checkin", "for": "b"}')
    dispatcher.publish(f"{ROOT}/dev/cb-sec-a/cmd", '{"cmd": "checkin", "for": "a"}')
    got = device_a.received(3.0)
    assert got == [(f"{ROOT}/dev/cb-sec-a/cmd", b'{"cmd": "checkin", "for": "a"}')]
    # A device cannot send commands (to itself or anyone): only the dispatcher may.
    forger = Probe(stack.device_url, "cb-sec-b", b["mqtt_password"], client_id="cb-sec-b")
    forger.publish(f"{ROOT}/dev/cb-sec-a/cmd", "forged")
    assert device_a.received(1.0) == []
    for probe in (device_a, dispatcher, forger):
        probe.close()


@pytest.mark.parametrize("wire", ["raw", "paho"])
def test_the_simulator_publishes_as_any_device_over_tls_with_its_own_login(stack: Stack, wire: str) -> None:
    device_id = f"wm-sec-sim-{wire}"
    _provision(stack, device_id)
    url = f"mqtts://carewatch.simulator:{stack.settings.mqtt_simulator_password}@127.0.0.1:{stack.broker.tls_port}"
    target = MqttTarget.from_url(f"{url}?ca_file={stack.pki.ca_file}")
    publisher = SharedPublisher(target, client_id_prefix=f"sim-sec-{wire}", wire=wire)
    publisher.open()
    try:
        topic = f"{ROOT}/dev/{device_id}/telemetry"
        publisher.publish(SimMessage(topic, _reading(5, 3.0).encode(), int(time.time() * 1000), "meter_reading"))
    finally:
        assert publisher.close(10.0)
    wait_until(lambda: _stored(stack, device_id) == [5], timeout=30)


def test_rotation_stops_the_old_password_and_kicks_its_session(stack: Stack) -> None:
    first = _provision(stack, "wm-sec-rot")
    old = _device(stack, first)
    assert old.accepted
    response = stack.api.post("/api/v1/devices/wm-sec-rot/credentials")
    assert response.status_code == 200
    rotated = response.json()
    assert rotated["broker"] == "applied"
    assert old.disconnected.wait(5), "the session of the old password was not disconnected"
    old.close()
    again = _device(stack, first)
    assert not again.accepted
    again.close()
    new = _device(stack, rotated)
    assert new.accepted
    new.close()


def test_decommissioning_refuses_the_device_and_disconnects_it_at_once(stack: Stack) -> None:
    body = _provision(stack, "sa-sec-dec", "smoke_alarm")
    live = _device(stack, body)
    assert live.accepted
    assert stack.api.post("/api/v1/devices/sa-sec-dec/decommission").status_code == 204
    assert live.disconnected.wait(5), "a decommissioned device kept its session"
    live.close()
    retry = _device(stack, body)
    assert not retry.accepted
    retry.close()


def test_caregiver_apps_read_only_their_own_topics(stack: Stack) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for caregiver in ("cg-sec-1", "cg-sec-2"):
            conn.execute("INSERT INTO caregivers (caregiver_id, name) VALUES (%s, %s)", (caregiver, "Volunteer"))
    staff = {"Authorization": f"Bearer {stack.api.headers['X-Staff-Token']}"}
    response = stack.api.post("/api/v1/caregivers/cg-sec-1/app-credentials", headers=staff)
    assert response.status_code == 200, response.text
    login = response.json()
    assert (login["mqtt_username"], login["broker"]) == ("app.cg-sec-1", "applied")
    app = Probe(stack.device_url, login["mqtt_username"], login["mqtt_password"])
    assert app.subscribe(f"{ROOT}/app/cg-sec-1/alerts", f"{ROOT}/app/cg-sec-1/acks") == [True, True]
    assert app.subscribe(f"{ROOT}/app/cg-sec-2/alerts", f"{ROOT}/app/+/alerts") == [False, False]
    assert stack.api.delete("/api/v1/caregivers/cg-sec-1/app-credentials", headers=staff).status_code == 204
    assert app.disconnected.wait(5)
    app.close()


def _sync(stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    env = {
        "CAREWATCH_DATABASE_URL": stack.database_url,
        "CAREWATCH_MQTT_URL": f"mqtts://127.0.0.1:{stack.broker.tls_port}",
        "CAREWATCH_MQTT_CA_FILE": str(stack.pki.ca_file),
        "CAREWATCH_TOPIC_ROOT": ROOT,
        "CAREWATCH_BROKER_ADMIN_PASSWORD": stack.settings.broker_admin_password or "",
        "CAREWATCH_MQTT_INGEST_PASSWORD": stack.settings.mqtt_ingest_password or "",
        "CAREWATCH_MQTT_DISPATCHER_PASSWORD": stack.settings.mqtt_dispatcher_password or "",
        "CAREWATCH_MQTT_SIMULATOR_PASSWORD": stack.settings.mqtt_simulator_password or "",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = cli.main(["broker", "sync"])
    captured = capsys.readouterr()
    assert captured.out, (code, captured.err)
    return code, captured.out.splitlines()


def test_broker_sync_reports_and_repairs_drift(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, lines = _sync(stack, monkeypatch, capsys)
    assert code == 0, lines
    assert lines[-1] == (
        "broker sync: clients created=0 updated=0 disabled=0 removed=0; roles created=0 updated=0 removed=0;"
        " defaults updated=0; unresolved=0 failed=0"
    )
    drifted = _provision(stack, "wm-sec-drift")
    _provision(stack, "wm-sec-wide")
    url = admin_url(stack.settings, f"mqtts://127.0.0.1:{stack.broker.tls_port}")
    assert url is not None
    with DynsecAdmin(mqtt_url=url) as admin:
        admin.execute(
            [
                {"command": "deleteClient", "username": "wm-sec-drift"},
                {
                    "command": "addRoleACL",
                    "rolename": "dev.wm-sec-wide",
                    "acltype": "publishClientSend",
                    "topic": "#",
                    "allow": True,
                },
                {"command": "createClient", "username": "ghost", "password": "boo", "textname": "carewatch device"},
                {"command": "setDefaultACLAccess", "acls": [{"acltype": "publishClientSend", "allow": True}]},
            ]
        )
    code, lines = _sync(stack, monkeypatch, capsys)
    assert code == 1  # one login could not be given its password back over the live API
    assert "  updated default ACL access (deny by default)" in lines
    assert "  updated role dev.wm-sec-wide (ACLs)" in lines
    assert "  created client wm-sec-drift (disabled: no password)" in lines
    assert "  removed client ghost (not in the registry)" in lines
    assert any(line.startswith("  unresolved wm-sec-drift: ") for line in lines)
    assert "  left alone (not carewatch's): carewatch.admin" in lines
    assert lines[0].startswith(f"broker sync: mqtts://carewatch.admin:***@127.0.0.1:{stack.broker.tls_port}?ca_file=")
    assert lines[-1] == (
        "broker sync: clients created=1 updated=0 disabled=0 removed=1; roles created=0 updated=1 removed=0;"
        " defaults updated=1; unresolved=1 failed=0"
    )
    ghost = Probe(stack.device_url, "ghost", "boo")
    assert not ghost.accepted
    ghost.close()

    # Restore from the registry's hashes: the plugin's file, written with the broker stopped.
    output = tmp_path / "dynamic-security.json"
    assert cli.main(["broker", "dynsec-config", "--output", str(output)]) == 0
    stack.broker.stop()
    stack.broker.dynsec_file.write_text(output.read_text(encoding="utf-8"), encoding="utf-8")
    stack.broker.start()
    restored = _device(stack, drifted)
    assert restored.accepted, restored.connack  # its password came back without the plaintext
    restored.close()
    wait_until(stack.pipeline.ingest.connected.is_set, timeout=30)
    code, lines = _sync(stack, monkeypatch, capsys)
    assert code == 0, lines
    assert lines[-1].startswith("broker sync: clients created=0 updated=0 disabled=0 removed=0;")


def test_a_change_the_broker_missed_is_recorded_and_applied_when_it_returns(stack: Stack) -> None:
    body = _provision(stack, "wm-sec-pend")
    stack.broker.stop()
    try:
        response = stack.api.post("/api/v1/devices/wm-sec-pend/credentials")
        assert response.status_code == 200
        rotated = response.json()
        assert rotated["broker"] == "pending"
        with psycopg.connect(stack.database_url) as conn:
            pending = conn.execute("SELECT username, attempts FROM broker_pending").fetchall()
        assert [row[0] for row in pending] == ["wm-sec-pend"]
    finally:
        stack.broker.start()

    def cleared() -> bool:
        with psycopg.connect(stack.database_url) as conn:
            return conn.execute("SELECT count(*) FROM broker_pending").fetchone() == (0,)

    wait_until(cleared, timeout=30)  # the pipeline's retry loop gave the broker the new password
    new = _device(stack, rotated)
    assert new.accepted
    new.close()
    old = _device(stack, body)
    assert not old.accepted
    old.close()
