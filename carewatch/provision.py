"""Provisioning a simulated fleet in carewatch's registry, and announcing its absences.

It lives in the composition root, not in the simulator: it is I/O, joining the simulator's pure fleet
to carewatch's registry. It goes straight through ``storage.registry`` on a caller's psycopg
connection, inside one transaction, so a tester, the demo (``carewatch.demo``) and the end-to-end tests
provision a fleet the same way:

- ``provision_fleet(conn, fleet, ...)``: one household per home (with one resident) and its devices;
  optionally a care plan per home (a volunteer for every ``homes_per_volunteer`` homes, a committee
  duty desk and a supervisor) whose caregivers' webhooks all point at ``team.webhook_url``.
- ``announce_absences(conn, truth)``: the "announced" absences of the ground truth (routine weekends
  away and hospital stays, and ``away_trip`` incidents with ``announced=yes``) written into the
  households' detector settings (``{"away": [...]}``, see ``docs/detectors.md``), which is what a
  family telling the care team amounts to. There is no API route for away periods yet, so this is the
  way to announce them.

Design: the fleet and the ground truth are pure values; this module only translates them. The
connection must be in autocommit mode or the caller must commit (``conn.transaction()`` is used, so
with autocommit the writes are committed when each function returns).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import psycopg

from schemas.api import CaregiverCreate, CarePlanContactCreate, DeviceCreate, HouseholdCreate, ResidentCreate
from schemas.kinds import CareRole
from schemas.language import Language
from simulator.fleet import Fleet
from simulator.scenarios import ScenarioKind, TruthRecord
from simulator.timefmt import iso_utc
from storage import registry

# Routine ground-truth kinds that stand for an absence the family announces (see ``schedule.py``).
ANNOUNCED_ROUTINE = frozenset({"away_weekend", "hospital_stay"})


@dataclass(frozen=True, slots=True)
class CareTeam:
    """Where every caregiver of the provisioned care plans receives its notifications."""

    webhook_url: str
    webhook_secret: str
    homes_per_volunteer: int = 5
    # Caregiver ids are "{id_prefix}-committee" etc.: another prefix lets a second fleet (another
    # district) have a team of its own in the same database.
    id_prefix: str = "cg"
    # The caregivers' notification language (None: from the household's time zone).
    locale: Language | None = None


class Naming(Protocol):
    """Names for the provisioned homes, residents and caregivers (``simulator.names.ChineseNames``)."""

    def household(self, index: int) -> str: ...

    def resident(self, index: int) -> str: ...

    def volunteer(self, number: int) -> str: ...

    def committee_desk(self, committee: str = "") -> str: ...

    def supervisor(self) -> str: ...


@dataclass(frozen=True, slots=True)
class PlainNames:
    """ "Home 3", "Resident 3": names that say they are test data (the default)."""

    def household(self, index: int) -> str:
        return f"Home {index + 1}"

    def resident(self, index: int) -> str:
        return f"Resident {index + 1}"

    def volunteer(self, number: int) -> str:
        return f"Old Partner volunteer {number}"

    def committee_desk(self, committee: str = "") -> str:
        return "Neighbourhood committee duty desk"

    def supervisor(self) -> str:
        return "Street service-centre supervisor"


def provision_fleet(
    conn: psycopg.Connection,
    fleet: Fleet,
    *,
    district: str = "",
    committees: Sequence[str] = (),
    team: CareTeam | None = None,
    names: Naming | None = None,
) -> None:
    """Households, devices and (with ``team``) care plans for every home of ``fleet``, in one transaction.

    Households are named ``Home {index + 1}`` with one resident ``Resident {index + 1}`` (or by
    ``names``); caregivers are ``cg-committee``, ``cg-supervisor`` and ``cg-volunteer-{n}`` (ids unique per database, so
    provision at most one fleet with a ``team`` of one ``id_prefix`` per database). With ``committees``,
    home ``i`` belongs to neighbourhood committee ``committees[i % len(committees)]``.
    """
    names = names or PlainNames()
    with conn.transaction():
        staff = supervisor = ""
        if team is not None:
            staff = _caregiver(conn, f"{team.id_prefix}-committee", names.committee_desk(), team)
            supervisor = _caregiver(conn, f"{team.id_prefix}-supervisor", names.supervisor(), team)
        for home in fleet.homes:
            registry.insert_household(
                conn,
                HouseholdCreate(
                    household_id=home.household_id,
                    name=names.household(home.index),
                    district=district,
                    committee=committees[home.index % len(committees)] if committees else "",
                    residents=[ResidentCreate(name=names.resident(home.index), phone=resident_phone(home.index))],
                ),
            )
            if team is not None:
                number = home.index // team.homes_per_volunteer + 1
                volunteer = f"{team.id_prefix}-volunteer-{number}"
                if home.index % team.homes_per_volunteer == 0:
                    _caregiver(conn, volunteer, names.volunteer(number), team)
                for caregiver_id, role in (
                    (volunteer, CareRole.VOLUNTEER),
                    (staff, CareRole.COMMITTEE_STAFF),
                    (supervisor, CareRole.SUPERVISOR),
                ):
                    registry.upsert_contact(
                        conn, home.household_id, CarePlanContactCreate(caregiver_id=caregiver_id, role=role)
                    )
            for device in home.devices:
                registry.insert_device(
                    conn,
                    DeviceCreate(
                        device_id=device.device_id,
                        device_type=device.device_type,
                        household_id=home.household_id,
                        expected_interval_s=device.expected_interval_s,
                    ),
                )


def resident_phone(index: int) -> str:
    """The simulated resident's mobile number (for check-ins by phone; a fake gateway answers it)."""
    return f"139{index:08d}"


def announced_absences(truth: Iterable[TruthRecord]) -> dict[str, list[dict[str, str]]]:
    """The ``away`` periods a family would announce, per household, from the ground truth."""
    out: dict[str, list[dict[str, str]]] = {}
    for record in truth:
        if record.category == "routine" and record.kind in ANNOUNCED_ROUTINE:
            reason = "hospital" if record.kind == "hospital_stay" else "away"
        elif record.kind == ScenarioKind.AWAY_TRIP.value and record.detail.get("announced") is True:
            reason = "away"
        else:
            continue
        out.setdefault(record.household_id, []).append(
            {"start": iso_utc(record.start_ms), "end": iso_utc(record.end_ms), "reason": reason}
        )
    return out


def announce_absences(conn: psycopg.Connection, truth: Iterable[TruthRecord]) -> dict[str, list[dict[str, str]]]:
    """Merge the announced absences of ``truth`` into ``households.settings``; returns what was written.

    A running detector runner picks settings up on its next registry refresh (every 30 s by default) or
    at start, so announce before the pipeline starts when the absence is already under way.
    """
    periods = announced_absences(truth)
    with conn.transaction():
        for household_id, away in periods.items():
            conn.execute(
                "UPDATE households SET settings = jsonb_set(settings, '{away}',"
                " COALESCE(settings->'away', '[]'::jsonb) || %s::jsonb) WHERE household_id = %s",
                (json.dumps(away), household_id),
            )
    return periods


def _caregiver(conn: psycopg.Connection, caregiver_id: str, name: str, team: CareTeam) -> str:
    registry.insert_caregiver(
        conn,
        CaregiverCreate.model_validate(
            {
                "caregiver_id": caregiver_id,
                "name": name,
                "webhook_url": team.webhook_url,
                "webhook_secret": team.webhook_secret,
                "locale": team.locale,
            }
        ),
    )
    return caregiver_id
