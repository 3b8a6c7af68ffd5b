"""Resident check-ins: the phone gateway's signed answer callback, and the check-ins people may read.

``POST /api/v1/checkins/{checkin_id}/answer`` is called by the voice/SMS gateway, not by a person: it
carries no bearer token but an HMAC-SHA256 signature of the body with the shared callback secret
(``X-Carewatch-Timestamp`` and ``X-Carewatch-Signature``, the scheme of carewatch's own webhooks,
``alerting.signing``; five minutes of clock tolerance). A wrong or missing signature is a 401, and so is
any callback when no secret is configured (nothing to verify against: refused, never left open). The
answer is idempotent: a repeated callback finds the check-in answered and changes nothing.

The reads (``GET /checkins/{id}``, ``GET /households/{id}/checkins``) are scoped like alerts.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request
from pydantic import ValidationError

from alerting import checkins
from alerting.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from api.audit import Audit
from api.auth import Reader
from api.deps import Connection, Context
from api.problems import ProblemError
from api.ratelimit import Limiter, client_address
from api.routes.households import visible_or_404
from i18n import N_
from schemas.alerts import CheckinAnswerBody, CheckinAnswerResult, CheckinPublic
from storage import alert_views
from storage import checkins as store

log = logging.getLogger(__name__)

# Read routes (bearer token, included with the authenticated routers).
router = APIRouter(tags=["checkins"])
# The gateway's callback (signature, no bearer token): listed in SIGNED_ROUTES for the auth tests.
callback_router = APIRouter(tags=["checkins"])

# Any string: a malformed id is an unknown one (404) -- after the signature check, never before it.
CheckinIdPath = Annotated[str, Path(max_length=128)]
# (method, path) of the routes authenticated by a signature instead of a bearer token.
SIGNED_ROUTES = frozenset({("POST", "/api/v1/checkins/{checkin_id}/answer")})


@callback_router.post(
    "/checkins/{checkin_id}/answer",
    openapi_extra={"x-carewatch-auth": "signature"},
    responses={401: {"description": "bad or missing signature"}, 404: {"description": "unknown check-in"}},
)
async def answer(
    checkin_id: CheckinIdPath,
    request: Request,
    context: Context,
    limiter: Limiter,
    x_carewatch_timestamp: Annotated[str, Header(alias=TIMESTAMP_HEADER)] = "",
    x_carewatch_signature: Annotated[str, Header(alias=SIGNATURE_HEADER)] = "",
) -> CheckinAnswerResult:
    """The resident answered the gateway's call or SMS: 1 ok, 2 help, 3 away (signed by the gateway)."""
    client = client_address(request)
    limiter.check_client(client)  # 429 for an address that has sent too many bad signatures
    if not x_carewatch_timestamp or not x_carewatch_signature:
        limiter.auth_failed(client)
        raise ProblemError(401, N_("Unauthorized"), N_("the callback must be signed"))
    secret = context.checkin_secret
    if not secret:  # nothing to verify against: no signature can be good
        log.warning("check-in callback refused: CAREWATCH_CHECKIN_SECRET is not set")
        limiter.auth_failed(client)
        raise ProblemError(401, N_("Unauthorized"), N_("check-in callbacks are not configured on this server"))
    raw = await request.body()
    if not verify(secret, x_carewatch_timestamp, raw, x_carewatch_signature, now=time.time()):
        log.warning("check-in callback with a bad or stale signature refused")
        limiter.auth_failed(client)
        raise ProblemError(401, N_("Unauthorized"), N_("bad or missing signature"))
    try:
        body = CheckinAnswerBody.model_validate_json(raw)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
        raise ProblemError(
            422, N_("Invalid request"), N_("the answer does not match the schema: {errors}"), errors=errors[:500]
        ) from exc
    now = context.clock()
    at = body.answered_at if body.answered_at is not None and body.answered_at <= now else now
    with context.pool.connection() as conn, conn.transaction():
        try:
            result = checkins.answer(conn, checkin_id, body.answer, body.via, at, now, context.alerting)
        except KeyError as exc:
            raise ProblemError(
                404, N_("Not found"), N_("check-in {checkin_id} not found"), checkin_id=checkin_id
            ) from exc
        row = store.get(conn, checkin_id)
    assert row is not None  # noqa: S101 - answered above in this transaction
    context.on_alert_changed(int(row["alert_id"]))
    log.info("check-in %s answered %s by %s: %s", checkin_id, body.answer.value, body.via, result)
    return CheckinAnswerResult.model_validate({"checkin_id": checkin_id, "result": result, "checkin": row})


@router.get("/checkins/{checkin_id}")
def get_checkin(checkin_id: CheckinIdPath, conn: Connection, principal: Reader, audit: Audit) -> CheckinPublic:
    row = store.get(conn, checkin_id)
    if row is None or alert_views.get_alert(conn, principal.scope, int(row["alert_id"])) is None:
        raise ProblemError(404, N_("Not found"), N_("check-in {checkin_id} not found"), checkin_id=checkin_id)
    audit("view", "checkin", checkin_id)
    return CheckinPublic.model_validate(row)


@router.get("/households/{household_id}/checkins")
def household_checkins(household_id: str, conn: Connection, principal: Reader, audit: Audit) -> list[CheckinPublic]:
    """The household's latest check-ins, newest first: how often the resident is asked, and answers."""
    visible_or_404(conn, principal, household_id)
    rows: list[dict[str, Any]] = store.for_household(conn, household_id)
    audit("list", "checkin", household_id)
    return [CheckinPublic.model_validate(row) for row in rows]
