"""Care plans in full (``/care-plans/{household_id}``) and home visits (``/households/{id}/visits``).

Staff (admins, operators in their district) write plans; readers see the plans of households in their
scope (``storage.access``; out of scope is a 404). Residents' medical notes are shown to staff and to
caregivers whose contact entry allows it (``storage.care_plans.caregiver_sees_medical_notes``: an
explicit ``medical_access`` wins, else the care role). Caregivers log visits as themselves only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Query, status

from alerting.visits import log_visit
from api.audit import Audit
from api.auth import Principal, Reader, Staff
from api.deps import Connection, Context
from api.problems import ProblemError
from i18n import N_
from schemas.api import ApiRole
from schemas.care import CarePlanContactDetail, CarePlanPublic, CarePlanPut, ResidentCareNotes, VisitCreate, VisitPublic
from storage import access, care_plans, registry
from storage import visits as visit_store

router = APIRouter(tags=["care plans"])


def _visible_or_404(conn: psycopg.Connection, principal: Principal, household_id: str) -> None:
    if not access.household_visible(conn, principal.scope, household_id):
        raise ProblemError(404, N_("Not found"), N_("household {household_id} not found"), household_id=household_id)


def _public(conn: psycopg.Connection, principal: Principal, household_id: str) -> CarePlanPublic:
    plan = care_plans.get_plan(conn, household_id)
    if plan is None:
        raise ProblemError(404, N_("Not found"), N_("household {household_id} not found"), household_id=household_id)
    if principal.role is ApiRole.CAREGIVER:
        show_notes = care_plans.caregiver_sees_medical_notes(conn, household_id, principal.subject)
    else:
        show_notes = principal.role in {ApiRole.ADMIN, ApiRole.OPERATOR}
    last = visit_store.last_visit(conn, household_id)
    return CarePlanPublic(
        household_id=household_id,
        district=plan["district"],
        timezone=plan["timezone"],
        visit_interval_days=plan["visit_interval_days"],
        access_notes=plan["access_notes"],
        contacts=[CarePlanContactDetail.model_validate(row) for row in plan["contacts"]],
        residents=[
            ResidentCareNotes(
                resident_id=row["resident_id"],
                name=row["name"],
                medical_notes=row["medical_notes"] if show_notes else None,
            )
            for row in plan["residents"]
        ],
        last_visit_at=last,
        next_visit_due=(last or plan["created_at"]) + timedelta(days=plan["visit_interval_days"]),
    )


@router.get("/care-plans/{household_id}")
def get_care_plan(household_id: str, conn: Connection, principal: Reader, audit: Audit) -> CarePlanPublic:
    _visible_or_404(conn, principal, household_id)
    plan = _public(conn, principal, household_id)
    audit("view", "care_plan", household_id, detail="full")
    return plan


@router.put("/care-plans/{household_id}")
def put_care_plan(
    household_id: str, body: CarePlanPut, conn: Connection, principal: Staff, audit: Audit
) -> CarePlanPublic:
    """Replace the plan: contacts in order (within each tier, earlier contacts are listed first)."""
    _visible_or_404(conn, principal, household_id)
    ids = [contact.caregiver_id for contact in body.contacts]
    if len(set(ids)) != len(ids):
        raise ProblemError(422, N_("Invalid request"), N_("a caregiver appears twice in the plan"))
    missing = [caregiver_id for caregiver_id in ids if not registry.caregiver_exists(conn, caregiver_id)]
    if missing:
        raise ProblemError(404, N_("Not found"), N_("caregiver(s) not found: {ids}"), ids=", ".join(missing))
    with conn.transaction():
        care_plans.replace_plan(conn, household_id, body)
        audit("update", "care_plan", household_id, detail=f"{len(ids)} contact(s)")
    return _public(conn, principal, household_id)


@router.get("/caregivers/{caregiver_id}/households")
def caregiver_households(caregiver_id: str, conn: Connection, principal: Reader) -> list[dict[str, Any]]:
    """The households whose care plans name this caregiver (a caregiver may ask only about themselves)."""
    if principal.role is ApiRole.CAREGIVER and caregiver_id != principal.subject:
        raise ProblemError(404, N_("Not found"), N_("caregiver {caregiver_id} not found"), caregiver_id=caregiver_id)
    rows = care_plans.households_of(conn, caregiver_id)
    if principal.scope.district is not None:
        rows = [row for row in rows if row["district"] == principal.scope.district]
    return rows


@router.post("/households/{household_id}/visits", status_code=status.HTTP_201_CREATED)
def create_visit(
    household_id: str, body: VisitCreate, conn: Connection, principal: Reader, audit: Audit, context: Context
) -> VisitPublic:
    """Log a home visit; it closes the household's open overdue-visit task, if any."""
    _visible_or_404(conn, principal, household_id)
    if principal.role is ApiRole.CAREGIVER and body.caregiver_id != principal.subject:
        raise ProblemError(403, N_("Forbidden"), N_("caregivers log their own visits"))
    if not registry.caregiver_exists(conn, body.caregiver_id):
        raise ProblemError(
            404, N_("Not found"), N_("caregiver {caregiver_id} not found"), caregiver_id=body.caregiver_id
        )
    now = context.clock()
    with conn.transaction():
        visit = log_visit(conn, household_id, body.caregiver_id, body.visited_at or now, body.note, now)
        audit("create", "visit", str(visit["visit_id"]), detail=f"household {household_id}")
    context.on_alert_changed(0)
    return VisitPublic.model_validate(visit)


@router.get("/households/{household_id}/visits")
def list_visits(
    household_id: str,
    conn: Connection,
    principal: Reader,
    cursor: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[VisitPublic]:
    _visible_or_404(conn, principal, household_id)
    rows = visit_store.list_visits(conn, household_id, before_id=cursor, limit=limit)
    return [VisitPublic.model_validate(row) for row in rows]
