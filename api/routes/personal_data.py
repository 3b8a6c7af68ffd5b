"""Personal-data requests of a household (PIPL/GDPR): export everything held, or erase it. Admins only.

``GET /households/{id}/export`` returns ``HouseholdExport`` (raw readings of the last ``raw_days`` days;
a daily summary of all retained data). ``POST /households/{id}/erasure`` with the id repeated in the body
erases the household's personal data and returns what was done (``api.personal_data``,
``storage.erasure``); doing it again changes nothing. Both are audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api import personal_data
from api.audit import Audit
from api.auth import AdminOnly
from api.deps import Connection, Context
from api.problems import ProblemError
from i18n import N_
from schemas.personal_data import ErasureReport, ErasureRequest, HouseholdExport
from storage.erasure import HouseholdNotFoundError

router = APIRouter(prefix="/households", tags=["personal data"])


@router.get("/{household_id}/export")
def export_household(
    household_id: str,
    conn: Connection,
    principal: AdminOnly,
    audit: Audit,
    context: Context,
    raw_days: Annotated[int, Query(ge=0, le=31)] = 7,
) -> HouseholdExport:
    """Everything carewatch holds about the household (an access request)."""
    document = personal_data.export_household(conn, household_id, context.clock(), audit, raw_days=raw_days)
    if document is None:
        raise ProblemError(404, N_("Not found"), N_("household {household_id} not found"), household_id=household_id)
    return document


@router.post("/{household_id}/erasure")
def erase_household(
    household_id: str, body: ErasureRequest, conn: Connection, principal: AdminOnly, audit: Audit, context: Context
) -> ErasureReport:
    """Erase the household's personal data, keeping alert statistics and the audit trail."""
    if body.confirm_household_id != household_id:
        raise ProblemError(
            422, N_("Invalid request"), N_("confirm_household_id must repeat the household id of the path")
        )
    try:
        return personal_data.erase_household(conn, household_id, context.clock(), audit)
    except HouseholdNotFoundError as exc:
        raise ProblemError(
            404, N_("Not found"), N_("household {household_id} not found"), household_id=household_id
        ) from exc
