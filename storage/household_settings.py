"""One household's detector settings (the ``households.settings`` JSON) for the API.

The detector runner reads every household's settings with ``storage.registry.household_settings`` and
picks changes up on its next registry refresh. Functions take a connection and never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def get(conn: psycopg.Connection, household_id: str, *, for_update: bool = False) -> tuple[str, dict[str, Any]] | None:
    """``(timezone, settings JSON)`` of the household, or None if it does not exist. ``for_update`` locks
    the row until the transaction ends (read-modify-write of the absences)."""
    lock = " FOR UPDATE" if for_update else ""
    row = conn.execute(
        f"SELECT timezone, settings FROM households WHERE household_id = %s{lock}", (household_id,)
    ).fetchone()
    return (str(row[0]), dict(row[1] or {})) if row else None


def put(conn: psycopg.Connection, household_id: str, settings: dict[str, Any]) -> bool:
    """Replace the settings JSON; False if the household does not exist."""
    row = conn.execute(
        "UPDATE households SET settings = %s WHERE household_id = %s RETURNING household_id",
        (Jsonb(settings), household_id),
    ).fetchone()
    return row is not None


def until_use_absences(conn: psycopg.Connection, now: datetime) -> list[tuple[str, datetime, datetime | None, str]]:
    """(household, start, last follow-up, time zone) of every absence announced at a check-in that is on
    at ``now``."""
    rows = conn.execute(
        "SELECT household_id, p ->> 'start', p ->> 'followed_up', timezone FROM households,"
        " jsonb_array_elements(coalesce(settings -> 'away', '[]'::jsonb)) AS p"
        " WHERE (p ->> 'until_use')::boolean AND (p ->> 'start')::timestamptz <= %s"
        " AND (p ->> 'end')::timestamptz > %s ORDER BY household_id",
        (now, now),
    ).fetchall()
    return [
        (row[0], datetime.fromisoformat(row[1]), datetime.fromisoformat(row[2]) if row[2] else None, row[3])
        for row in rows
    ]


def mark_followed_up(conn: psycopg.Connection, household_id: str, start: datetime, at: datetime) -> None:
    """Record that the absence starting at ``start`` had its daily check-in at ``at``."""
    found = get(conn, household_id, for_update=True)
    if found is None:
        return
    _, settings = found
    for period in settings.get("away", []):
        if period.get("until_use") and datetime.fromisoformat(period["start"]) == start:
            period["followed_up"] = at.isoformat()
    put(conn, household_id, settings)
