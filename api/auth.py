"""Authentication and authorisation of the monitoring API.

Every route under ``/api/v1`` requires a bearer token (``Authorization: Bearer cw_<id>_<secret>``);
only ``/healthz``, ``/readyz`` and the static page are open. A token carries one role:

======================  ===============================================================================
admin                   everything, including minting tokens and reading the audit log
operator                households, residents, care plans, devices, readings and alerts of one district
caregiver               only the households in their care plans; medical notes only if their care-plan
                        contact allows it (``storage.care_plans.sees_medical_notes``: the contact's
                        ``medical_access``, else the care role); claims and resolves alerts as themselves
device_provisioner      devices only: provision (MQTT login returned once), list, decommission
======================  ===============================================================================

Two kinds of refusal, on purpose: a role that may never use an endpoint gets 403; a row outside the
caller's scope (another district's household, a household not in the caregiver's care plans) gets 404,
the same answer as for a row that does not exist, so its existence does not leak.

Wrong tokens are rate-limited per client address and minting per admin (``api.ratelimit``).
Tokens are minted by ``create_token`` (the demo and tests call it; admins also through the API). The
secret is compared as a SHA-256 digest with ``hmac.compare_digest`` after a primary-key lookup by id.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import Context
from api.problems import ProblemError
from api.ratelimit import Limiter, client_address
from i18n import N_
from schemas.api import ApiRole
from storage import auth as store
from storage import care_plans
from storage.access import EVERYTHING, Scope

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"^cw_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})$")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. ``subject`` is an id (caregiver id, operator id), never a name."""

    token_id: str
    role: ApiRole
    subject: str
    district: str | None

    @property
    def scope(self) -> Scope:
        if self.role is ApiRole.OPERATOR:
            return Scope(district=self.district or "")
        if self.role is ApiRole.CAREGIVER:
            return Scope(caregiver_id=self.subject)
        return EVERYTHING


def create_token(
    conn: psycopg.Connection,
    role: ApiRole | str,
    subject: str,
    district: str | None = None,
    *,
    now: datetime | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Mint a token and return it (the only time it exists in clear). Does not commit.

    Operators need a ``district``; for caregivers ``subject`` is their ``caregiver_id``.
    """
    role = ApiRole(role)
    if role is ApiRole.OPERATOR and not district:
        raise ValueError("an operator token needs a district")
    token_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    store.insert_token(
        conn,
        token_id=token_id,
        secret_sha256=store.sha256_hex(secret),
        role=role.value,
        subject=subject,
        district=district if role is ApiRole.OPERATOR else None,
        now=now or datetime.now(UTC),
        expires_at=expires_at,
    )
    log.info("API token %s minted (role %s, subject %s)", token_id, role.value, subject)
    return f"cw_{token_id}_{secret}"


def authenticate(conn: psycopg.Connection, token: str, now: datetime) -> Principal | None:
    """The principal of a valid, unexpired, unrevoked token; None otherwise."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    token_id, secret = match.groups()
    row = store.get_token(conn, token_id)
    # Compare digests even when the row is missing, so timing does not tell "unknown id" from "bad secret".
    expected = row.secret_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(expected, store.sha256_hex(secret)) or row is None:
        return None
    if row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return Principal(token_id=row.token_id, role=ApiRole(row.role), subject=row.subject, district=row.district)


# auto_error=False: a missing header becomes our own problem+json 401, not FastAPI's plain 403.
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer cw_...`")


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, N_("Unauthorized"), detail, headers={"WWW-Authenticate": "Bearer"})


def get_principal(
    request: Request,
    context: Context,
    limiter: Limiter,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized(N_("a bearer token is required"))
    client = client_address(request)
    limiter.check_client(client)  # 429 for an address that has presented too many wrong tokens
    with context.pool.connection() as conn:
        principal = authenticate(conn, credentials.credentials, context.clock())
    if principal is None:
        limiter.auth_failed(client)
        raise _unauthorized(N_("the token is unknown, expired or revoked"))
    return principal


def require(*roles: ApiRole) -> Callable[[Principal], Principal]:
    """A dependency that lets only ``roles`` through (403 for any other role)."""
    allowed = frozenset(roles)

    def check(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if principal.role not in allowed:
            raise ProblemError(403, N_("Forbidden"), N_("role {role} may not do this"), role=principal.role.value)
        return principal

    return check


Authenticated = Annotated[Principal, Depends(get_principal)]
AdminOnly = Annotated[Principal, Depends(require(ApiRole.ADMIN))]
Staff = Annotated[Principal, Depends(require(ApiRole.ADMIN, ApiRole.OPERATOR))]
Reader = Annotated[Principal, Depends(require(ApiRole.ADMIN, ApiRole.OPERATOR, ApiRole.CAREGIVER))]
Provisioner = Annotated[Principal, Depends(require(ApiRole.ADMIN, ApiRole.OPERATOR, ApiRole.DEVICE_PROVISIONER))]
FleetViewer = Annotated[Principal, Depends(require(ApiRole.ADMIN, ApiRole.OPERATOR, ApiRole.DEVICE_PROVISIONER))]


def may_read_medical_notes(conn: psycopg.Connection, principal: Principal, household_id: str) -> bool:
    """Staff read medical notes (they dispatch emergency help); caregivers as their care plan says."""
    if principal.role in {ApiRole.ADMIN, ApiRole.OPERATOR}:
        return True
    if principal.role is ApiRole.CAREGIVER:
        return care_plans.caregiver_sees_medical_notes(conn, household_id, principal.subject)
    return False
