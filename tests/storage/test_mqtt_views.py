"""The EMQX views of migration 0010 (``mqtt_accounts``, ``mqtt_acl``), read the way EMQX reads them.

EMQX itself does not run here. What the test checks is the contract EMQX's PostgreSQL authenticator
and authorizer rely on (deploy/emqx/carewatch.hocon): for ``password_hash_algorithm {name = pbkdf2,
mac_fun = sha512, iterations = 101, dk_length = 64}`` EMQX computes PBKDF2 over the ``salt`` column's
bytes and compares the lower-case hex digest with ``password_hash`` (emqx_passwd.erl), so the registry's
own ``$7$`` hash must verify the plaintext through the view; and the ACL rows must be exactly the
device's and the app's own topics.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import psycopg

from schemas.api import DeviceCreate, HouseholdCreate
from schemas.kinds import DeviceType
from storage import auth, broker_access, registry

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ACCOUNT = "SELECT password_hash, salt, iterations, is_superuser FROM mqtt_accounts WHERE username = %s LIMIT 1"
ACL = "SELECT permission, action, 'care/v1/' || topic FROM mqtt_acl WHERE username = %s ORDER BY action, topic"


def _emqx_accepts(row: tuple[str, bytes, int, bool], password: str) -> bool:
    password_hash, salt, iterations, _ = row
    return hashlib.pbkdf2_hmac("sha512", password.encode(), bytes(salt), iterations, 64).hex() == password_hash


def test_emqx_reads_logins_and_acls_from_the_registry(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        registry.insert_household(conn, HouseholdCreate(household_id="hh-emqx", name="Home", district="Putuo"))
        registry.insert_device(
            conn, DeviceCreate(device_id="cb-emqx", device_type=DeviceType.CALL_BUTTON, household_id="hh-emqx")
        )
        conn.execute("INSERT INTO caregivers (caregiver_id, name) VALUES ('cg-emqx', 'Volunteer')")
        _, device_password = auth.issue_device_credentials(conn, "cb-emqx", NOW)
        app_user, app_password = broker_access.issue_app_credentials(conn, "cg-emqx", NOW)

        device = conn.execute(ACCOUNT, ("cb-emqx",)).fetchone()
        assert device is not None
        assert _emqx_accepts(device, device_password)
        assert not _emqx_accepts(device, device_password + "x")
        assert device[3] is False
        assert conn.execute(ACL, ("cb-emqx",)).fetchall() == [
            ("allow", "publish", "care/v1/dev/cb-emqx/event"),
            ("allow", "publish", "care/v1/dev/cb-emqx/status"),
            ("allow", "publish", "care/v1/dev/cb-emqx/telemetry"),
            ("allow", "subscribe", "care/v1/dev/cb-emqx/cmd"),
        ]
        app = conn.execute(ACCOUNT, (app_user,)).fetchone()
        assert app is not None
        assert _emqx_accepts(app, app_password)
        assert conn.execute(ACL, (app_user,)).fetchall() == [
            ("allow", "publish", "care/v1/app/cg-emqx/replies"),
            ("allow", "subscribe", "care/v1/app/cg-emqx/acks"),
            ("allow", "subscribe", "care/v1/app/cg-emqx/alerts"),
        ]

        # Rotation replaces the hash; decommissioning and revoking remove the login and its rules.
        _, rotated = auth.issue_device_credentials(conn, "cb-emqx", NOW)
        row = conn.execute(ACCOUNT, ("cb-emqx",)).fetchone()
        assert row is not None
        assert _emqx_accepts(row, rotated)
        assert not _emqx_accepts(row, device_password)
        assert auth.decommission_device(conn, "cb-emqx", NOW)
        assert broker_access.revoke_app_credentials(conn, "cg-emqx", NOW) == app_user
        for username in ("cb-emqx", app_user):
            assert conn.execute(ACCOUNT, (username,)).fetchone() is None
            assert conn.execute(ACL, (username,)).fetchall() == []
