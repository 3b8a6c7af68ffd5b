"""A client of Mosquitto's dynamic security plugin: JSON commands on ``$CONTROL/dynamic-security/v1``.

carewatch connects as the plugin's admin (``broker_admin_username``, a role allowed to publish to and
read ``$CONTROL/dynamic-security/#``), publishes ``{"commands": [...]}`` at QoS 1 and reads the answers
on ``$CONTROL/dynamic-security/v1/response``. Every command carries a ``correlationData`` of its own,
so answers are matched to commands even when another admin (the API process and a ``carewatch broker
sync`` at once) shares the response topic. The broker applies a change to every connected client at
once: a disabled client or a changed password kicks the sessions that used it.

Errors (``DynsecError`` and below):
- ``BrokerUnavailableError``: no connection, refused login, or no answer within ``timeout_s``; nothing is
  known about commands that were sent (they are idempotent enough to be planned and sent again);
- ``DynsecCommandError``: the plugin answered a command with an error (``command`` and ``error`` attributes).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from carewatch.broker.model import Acl, AclType, BrokerState, ClientState, RoleState
from schemas.mqtt_endpoint import MqttEndpoint

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"
_BATCH = 100
_PAGE = 1000

Command = dict[str, Any]
Response = dict[str, Any]


class DynsecError(RuntimeError):
    """Base of the errors of this module."""


class BrokerUnavailableError(DynsecError):
    """The broker could not be reached, refused the admin login, or did not answer in time."""


class DynsecCommandError(DynsecError):
    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"{command}: {error}")
        self.command = command
        self.error = error


class DynsecAdmin:
    """One admin connection; ``execute`` is thread-safe (one batch in flight at a time)."""

    def __init__(self, *, mqtt_url: str, timeout_s: float = 5.0) -> None:
        self._endpoint = MqttEndpoint.parse(mqtt_url)
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._answers: dict[str, Response] = {}
        self._waiting: set[str] = set()
        self._ready = threading.Event()
        self._refused: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"carewatch-admin-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311
        )
        if self._endpoint.username is not None:
            self._client.username_pw_set(self._endpoint.username, self._endpoint.password)
        context = self._endpoint.ssl_context()
        if context is not None:
            self._client.tls_set_context(context)
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._started = False

    @property
    def where(self) -> str:
        return self._endpoint.redacted()

    def __enter__(self) -> DynsecAdmin:
        self.connect()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect (once; paho reconnects by itself afterwards) and wait until answers can be read."""
        if not self._started:
            self._started = True
            self._client.connect_async(self._endpoint.host, self._endpoint.port, keepalive=30)
            self._client.loop_start()
        if not self._ready.wait(self._timeout_s):
            why = self._refused or f"no connection to {self.where} within {self._timeout_s:g}s"
            raise BrokerUnavailableError(why)

    def close(self) -> None:
        if self._started:
            self._client.disconnect()
            self._client.loop_stop()
            self._started = False
            self._ready.clear()

    def execute(self, commands: Sequence[Command], *, check: bool = True) -> list[Response]:
        """Send ``commands`` (in batches) and return one answer per command, in order.

        With ``check``, the first answer carrying an error raises ``DynsecCommandError`` (after all batches
        were answered, so what succeeded is known to have been applied).
        """
        answers: list[Response] = []
        with self._lock:
            for start in range(0, len(commands), _BATCH):
                answers.extend(self._batch(commands[start : start + _BATCH]))
        if check:
            for answer in answers:
                if answer.get("error"):
                    raise DynsecCommandError(str(answer.get("command")), str(answer["error"]))
        return answers

    def _batch(self, commands: Sequence[Command]) -> list[Response]:
        self.connect()
        prefix = uuid.uuid4().hex
        tags = [f"{prefix}:{index}" for index in range(len(commands))]
        tagged = [{**command, "correlationData": tag} for command, tag in zip(commands, tags, strict=True)]
        with self._cond:
            self._waiting.update(tags)
        try:
            info = self._client.publish(CONTROL_TOPIC, json.dumps({"commands": tagged}), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerUnavailableError(f"publish to {self.where} failed: {mqtt.error_string(info.rc)}")
            with self._cond:
                done = self._cond.wait_for(lambda: all(tag in self._answers for tag in tags), timeout=self._timeout_s)
                answers = [self._answers.pop(tag, {}) for tag in tags]
        finally:
            with self._cond:
                self._waiting.difference_update(tags)
        if not done:
            raise BrokerUnavailableError(f"no answer from the dynamic security plugin at {self.where}")
        return answers

    # --- reading the broker's state --------------------------------------------------------------------

    def state(self) -> BrokerState:
        """Every client and role, and the default ACL access."""
        clients = [_client_state(item) for item in self._pages("listClients", "clients")]
        roles = [_role_state(item) for item in self._pages("listRoles", "roles")]
        (defaults,) = self.execute([{"command": "getDefaultACLAccess"}])
        default_acl = {item["acltype"]: bool(item["allow"]) for item in defaults.get("data", {}).get("acls", [])}
        return BrokerState(
            clients={client.username: client for client in clients},
            roles={role.name: role for role in roles},
            default_acl=default_acl,
        )

    def part(self, usernames: Iterable[str], rolenames: Iterable[str]) -> BrokerState:
        """The named clients, the named roles and the roles those clients have."""
        names = sorted(set(usernames))
        answers = self.execute([{"command": "getClient", "username": name} for name in names], check=False)
        clients = [_client_state(answer["data"]["client"]) for answer in answers if "data" in answer]
        wanted = sorted(set(rolenames).union(role for client in clients for role in client.roles))
        answers = self.execute([{"command": "getRole", "rolename": name} for name in wanted], check=False)
        roles = [_role_state(answer["data"]["role"]) for answer in answers if "data" in answer]
        return BrokerState(clients={c.username: c for c in clients}, roles={r.name: r for r in roles})

    def _pages(self, command: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            (answer,) = self.execute([{"command": command, "verbose": True, "count": _PAGE, "offset": len(items)}])
            data = answer.get("data", {})
            page = data.get(key, [])
            items.extend(page)
            if not page or len(items) >= int(data.get("totalCount", 0)):
                return items

    # --- paho callbacks (network thread) ---------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._refused = f"{self.where} refused the admin login: {reason}"
            log.error("dynamic security: %s", self._refused)
            return
        self._refused = None
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if any(reason.is_failure for reason in reasons):
            self._refused = f"{self.where} refused the admin's subscription to {RESPONSE_TOPIC}"
            log.error("dynamic security: %s", self._refused)
            return
        self._ready.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._ready.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(message.payload).get("responses", [])
        except (ValueError, AttributeError):
            log.warning("dynamic security: unreadable answer on %s", message.topic)
            return
        with self._cond:
            for response in responses:
                tag = response.get("correlationData") if isinstance(response, dict) else None
                if isinstance(tag, str) and tag in self._waiting:  # not another admin's
                    self._answers[tag] = response
            self._cond.notify_all()


def _client_state(item: dict[str, Any]) -> ClientState:
    return ClientState(
        username=str(item["username"]),
        textname=str(item.get("textname", "")),
        textdescription=str(item.get("textdescription", "")),
        disabled=bool(item.get("disabled", False)),
        roles=tuple(str(role["rolename"]) for role in item.get("roles", [])),
    )


def _role_state(item: dict[str, Any]) -> RoleState:
    acls = frozenset(
        Acl(AclType(acl["acltype"]), str(acl["topic"]), bool(acl.get("allow", False)), int(acl.get("priority", 0)))
        for acl in item.get("acls", [])
        if acl.get("acltype") in AclType._value2member_map_
    )
    return RoleState(name=str(item["rolename"]), textname=str(item.get("textname", "")), acls=acls)
