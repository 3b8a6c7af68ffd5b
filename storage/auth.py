"""API tokens and device MQTT credentials: only hashes are stored, never a usable secret.

Tokens are ``cw_<token_id>_<secret>``. The row is found by ``token_id`` (a primary-key lookup that
reveals nothing about the secret) and the secret's SHA-256 is then compared in constant time by the
caller (``api.auth``). A random 256-bit secret needs no slow hash: there is nothing to brute-force.

Device passwords are hashed with PBKDF2-SHA512 and stored as ``$7$<iterations>$<salt b64>$<hash b64>``
(the layout ``mosquitto_passwd`` writes), so the broker's password file can be generated from this table.

Functions take a connection and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg

# Mosquitto's default for $7$ hashes. The passwords are random 192-bit strings, so the iteration count
# is not what protects them; matching the broker's own default keeps the file interchangeable.
PBKDF2_ITERATIONS = 101


@dataclass(frozen=True, slots=True)
class TokenRow:
    token_id: str
    secret_sha256: str
    role: str
    subject: str
    district: str | None
    expires_at: datetime | None
    revoked_at: datetime | None


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def insert_token(
    conn: psycopg.Connection,
    *,
    token_id: str,
    secret_sha256: str,
    role: str,
    subject: str,
    district: str | None,
    now: datetime,
    expires_at: datetime | None = None,
) -> None:
    conn.execute(
        "INSERT INTO api_tokens (token_id, secret_sha256, role, subject, district, created_at, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (token_id, secret_sha256, role, subject, district, now, expires_at),
    )


def get_token(conn: psycopg.Connection, token_id: str) -> TokenRow | None:
    row = conn.execute(
        "SELECT token_id, secret_sha256, role, subject, district, expires_at, revoked_at FROM api_tokens"
        " WHERE token_id = %s",
        (token_id,),
    ).fetchone()
    return TokenRow(*row) if row else None


def revoke_token(conn: psycopg.Connection, token_id: str, now: datetime) -> bool:
    row = conn.execute(
        "UPDATE api_tokens SET revoked_at = %s WHERE token_id = %s AND revoked_at IS NULL RETURNING token_id",
        (now, token_id),
    ).fetchone()
    return row is not None


def hash_device_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_device_password(password: str, stored: str) -> bool:
    try:
        _, scheme, iterations, salt_b64, hash_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "7":
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt_b64), int(iterations))
    return hmac.compare_digest(digest, base64.b64decode(hash_b64))


def issue_device_credentials(conn: psycopg.Connection, device_id: str, now: datetime) -> tuple[str, str]:
    """Create (or replace) the device's MQTT login; return ``(username, password)``, shown once."""
    username = device_id
    password = secrets.token_urlsafe(24)
    conn.execute(
        "INSERT INTO device_credentials (device_id, username, password_hash, created_at) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (device_id) DO UPDATE SET password_hash = excluded.password_hash,"
        " created_at = excluded.created_at, revoked_at = NULL",
        (device_id, username, hash_device_password(password), now),
    )
    return username, password


def device_credentials_active(conn: psycopg.Connection, device_id: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM device_credentials WHERE device_id = %s AND revoked_at IS NULL", (device_id,)
    ).fetchone()
    return row is not None


def device_password_hash(conn: psycopg.Connection, username: str) -> str | None:
    """The stored hash of an active login (for a broker auth hook or a password-file export)."""
    row = conn.execute(
        "SELECT password_hash FROM device_credentials WHERE username = %s AND revoked_at IS NULL", (username,)
    ).fetchone()
    return str(row[0]) if row else None


def device_username(conn: psycopg.Connection, device_id: str) -> str | None:
    """The device's MQTT username (active or revoked), or None if it never had a login."""
    row = conn.execute("SELECT username FROM device_credentials WHERE device_id = %s", (device_id,)).fetchone()
    return str(row[0]) if row else None


def decommission_device(conn: psycopg.Connection, device_id: str, now: datetime) -> bool:
    """Mark the device decommissioned and revoke its MQTT login; False if it was not active."""
    row = conn.execute(
        "UPDATE devices SET decommissioned_at = %s WHERE device_id = %s AND decommissioned_at IS NULL"
        " RETURNING device_id",
        (now, device_id),
    ).fetchone()
    if row is None:
        return False
    conn.execute(
        "UPDATE device_credentials SET revoked_at = %s WHERE device_id = %s AND revoked_at IS NULL", (now, device_id)
    )
    return True
