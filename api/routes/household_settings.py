"""A household's detector settings: thresholds, away/hospital periods, quiet windows (issue 4).

``households.settings`` is read by the detector runner (``HouseholdSettings.from_json``) on its next
registry refresh (every ``detector_refresh_s``). Every body is checked twice: by its pydantic schema and
then by ``HouseholdSettings.from_json`` itself, so a value the detectors would refuse is a 422 here and
never a stored setting that silently falls back to defaults. Responses are built from what
``from_json`` read back: they show the settings exactly as the detectors will use them.

Who may do what:
- ``GET /households/{id}/settings``: admins, the household's district operators, and caregivers in its
  care plan (they announce absences, so they see them);
- ``PUT /households/{id}/settings`` (replace everything, thresholds included): admins and district
  operators; caregivers get 403 (thresholds are the care team's tuning, not a family's);
- ``POST /households/{id}/absences`` (announce one away trip or hospital stay) and
  ``POST /households/{id}/absences/end`` (the resident came home early: detection resumes now): also
  caregivers in the care plan. An announced absence must not have ended already: backdating one would
  only hide late readings from the detectors.
Device provisioners get 403; a household outside the caller's scope is a 404. Every write is audited.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, status

from api.audit import Audit
from api.auth import Principal, Reader, Staff
from api.deps import Connection, Context
from api.problems import ProblemError
from detectors.config import HouseholdSettings
from i18n import N_
from schemas.api import (
    MAX_ABSENCES,
    AbsenceEnd,
    AbsencePeriod,
    HouseholdSettingsPublic,
    HouseholdSettingsPut,
)
from storage import access
from storage import household_settings as store

router = APIRouter(prefix="/households/{household_id}", tags=["households"])

_SETTINGS_ERRORS = (ValueError, KeyError, TypeError, OverflowError)


def _load(
    conn: psycopg.Connection, principal: Principal, household_id: str, *, for_update: bool = False
) -> tuple[str, dict[str, Any]]:
    if not access.household_visible(conn, principal.scope, household_id):
        raise ProblemError(404, N_("Not found"), N_("household {household_id} not found"), household_id=household_id)
    found = store.get(conn, household_id, for_update=for_update)
    if found is None:  # deleted between the two reads
        raise ProblemError(404, N_("Not found"), N_("household {household_id} not found"), household_id=household_id)
    return found


def _parse(data: dict[str, Any], timezone: str) -> HouseholdSettings:
    """The settings as the detectors read them; 422 if they would refuse them."""
    try:
        return HouseholdSettings.from_json(data, timezone=timezone)
    except _SETTINGS_ERRORS as exc:
        raise ProblemError(
            422, N_("Invalid request"), N_("the detectors refuse these settings: {reason}"), reason=exc
        ) from exc


def _public(household_id: str, settings: HouseholdSettings) -> HouseholdSettingsPublic:
    return HouseholdSettingsPublic.model_validate(
        {
            "household_id": household_id,
            "timezone": settings.timezone,
            "flat_min_litres": settings.flat_min_litres,
            "flat_window_h": settings.flat_window_h,
            "daily_max_l": settings.daily_max_l,
            "routine_enabled": settings.routine_enabled,
            "away": [{"start": p.start, "end": p.end, "reason": p.reason} for p in settings.away],
            "quiet": [
                {"start": q.start.isoformat("minutes"), "end": q.end.isoformat("minutes")} for q in settings.quiet
            ],
        }
    )


def _stored(conn: psycopg.Connection, household_id: str, data: dict[str, Any], timezone: str) -> HouseholdSettings:
    """Store ``data`` once the detectors' own reader accepts it; returns what they will read."""
    settings = _parse(data, timezone)
    store.put(conn, household_id, data)
    return settings


