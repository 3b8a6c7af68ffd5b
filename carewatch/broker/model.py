"""Values of broker access control: ACLs, roles, the accounts carewatch wants, what a broker has.

Pure values, shared by the planner (``plan.py``), the dynamic-security client (``dynsec.py``) and the
reconciler (``sync.py``). Names follow Mosquitto's dynamic security plugin (``acltype`` strings,
``rolename``, ``textname``); the EMQX views in ``storage/migrations/0010_broker_access.sql`` express
the same rules as rows.

Ownership: carewatch manages only what it marks. A broker client is carewatch's when its ``textname``
is one of ``MANAGED_TEXTNAMES``; a role when its ``textname`` is ``ROLE_TEXTNAME``. Everything else
(the dynamic-security admin from ``mosquitto_ctrl dynsec init``, an operator's own clients) is
reported and left alone.

Password fingerprints: the dynamic security plugin never reveals a password or its hash over its API,
so each managed client carries ``fp:<fingerprint>`` in its ``textdescription``: the first 16 hex digits
of the SHA-256 of the registry's ``$7$`` hash. A fingerprint that differs from the registry's means the
broker holds another password than the registry (a rotation that never reached the broker).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum

from storage.auth import hash_device_password


class AclType(StrEnum):
    SEND = "publishClientSend"
    RECEIVE = "publishClientReceive"
    SUBSCRIBE_LITERAL = "subscribeLiteral"
    SUBSCRIBE_PATTERN = "subscribePattern"
    UNSUBSCRIBE_PATTERN = "unsubscribePattern"


class AccountKind(StrEnum):
    DEVICE = "device"
    APP = "app"
    SERVICE = "service"


# textname of the clients carewatch manages, by kind; and of its roles.
MANAGED_TEXTNAMES = {kind: f"carewatch {kind.value}" for kind in AccountKind}
ROLE_TEXTNAME = "carewatch"
_FINGERPRINT_PREFIX = "fp:"

# Deny by default: every topic a client may use is granted by its role. Receiving is denied too, so a
# subscription that slipped through (a wildcard, a future ACL mistake) still delivers nothing.
DEFAULT_ACL_ACCESS: dict[str, bool] = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}


@dataclass(frozen=True, slots=True, order=True)
class Acl:
    acltype: AclType
    topic: str
    allow: bool = True
    priority: int = 0

    def to_json(self) -> dict[str, object]:
        return {"acltype": self.acltype.value, "topic": self.topic, "allow": self.allow, "priority": self.priority}


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    acls: frozenset[Acl]


@dataclass(frozen=True, slots=True)
class Account:
    """A broker client carewatch wants, as the registry (or settings, for services) says.

    ``fingerprint`` identifies the password the registry holds (see the module docstring);
    ``password_hash`` is that ``$7$`` hash (devices and apps), for writing a dynamic-security file;
    ``password`` is the plaintext where carewatch knows it (its own services, from settings).
    """

    username: str
    kind: AccountKind
    role: Role
    enabled: bool
    fingerprint: str
    password_hash: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ClientState:
    username: str
    textname: str
    textdescription: str
    disabled: bool
    roles: tuple[str, ...]

    @property
    def managed(self) -> bool:
        return self.textname in MANAGED_TEXTNAMES.values()

    @property
    def fingerprint(self) -> str | None:
        text = self.textdescription
        return text[len(_FINGERPRINT_PREFIX) :] if text.startswith(_FINGERPRINT_PREFIX) else None


@dataclass(frozen=True, slots=True)
class RoleState:
    name: str
    textname: str
    acls: frozenset[Acl]

    @property
    def managed(self) -> bool:
        return self.textname == ROLE_TEXTNAME


@dataclass(frozen=True, slots=True)
class BrokerState:
    """What a broker's dynamic security holds (all of it, or the part a live change looked at)."""

    clients: dict[str, ClientState]
    roles: dict[str, RoleState]
    default_acl: dict[str, bool] | None = None


def fingerprint_of_hash(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def fingerprint_description(fingerprint: str) -> str:
    return f"{_FINGERPRINT_PREFIX}{fingerprint}"


def service_password_hash(username: str, password: str) -> str:
    """A ``$7$`` hash of a service's password with a salt derived from its name, so the same setting
    always gives the same fingerprint (the broker's own copy is salted at random)."""
    return hash_device_password(password, salt=hashlib.sha256(username.encode()).digest()[:12])
