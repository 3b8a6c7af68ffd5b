"""Residents of a household, with their medical notes (which the API shows only to roles allowed them)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from schemas.api import ResidentCreate
from storage.registry import new_id


def list_residents(conn: psycopg.Connection, household_id: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT resident_id, household_id, name, birth_year, medical_notes, phone, locale FROM residents"
            " WHERE household_id = %s ORDER BY resident_id",
            (household_id,),
        ).fetchall()


def insert_resident(conn: psycopg.Connection, household_id: str, body: ResidentCreate) -> str:
    resident_id = new_id("res")
    conn.execute(
        "INSERT INTO residents (resident_id, household_id, name, birth_year, medical_notes, phone, locale)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (resident_id, household_id, body.name, body.birth_year, body.medical_notes, body.phone, body.locale),
    )
    return resident_id
