"""Row-level scope: which households a caller may see, as SQL the list and detail queries share.

A ``Scope`` is what a token reaches: everything (admin, device provisioner for devices), the households of
one district (operator) or the households whose care plan names the caregiver (caregiver). Queries add
``household_filter(scope)`` to their WHERE clause, so an out-of-scope row is never read at all and the API
can answer 404 for it exactly as for a row that does not exist (no existence leak).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class Scope:
    district: str | None = None
    caregiver_id: str | None = None

    @property
    def unrestricted(self) -> bool:
        return self.district is None and self.caregiver_id is None


EVERYTHING = Scope()


def household_filter(scope: Scope, column: str = "household_id") -> tuple[str, list[Any]]:
    """A SQL condition on ``column`` (a fixed identifier, never user input) and its parameters."""
    if scope.caregiver_id is not None:
        return (
            f"{column} IN (SELECT household_id FROM care_plan_contacts WHERE caregiver_id = %s)",
            [scope.caregiver_id],
        )
    if scope.district is not None:
        return f"{column} IN (SELECT household_id FROM households WHERE district = %s)", [scope.district]
    return "true", []


def household_visible(conn: psycopg.Connection, scope: Scope, household_id: str) -> bool:
    condition, params = household_filter(scope)
    row = conn.execute(
        f"SELECT 1 FROM households WHERE household_id = %s AND {condition}", [household_id, *params]
    ).fetchone()
    return row is not None


def device_household(conn: psycopg.Connection, scope: Scope, device_id: str) -> str | None:
    """The household of an active device the scope may see; None if absent or out of scope."""
    condition, params = household_filter(scope)
    row = conn.execute(
        f"SELECT household_id FROM devices WHERE device_id = %s AND decommissioned_at IS NULL AND {condition}",
        [device_id, *params],
    ).fetchone()
    return str(row[0]) if row else None


def alert_household(conn: psycopg.Connection, scope: Scope, alert_id: int) -> str | None:
    condition, params = household_filter(scope)
    row = conn.execute(
        f"SELECT household_id FROM alerts WHERE alert_id = %s AND {condition}", [alert_id, *params]
    ).fetchone()
    return str(row[0]) if row else None


def visible_household_ids(conn: psycopg.Connection, scope: Scope) -> frozenset[str] | None:
    """The household ids of a caregiver's scope (small); None for district or unrestricted scopes."""
    if scope.caregiver_id is None:
        return None
    rows = conn.execute(
        "SELECT household_id FROM care_plan_contacts WHERE caregiver_id = %s", (scope.caregiver_id,)
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)
