"""One household's detector settings (the ``households.settings`` JSON) for the API.

The detector runner reads every household's settings with ``storage.registry.household_settings`` and
picks changes up on its next registry refresh. Functions take a connection and never commit.
"""

from __future__ import annotations

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
