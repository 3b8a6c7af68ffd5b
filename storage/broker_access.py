"""The registry's MQTT logins as the broker should see them, caregiver app logins, and pending changes.

- ``registry_logins``: every device and caregiver-app login (active or not), the truth the broker is
  reconciled with (``carewatch.broker``). A device without a ``device_credentials`` row has no login.
- ``issue_app_credentials`` / ``revoke_app_credentials``: a caregiver app's login (username
  ``app.<caregiver_id>``), hashed like a device's (``storage.auth``), the password returned once.
- ``record_pending`` / ``pending_usernames`` / ``clear_pending``: logins whose last change has not reached
  the broker yet (``broker_pending``). Ids and error texts only, never a password.

Functions take a connection and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from storage.auth import hash_device_password


@dataclass(frozen=True, slots=True)
class RegistryLogin:
    username: str
    kind: str  # "device" or "app"
    subject_id: str  # device_id or caregiver_id
    password_hash: str
    active: bool


_LOGINS = """
SELECT c.username, 'device', c.device_id, c.password_hash,
       c.revoked_at IS NULL AND d.decommissioned_at IS NULL
FROM device_credentials c JOIN devices d USING (device_id)
WHERE (%(names)s::text[] IS NULL OR c.username = ANY(%(names)s))
UNION ALL
SELECT a.username, 'app', a.caregiver_id, a.password_hash, a.revoked_at IS NULL
FROM app_credentials a
WHERE (%(names)s::text[] IS NULL OR a.username = ANY(%(names)s))
ORDER BY 1
"""


def registry_logins(conn: psycopg.Connection, usernames: Sequence[str] | None = None) -> list[RegistryLogin]:
    """Every device and app login (``usernames``: only those)."""
    names = list(usernames) if usernames is not None else None
    return [RegistryLogin(*row) for row in conn.execute(_LOGINS, {"names": names}).fetchall()]


def app_username(caregiver_id: str) -> str:
    return f"app.{caregiver_id}"


def issue_app_credentials(conn: psycopg.Connection, caregiver_id: str, now: datetime) -> tuple[str, str]:
    """Create (or replace) the caregiver app's MQTT login; return ``(username, password)``, shown once."""
    username = app_username(caregiver_id)
    password = secrets.token_urlsafe(24)
    conn.execute(
        "INSERT INTO app_credentials (caregiver_id, username, password_hash, created_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (caregiver_id) DO UPDATE SET password_hash = excluded.password_hash,"
        " created_at = excluded.created_at, revoked_at = NULL",
        (caregiver_id, username, hash_device_password(password), now),
    )
    return username, password


def revoke_app_credentials(conn: psycopg.Connection, caregiver_id: str, now: datetime) -> str | None:
    """Revoke the app's login; its username, or None if it had no active one."""
    row = conn.execute(
        "UPDATE app_credentials SET revoked_at = %s WHERE caregiver_id = %s AND revoked_at IS NULL RETURNING username",
        (now, caregiver_id),
    ).fetchone()
    return str(row[0]) if row else None


def record_pending(conn: psycopg.Connection, username: str, error: str, now: datetime) -> None:
    conn.execute(
        "INSERT INTO broker_pending (username, since, attempts, last_error, updated_at) VALUES (%s, %s, 1, %s, %s)"
        " ON CONFLICT (username) DO UPDATE SET attempts = broker_pending.attempts + 1,"
        " last_error = excluded.last_error, updated_at = excluded.updated_at",
        (username, now, error[:500], now),
    )


def pending_usernames(conn: psycopg.Connection, limit: int = 1000) -> list[str]:
    rows = conn.execute("SELECT username FROM broker_pending ORDER BY since LIMIT %s", (limit,)).fetchall()
    return [str(row[0]) for row in rows]


def clear_pending(conn: psycopg.Connection, usernames: Sequence[str], *, before: datetime | None = None) -> int:
    """Forget pending changes that are now applied (only those recorded before ``before``, if given:
    a change recorded while the apply ran must stay)."""
    cursor = conn.execute(
        "DELETE FROM broker_pending WHERE username = ANY(%s) AND (%s::timestamptz IS NULL OR updated_at <= %s)",
        (list(usernames), before, before),
    )
    return cursor.rowcount
