"""The dynamic security plugin's file (``plugin_opt_config_file``), written from the registry.

The plugin reads this JSON file only when the broker starts, and there it accepts a client's password
as ``password`` (base64 PBKDF2-SHA512 digest), ``salt`` (base64) and ``iterations``: exactly the parts
of the registry's ``$7$<iterations>$<salt>$<digest>`` hashes (Mosquitto's own ``clients.c`` loads these
fields; a test starts Mosquitto 2.0.11 on such a file and logs in). So this file restores *everything*,
device and app passwords included, without any plaintext: use it for a new broker, or to restore one
(stop it, write the file, start it), then ``carewatch broker sync`` keeps it in step.

It also holds the admin client carewatch manages the broker with (``broker_admin_username`` and
``broker_admin_password``) and its role, which may publish and read ``$CONTROL/dynamic-security/#``
and nothing else. The file holds password hashes: write it readable by the broker's user only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from carewatch.broker.model import (
    DEFAULT_ACL_ACCESS,
    MANAGED_TEXTNAMES,
    ROLE_TEXTNAME,
    Account,
    Acl,
    AclType,
    fingerprint_description,
)
from storage.auth import hash_device_password

ADMIN_ROLE = "carewatch.admin"
_ADMIN_ACLS = (
    Acl(AclType.SEND, "$CONTROL/dynamic-security/#"),
    Acl(AclType.RECEIVE, "$CONTROL/dynamic-security/#"),
    Acl(AclType.SUBSCRIBE_PATTERN, "$CONTROL/dynamic-security/#"),
)


def password_fields(password_hash: str) -> dict[str, Any]:
    """``$7$iterations$salt$digest`` → the plugin's ``password``, ``salt`` and ``iterations`` fields."""
    _, scheme, iterations, salt, digest = password_hash.split("$")
    if scheme != "7":
        raise ValueError(f"not a PBKDF2-SHA512 ($7$) hash: ${scheme}$...")
    return {"password": digest, "salt": salt, "iterations": int(iterations)}


def dynsec_config(accounts: Sequence[Account], *, admin_username: str, admin_password: str) -> dict[str, Any]:
    """The plugin's whole configuration: deny by default, the admin, and ``accounts`` with their roles."""
    clients: list[dict[str, Any]] = [
        {
            "username": admin_username,
            "textname": "carewatch admin",
            "roles": [{"rolename": ADMIN_ROLE}],
            **password_fields(hash_device_password(admin_password)),
        }
    ]
    roles: dict[str, dict[str, Any]] = {
        ADMIN_ROLE: {"rolename": ADMIN_ROLE, "acls": [acl.to_json() for acl in _ADMIN_ACLS]},
    }
    for account in accounts:
        stored = account.password_hash or (
            hash_device_password(account.password) if account.password is not None else None
        )
        client: dict[str, Any] = {
            "username": account.username,
            "textname": MANAGED_TEXTNAMES[account.kind],
            "textdescription": fingerprint_description(account.fingerprint),
            "roles": [{"rolename": account.role.name}],
        }
        if not account.enabled:
            client["disabled"] = True
        if stored is not None:
            client.update(password_fields(stored))
        clients.append(client)
        roles[account.role.name] = {
            "rolename": account.role.name,
            "textname": ROLE_TEXTNAME,
            "acls": [acl.to_json() for acl in sorted(account.role.acls)],
        }
    return {
        "defaultACLAccess": dict(DEFAULT_ACL_ACCESS),
        "clients": clients,
        "groups": [],
        "roles": list(roles.values()),
    }


def dynsec_json(accounts: Sequence[Account], *, admin_username: str, admin_password: str) -> str:
    return json.dumps(dynsec_config(accounts, admin_username=admin_username, admin_password=admin_password), indent=1)
