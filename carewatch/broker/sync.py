"""Bring a Mosquitto broker's dynamic security to the registry: whole (``sync``) or a few logins (``apply``).

The registry (PostgreSQL) is the truth. ``desired_accounts`` reads it: every device and caregiver-app
login (``storage.broker_access``) with its role (``roles.py``), plus carewatch's own services whose
password is configured. ``sync`` reads the whole broker, plans (``plan.py``), sends the commands and
returns a ``SyncReport``: what it created, updated, disabled and removed, what failed, and what it could
not resolve. ``apply`` does the same for named logins only: what the API does right after a commit.

What a live sync can restore, and what it cannot: roles and ACLs, clients, which clients may log in,
and services' passwords (carewatch knows them) — all of it. A device's or app's password it can only
restore while the plaintext is still in memory (a change the broker missed a moment ago): the registry
keeps PBKDF2 hashes, and the plugin's API takes plaintext only. Such clients are disabled (fail closed)
and reported; ``dynsec_file.py`` restores them from the hashes into the plugin's file before a start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from carewatch.broker.dynsec import DynsecAdmin, Response
from carewatch.broker.model import Account, AccountKind, fingerprint_of_hash, service_password_hash
from carewatch.broker.plan import Action, Change, Target, Unresolved, commands_of, plan
from carewatch.broker.roles import Service, app_role, device_role, service_role, service_username
from storage.broker_access import RegistryLogin, registry_logins


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """What the accounts depend on besides the registry: the topic root and the services' passwords
    (a service without one gets no account: e.g. the simulator outside staging)."""

    topic_root: str
    service_passwords: Mapping[Service, str] = field(default_factory=dict, repr=False)


def login_account(login: RegistryLogin, config: AccessConfig) -> Account:
    if login.kind == "device":
        kind, role = AccountKind.DEVICE, device_role(config.topic_root, login.subject_id)
    else:
        kind, role = AccountKind.APP, app_role(config.topic_root, login.subject_id)
    return Account(
        username=login.username,
        kind=kind,
        role=role,
        enabled=login.active,
        fingerprint=fingerprint_of_hash(login.password_hash),
        password_hash=login.password_hash,
    )


def service_accounts(config: AccessConfig) -> list[Account]:
    accounts = []
    for service, password in sorted(config.service_passwords.items()):
        username = service_username(service)
        accounts.append(
            Account(
                username=username,
                kind=AccountKind.SERVICE,
                role=service_role(config.topic_root, service),
                enabled=True,
                fingerprint=fingerprint_of_hash(service_password_hash(username, password)),
                password=password,
            )
        )
    return accounts


def desired_accounts(
    conn: psycopg.Connection, config: AccessConfig, usernames: Sequence[str] | None = None
) -> list[Account]:
    """The registry's accounts (``usernames``: only those), services included."""
    logins = [login_account(login, config) for login in registry_logins(conn, usernames)]
    services = service_accounts(config)
    if usernames is not None:
        services = [account for account in services if account.username in usernames]
    return services + logins


@dataclass(frozen=True, slots=True)
class SyncReport:
    applied: tuple[Change, ...]
    failed: tuple[tuple[Change, str], ...]
    unresolved: tuple[Unresolved, ...]
    unmanaged: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unresolved

    def settled(self, usernames: Iterable[str]) -> list[str]:
        """Those of ``usernames`` whose changes all went through and that need nothing more."""
        if any(change.target is not Target.CLIENT for change, _ in self.failed):
            return []  # a role every named login may depend on did not go through
        open_ = {change.name for change, _ in self.failed} | {item.username for item in self.unresolved}
        return [name for name in usernames if name not in open_]

    def lines(self) -> list[str]:
        """The report for people: one line per change, failure and unresolved login, then the counts."""
        out = [f"  {_describe(change)}" for change in self.applied]
        out += [f"  FAILED {_describe(change)}: {error}" for change, error in self.failed]
        out += [f"  unresolved {item.username}: {item.reason}" for item in self.unresolved]
        if self.unmanaged:
            out.append(f"  left alone (not carewatch's): {', '.join(self.unmanaged)}")
        counts = Counter((change.target, change.action) for change in self.applied)

        def count(target: Target, *actions: Action) -> str:
            return " ".join(f"{action.value}={counts[target, action]}" for action in actions)

        everything = (Action.CREATED, Action.UPDATED, Action.DISABLED, Action.REMOVED)
        out.append(
            f"clients {count(Target.CLIENT, *everything)}; roles"
            f" {count(Target.ROLE, Action.CREATED, Action.UPDATED, Action.REMOVED)};"
            f" defaults {count(Target.DEFAULTS, Action.UPDATED)}; unresolved={len(self.unresolved)}"
            f" failed={len(self.failed)}"
        )
        return out


def _describe(change: Change) -> str:
    name = f" {change.name}" if change.name else ""
    reason = f" ({change.reason})" if change.reason else ""
    return f"{change.action.value} {change.target.value}{name}{reason}"


def sync(conn: psycopg.Connection, admin: DynsecAdmin, config: AccessConfig) -> SyncReport:
    """Reconcile the whole broker with the registry. Raises ``DynsecError`` if the broker is unreachable."""
    desired = desired_accounts(conn, config)
    actual = admin.state()
    result = plan(desired, actual, full=True)
    unmanaged = tuple(sorted(name for name, client in actual.clients.items() if not client.managed))
    return _run(admin, result.changes, result.unresolved, unmanaged)


def apply(
    conn: psycopg.Connection,
    admin: DynsecAdmin,
    config: AccessConfig,
    usernames: Sequence[str],
    passwords: Mapping[str, tuple[str, str]] | None = None,
) -> SyncReport:
    """Bring the named logins (and their roles) to the registry's state. Raises ``DynsecError``."""
    desired = desired_accounts(conn, config, usernames)
    roles = [account.role.name for account in desired]
    actual = admin.part(usernames, roles)
    result = plan(desired, actual, passwords=passwords)
    return _run(admin, result.changes, result.unresolved)


def _run(
    admin: DynsecAdmin, changes: Sequence[Change], unresolved: Sequence[Unresolved], unmanaged: tuple[str, ...] = ()
) -> SyncReport:
    answers: list[Response] = admin.execute(commands_of(changes), check=False)
    applied: list[Change] = []
    failed: list[tuple[Change, str]] = []
    position = 0
    for change in changes:
        mine = answers[position : position + len(change.commands)]
        position += len(change.commands)
        errors = [f"{answer.get('command')}: {answer['error']}" for answer in mine if answer.get("error")]
        if errors:
            failed.append((change, "; ".join(errors)))
        else:
            applied.append(change)
    return SyncReport(tuple(applied), tuple(failed), tuple(unresolved), unmanaged)
