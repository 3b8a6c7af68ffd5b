"""Plan the dynamic-security commands that bring a broker to the registry's accounts. Pure: no I/O.

``plan(desired, actual, passwords=..., full=...)`` compares the accounts carewatch wants with what the
broker holds and returns the changes (each with the commands that make it) and what it cannot make:

- a role that is missing or differs is created or replaced (``modifyRole`` with the whole ACL list);
- a client that is missing is created with its role (and its password, when carewatch knows it);
- a client whose role, marker or password differs is updated (``modifyClient``, ``setClientPassword``);
- a client that must not log in (decommissioned device, revoked app) is disabled, which also kicks its
  live session; one that may again is enabled only when its password is known to be the registry's;
- **fail closed**: when the broker's password is not the registry's (the fingerprints differ) and the
  plaintext is not at hand, the client is disabled and the account reported as unresolved, because the
  broker would otherwise go on accepting a password the registry revoked;
- with ``full``, managed clients and roles the registry no longer has are removed, and the broker's
  default ACL access is set to deny.

The dynamic security API accepts only plaintext passwords (it hashes them with a fresh salt), so a
password the registry holds only as a hash cannot be given to a running broker; ``dynsec_file.py``
writes such hashes into the plugin's file instead, for a broker that is about to start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from carewatch.broker.model import (
    DEFAULT_ACL_ACCESS,
    MANAGED_TEXTNAMES,
    ROLE_TEXTNAME,
    Account,
    BrokerState,
    ClientState,
    Role,
    fingerprint_description,
)

Command = dict[str, Any]


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DISABLED = "disabled"
    REMOVED = "removed"


class Target(StrEnum):
    CLIENT = "client"
    ROLE = "role"
    DEFAULTS = "default ACL access"


@dataclass(frozen=True, slots=True)
class Change:
    action: Action
    target: Target
    name: str
    reason: str
    commands: tuple[Command, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Unresolved:
    username: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    changes: tuple[Change, ...]
    unresolved: tuple[Unresolved, ...]


HASH_ONLY = (
    "the broker cannot be given the registry's password (only its hash is stored): rotate the credentials,"
    " or restore the broker's file with `carewatch broker dynsec-config`"
)


def plan(
    desired: Sequence[Account],
    actual: BrokerState,
    *,
    passwords: Mapping[str, tuple[str, str]] | None = None,
    full: bool = False,
) -> Plan:
    """Changes that bring ``actual`` to ``desired``.

    ``passwords`` maps a username to ``(fingerprint, plaintext)`` for passwords carewatch still holds in
    memory (a change the broker missed); one is used only if its fingerprint is the account's.
    Managed clients and roles in ``actual`` that no desired account needs are removed, so ``actual``
    must hold only what is in scope (all of the broker with ``full``, which also sets the defaults).
    """
    known = dict(passwords or {})
    roles: list[Change] = []
    clients: list[Change] = []
    removals: list[Change] = []
    unresolved: list[Unresolved] = []
    wanted_roles: dict[str, Role] = {}
    for account in desired:
        password = account.password if account.password is not None else _known(known, account)
        current = actual.clients.get(account.username)
        if current is None:
            change, problem = _new_client(account, password)
        else:
            change, problem = _existing_client(account, current, password)
        if current is not None or change is not None:
            wanted_roles[account.role.name] = account.role
        if change is not None:
            clients.append(change)
        if problem is not None:
            unresolved.append(problem)
    for role in wanted_roles.values():
        roles.extend(_role(role, actual))
    wanted = {account.username for account in desired}
    for client in actual.clients.values():
        if client.managed and client.username not in wanted:
            command = {"command": "deleteClient", "username": client.username}
            removals.append(Change(Action.REMOVED, Target.CLIENT, client.username, "not in the registry", (command,)))
    for role_state in actual.roles.values():
        if role_state.managed and role_state.name not in wanted_roles:
            command = {"command": "deleteRole", "rolename": role_state.name}
            removals.append(Change(Action.REMOVED, Target.ROLE, role_state.name, "no account uses it", (command,)))
    defaults: list[Change] = []
    if full and actual.default_acl is not None and actual.default_acl != DEFAULT_ACL_ACCESS:
        acls = [{"acltype": kind, "allow": allow} for kind, allow in DEFAULT_ACL_ACCESS.items()]
        set_defaults: Command = {"command": "setDefaultACLAccess", "acls": acls}
        defaults.append(Change(Action.UPDATED, Target.DEFAULTS, "", "deny by default", (set_defaults,)))
    return Plan(tuple(defaults + roles + clients + removals), tuple(unresolved))


def commands_of(changes: Iterable[Change]) -> list[Command]:
    return [command for change in changes for command in change.commands]


def _known(known: Mapping[str, tuple[str, str]], account: Account) -> str | None:
    held = known.get(account.username)
    return held[1] if held is not None and held[0] == account.fingerprint else None


def _role(role: Role, actual: BrokerState) -> list[Change]:
    acls = [acl.to_json() for acl in sorted(role.acls)]
    current = actual.roles.get(role.name)
    if current is None:
        command: Command = {"command": "createRole", "rolename": role.name, "textname": ROLE_TEXTNAME, "acls": acls}
        return [Change(Action.CREATED, Target.ROLE, role.name, "", (command,))]
    if current.acls != role.acls or not current.managed:
        modify: Command = {"command": "modifyRole", "rolename": role.name, "textname": ROLE_TEXTNAME, "acls": acls}
        return [Change(Action.UPDATED, Target.ROLE, role.name, "ACLs", (modify,))]
    return []


def _new_client(account: Account, password: str | None) -> tuple[Change | None, Unresolved | None]:
    if not account.enabled:
        return None, None  # absent is refused as well as disabled
    command: Command = {
        "command": "createClient",
        "username": account.username,
        "textname": MANAGED_TEXTNAMES[account.kind],
        "roles": [{"rolename": account.role.name}],
    }
    if password is None:
        # A client without a password cannot log in; disabled as well, so it reads as what it is.
        command["textdescription"] = ""
        disable = {"command": "disableClient", "username": account.username}
        change = Change(Action.CREATED, Target.CLIENT, account.username, "disabled: no password", (command, disable))
        return change, Unresolved(account.username, HASH_ONLY)
    command["password"] = password
    command["textdescription"] = fingerprint_description(account.fingerprint)
    return Change(Action.CREATED, Target.CLIENT, account.username, account.kind.value, (command,)), None


def _existing_client(
    account: Account, current: ClientState, password: str | None
) -> tuple[Change | None, Unresolved | None]:
    commands: list[Command] = []
    reasons: list[str] = []
    modify: Command = {}
    if current.textname != MANAGED_TEXTNAMES[account.kind]:
        modify["textname"] = MANAGED_TEXTNAMES[account.kind]
        reasons.append("taken over")
    if current.roles != (account.role.name,):
        modify["roles"] = [{"rolename": account.role.name}]
        reasons.append("role")
    password_ok = current.fingerprint == account.fingerprint
    problem = None
    if not password_ok and password is not None:
        commands.append({"command": "setClientPassword", "username": account.username, "password": password})
        modify["textdescription"] = fingerprint_description(account.fingerprint)
        reasons.append("password")
        password_ok = True
    elif not password_ok and account.enabled:
        problem = Unresolved(account.username, HASH_ONLY)
    if modify:
        commands.insert(0, {"command": "modifyClient", "username": account.username, **modify})
    may_log_in = account.enabled and password_ok
    action = Action.UPDATED
    if current.disabled and may_log_in:
        commands.append({"command": "enableClient", "username": account.username})
        reasons.append("enabled")
    elif not current.disabled and not may_log_in:
        commands.append({"command": "disableClient", "username": account.username})
        action = Action.DISABLED
        reasons.append("not active in the registry" if not account.enabled else "password not the registry's")
    if not commands:
        return None, problem
    return Change(action, Target.CLIENT, account.username, ", ".join(reasons), tuple(commands)), problem
