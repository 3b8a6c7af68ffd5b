"""Administration: who am I, API tokens (mint and revoke), the audit log, and fleet health.

Only admins mint tokens through the API; the demo and tests call ``api.auth.create_token`` directly
(bootstrap: the first admin token cannot come from the API). Fleet health is open to admins, operators
(their district) and device provisioners: it carries device and household ids, no personal data.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.audit import Audit
from api.auth import AdminOnly, Authenticated, FleetViewer, create_token
from api.deps import Connection, Context
from api.problems import ProblemError
from api.ratelimit import Limiter
from i18n import N_
from schemas.api import ApiRole, AuditEntry, FleetDevice, FleetHealth, Page, TokenCreate, TokenIssued, WhoAmI
from storage import audit as audit_store
from storage import auth as token_store
from storage import fleet

router = APIRouter(tags=["admin"])


@router.get("/whoami")
def whoami(principal: Authenticated) -> WhoAmI:
    return WhoAmI(
        token_id=principal.token_id, role=principal.role, subject=principal.subject, district=principal.district
    )


@router.post("/tokens", status_code=status.HTTP_201_CREATED)
def mint_token(
    body: TokenCreate, conn: Connection, principal: AdminOnly, audit: Audit, context: Context, limiter: Limiter
) -> TokenIssued:
    """A new token; the response is the only place it ever appears in clear. Rate-limited per minting
    subject (429 with ``Retry-After``)."""
    limiter.take_mint(principal.subject)
    if body.role is ApiRole.OPERATOR and body.district is None:
        raise ProblemError(422, N_("Invalid request"), N_("an operator token needs a district"))
    with conn.transaction():
        token = create_token(conn, body.role, body.subject, body.district, now=context.clock())
        token_id = token.split("_")[1]
        audit("create", "api_token", token_id, detail=f"role {body.role.value} for {body.subject}")
    district = body.district if body.role is ApiRole.OPERATOR else None
    return TokenIssued(token_id=token_id, role=body.role, subject=body.subject, district=district, token=token)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(token_id: str, conn: Connection, principal: AdminOnly, audit: Audit, context: Context) -> Response:
    with conn.transaction():
        if not token_store.revoke_token(conn, token_id, context.clock()):
            raise ProblemError(404, N_("Not found"), N_("active token {token_id} not found"), token_id=token_id)
        audit("revoke", "api_token", token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/audit")
def audit_log(
    conn: Connection,
    principal: AdminOnly,
    subject: str | None = None,
    resource: str | None = None,
    resource_id: str | None = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[AuditEntry]:
    """Newest first; keyset pages by ``audit_id``."""
    rows = audit_store.list_entries(
        conn, subject=subject, resource=resource, resource_id=resource_id, before_id=cursor, limit=limit
    )
    items = [AuditEntry.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=str(items[-1].audit_id) if len(items) == limit else None)


@router.get("/fleet/health")
def fleet_health(
    conn: Connection,
    principal: FleetViewer,
    context: Context,
    household_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> FleetHealth:
    """Counts of offline, low-battery, silent and gap-reporting devices, and the problem devices by id."""
    summary, rows = fleet.fleet_health(conn, principal.scope, context.clock(), household_id=household_id, limit=limit)
    return FleetHealth(**summary, problem_devices=[FleetDevice.model_validate(row) for row in rows])
