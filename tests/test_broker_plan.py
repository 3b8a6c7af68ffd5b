"""The broker-access planner and values, without a broker: roles, fail-closed decisions, the file format,
the MQTT URL form every client shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from carewatch.broker.dynsec_file import dynsec_config, password_fields
from carewatch.broker.model import (
    DEFAULT_ACL_ACCESS,
    MANAGED_TEXTNAMES,
    ROLE_TEXTNAME,
    Account,
    Acl,
    AclType,
    BrokerState,
    ClientState,
    RoleState,
    fingerprint_description,
)
from carewatch.broker.plan import Action, Target, plan
from carewatch.broker.roles import Service, device_role, service_role
from carewatch.broker.sync import AccessConfig, login_account, service_accounts
from schemas.mqtt_endpoint import MqttEndpoint
from storage.auth import hash_device_password
from storage.broker_access import RegistryLogin

ROOT = "care/v1"
HASH = hash_device_password("device-secret")


def _device(active: bool = True, password_hash: str = HASH) -> Account:
    return login_account(RegistryLogin("wm-1", "device", "wm-1", password_hash, active), AccessConfig(ROOT))


def _client(fingerprint: str, *, disabled: bool = False, roles: tuple[str, ...] = ("dev.wm-1",)) -> ClientState:
    textname = MANAGED_TEXTNAMES[_device().kind]
    return ClientState("wm-1", textname, fingerprint_description(fingerprint), disabled, roles)


def _role_state() -> RoleState:
    role = device_role(ROOT, "wm-1")
    return RoleState(role.name, ROLE_TEXTNAME, role.acls)


def test_a_device_role_allows_its_own_topics_only() -> None:
    acls = device_role(ROOT, "wm-1").acls
    assert {acl.topic for acl in acls if acl.acltype is AclType.SEND} == {
        "care/v1/dev/wm-1/telemetry",
        "care/v1/dev/wm-1/event",
        "care/v1/dev/wm-1/status",
    }
    assert {(acl.acltype, acl.topic) for acl in acls if acl.acltype is not AclType.SEND} == {
        (AclType.SUBSCRIBE_LITERAL, "care/v1/dev/wm-1/cmd"),
        (AclType.RECEIVE, "care/v1/dev/wm-1/cmd"),
    }
    assert all(acl.allow and "+" not in acl.topic and "#" not in acl.topic for acl in acls)
    ingest = service_role(ROOT, Service.INGEST).acls
    assert not any(acl.acltype is AclType.SEND for acl in ingest)  # the ingest publishes nothing


def test_a_new_device_is_created_with_its_role_and_password() -> None:
    account = _device()
    result = plan([account], BrokerState({}, {}), passwords={"wm-1": (account.fingerprint, "device-secret")})
    assert [(c.action, c.target, c.name) for c in result.changes] == [
        (Action.CREATED, Target.ROLE, "dev.wm-1"),
        (Action.CREATED, Target.CLIENT, "wm-1"),
    ]
    create = result.changes[1].commands[0]
    assert create["password"] == "device-secret"
    assert create["roles"] == [{"rolename": "dev.wm-1"}]
    assert result.unresolved == ()


def test_a_password_the_broker_cannot_be_given_fails_closed() -> None:
    account = _device()
    stale = _client("0123456789abcdef")
    result = plan([account], BrokerState({"wm-1": stale}, {"dev.wm-1": _role_state()}))
    assert [(c.action, c.name) for c in result.changes] == [(Action.DISABLED, "wm-1")]
    assert [command["command"] for command in result.changes[0].commands] == ["disableClient"]
    assert [item.username for item in result.unresolved] == ["wm-1"]
    # A plaintext held for *another* hash (an older rotation) is never used.
    other = plan(
        [account], BrokerState({"wm-1": stale}, {"dev.wm-1": _role_state()}), passwords={"wm-1": ("f" * 16, "old")}
    )
    assert [command["command"] for command in other.changes[0].commands] == ["disableClient"]


def test_a_decommissioned_device_is_disabled_and_an_unknown_managed_client_removed() -> None:
    account = _device(active=False)
    good = _client(account.fingerprint)
    ghost = ClientState("ghost", MANAGED_TEXTNAMES[account.kind], "", False, ())
    admin = ClientState("carewatch.admin", "carewatch admin", "", False, ("carewatch.admin",))
    actual = BrokerState(
        {"wm-1": good, "ghost": ghost, "carewatch.admin": admin}, {"dev.wm-1": _role_state()}, DEFAULT_ACL_ACCESS
    )
    result = plan([account], actual, full=True)
    assert [(c.action, c.target, c.name) for c in result.changes] == [
        (Action.DISABLED, Target.CLIENT, "wm-1"),
        (Action.REMOVED, Target.CLIENT, "ghost"),
    ]
    assert result.unresolved == ()  # nothing to resolve for a login that must not work anyway


def test_a_tampered_role_and_open_defaults_are_put_back() -> None:
    account = _device()
    widened = RoleState("dev.wm-1", ROLE_TEXTNAME, _role_state().acls | {Acl(AclType.SEND, "#")})
    actual = BrokerState(
        {"wm-1": _client(account.fingerprint)}, {"dev.wm-1": widened}, {**DEFAULT_ACL_ACCESS, "publishClientSend": True}
    )
    result = plan([account], actual, full=True)
    assert [(c.action, c.target) for c in result.changes] == [
        (Action.UPDATED, Target.DEFAULTS),
        (Action.UPDATED, Target.ROLE),
    ]
    assert {acl["topic"] for acl in result.changes[1].commands[0]["acls"]} == {
        acl.topic for acl in device_role(ROOT, "wm-1").acls
    }


def test_services_are_only_those_with_a_password() -> None:
    accounts = service_accounts(AccessConfig(ROOT, {Service.INGEST: "s3cret"}))
    assert [(a.username, a.password) for a in accounts] == [("carewatch.ingest", "s3cret")]


def test_the_plugin_file_carries_the_registry_hash_as_it_is() -> None:
    fields = password_fields(HASH)
    _, _, iterations, salt, digest = HASH.split("$")
    assert fields == {"password": digest, "salt": salt, "iterations": int(iterations)}
    config = dynsec_config([_device(active=False)], admin_username="carewatch.admin", admin_password="adm")
    device = next(client for client in config["clients"] if client["username"] == "wm-1")
    assert device["disabled"] is True
    assert device["password"] == digest
    assert config["defaultACLAccess"] == DEFAULT_ACL_ACCESS
    with pytest.raises(ValueError, match="7"):
        password_fields("$6$1$abc$def")


def test_mqtt_urls_carry_login_and_tls_files() -> None:
    endpoint = MqttEndpoint.parse("mqtts://carewatch.ingest:p%40ss@broker:8884?ca_file=/etc/ca.pem&protocol=3.1.1")
    assert (endpoint.host, endpoint.port, endpoint.username, endpoint.password) == (
        "broker",
        8884,
        "carewatch.ingest",
        "p@ss",
    )
    assert (endpoint.tls, endpoint.ca_file, endpoint.protocol) == (True, "/etc/ca.pem", "3.1.1")
    assert MqttEndpoint.parse(endpoint.url()) == endpoint
    assert "p@ss" not in endpoint.redacted()
    assert "p%40ss" not in endpoint.redacted()
    assert MqttEndpoint.parse("mqtts://h").port == 8883
    with pytest.raises(ValueError, match="mqtts"):
        MqttEndpoint.parse("mqtt://h?ca_file=/etc/ca.pem").ssl_context()  # a CA on a plain URL is a mistake
    with pytest.raises(ValueError, match="unknown"):
        MqttEndpoint.parse("mqtt://h?cafile=/x")


def test_the_production_broker_refuses_anonymous_clients_and_uses_dynamic_security() -> None:
    settings: dict[str, list[str]] = {}
    conf = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto" / "carewatch.conf"
    for raw in conf.read_text(encoding="utf-8").splitlines():
        key, _, value = raw.split("#", 1)[0].strip().partition(" ")
        if key:
            settings.setdefault(key, []).append(value)
    assert settings["allow_anonymous"] == ["false"]
    assert settings["per_listener_settings"] == ["false"]  # one set of logins and ACLs for all listeners
    assert settings["plugin"][0].endswith("/mosquitto_dynamic_security.so")
    assert "password_file" not in settings
    assert "acl_file" not in settings
    # Devices reach it only over TLS; the plain listener is loopback, for carewatch's own services.
    assert settings["listener"] == ["8883", "1883 127.0.0.1"]