def _current(household_id: str, data: dict[str, Any], timezone: str) -> HouseholdSettings:
    """Stored settings (possibly written by SQL, e.g. the simulator); 409 if the detectors refuse them."""
    try:
        settings = HouseholdSettings.from_json(data, timezone=timezone)
        _public(household_id, settings)
    except _SETTINGS_ERRORS as exc:  # pydantic's ValidationError is a ValueError
        raise ProblemError(
            409,
            N_("Invalid stored settings"),
            N_("the stored settings are not valid; PUT a complete set to replace them"),
        ) from exc
    return settings


def _body_json(body: HouseholdSettingsPut) -> dict[str, Any]:
    data = body.model_dump(mode="json", exclude_none=True)
    data["away"] = [_period_json(period) for period in body.away]
    return data


def _period_json(period: AbsencePeriod) -> dict[str, str]:
    # UTC, like the rest of the stored times; from_json converts any offset to UTC anyway.
    return {"start": period.start.isoformat(), "end": period.end.isoformat(), "reason": period.reason.value}


@router.get("/settings")
def get_settings(household_id: str, conn: Connection, principal: Reader, audit: Audit) -> HouseholdSettingsPublic:
    """The household's detector settings as the detectors read them (thresholds, absences, quiet windows)."""
    timezone, data = _load(conn, principal, household_id)
    settings = _current(household_id, data, timezone)
    audit("view", "household_settings", household_id)
    return _public(household_id, settings)


@router.put("/settings")
def put_settings(
    household_id: str, body: HouseholdSettingsPut, conn: Connection, principal: Staff, audit: Audit
) -> HouseholdSettingsPublic:
    """Replace the household's detector settings (the runner picks them up on its next refresh)."""
    with conn.transaction():
        timezone, _ = _load(conn, principal, household_id, for_update=True)
        settings = _stored(conn, household_id, _body_json(body), timezone)
        audit("update", "household_settings", household_id, detail=f"{len(settings.away)} absence(s)")
    return _public(household_id, settings)


@router.post("/absences", status_code=status.HTTP_201_CREATED)
def announce_absence(
    household_id: str, body: AbsencePeriod, conn: Connection, principal: Reader, audit: Audit, context: Context
) -> HouseholdSettingsPublic:
    """Announce an away trip or hospital stay (appended to the settings); returns the whole settings."""
    if body.end <= context.clock():
        raise ProblemError(422, N_("Invalid request"), N_("the absence has already ended"))
    with conn.transaction():
        timezone, data = _load(conn, principal, household_id, for_update=True)
        _current(household_id, data, timezone)
        away = [*data.get("away", ()), _period_json(body)]
        if len(away) > MAX_ABSENCES:
            raise ProblemError(
                409, N_("Too many absences"), N_("at most {limit}; staff may PUT the settings"), limit=MAX_ABSENCES
            )
        settings = _stored(conn, household_id, {**data, "away": away}, timezone)
        audit("create", "absence", household_id, detail=f"{body.reason.value} {body.start.isoformat()}")
    return _public(household_id, settings)


@router.post("/absences/end")
def end_absence(
    household_id: str, body: AbsenceEnd, conn: Connection, principal: Reader, audit: Audit, context: Context
) -> HouseholdSettingsPublic:
    """The resident is back: every absence under way at ``at`` (default now) ends then, so inactivity
    detection resumes at once. Absences that have not started yet are kept."""
    at = body.at or context.clock()
    with conn.transaction():
        timezone, data = _load(conn, principal, household_id, for_update=True)
        current = _current(household_id, data, timezone)
        under_way = [p for p in current.away if p.start <= at < p.end]
        away = [
            _period_json(AbsencePeriod(start=p.start, end=at if p in under_way else p.end, reason=p.reason))
            for p in current.away
            if p.start < at or p not in under_way
        ]
        ended = len(under_way)
        settings = _stored(conn, household_id, {**data, "away": away}, timezone)
        audit("update", "absence", household_id, detail=f"{ended} absence(s) ended")
    return _public(household_id, settings)
