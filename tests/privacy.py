"""Marker strings in every personal field, provisioning through the API, and a scan of the whole database.

The privacy tests put a unique marker in each personal field carewatch holds (names, address, access
notes, medical notes, phone number, e-mail address, notes typed by residents and caregivers), then look
for the markers where they must not be: the logs (``test_log_privacy.py``) or the database after an
erasure (``tests/api/test_personal_data.py``). ``scan_database`` reads every text, JSON, array and byte
column of every table, so a table added later is covered without being named here.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

import httpx
import psycopg
from psycopg import sql

FIELDS = (
    "HouseholdName",
    "Address",
    "HouseAccess",
    "ResidentName",
    "Medical",
    "CaregiverName",
    "PlanAccess",
    "ResidentNote",
    "ResolveNote",
    "DeclineNote",
    "VisitNote",
)


@dataclass(frozen=True)
class Markers:
    tag: str = field(default_factory=lambda: secrets.token_hex(4))

    def text(self, name: str) -> str:
        return f"MKR{self.tag}{name}"

    @property
    def phone(self) -> str:  # a mobile number, as the SMS gateway needs one
        return "139" + str(int(self.tag, 16) % 10**8).zfill(8)

    @property
    def email(self) -> str:
        return f"mkr{self.tag}@example.org"

    def values(self) -> dict[str, str]:
        """Every marker by field name."""
        return {**{name: self.text(name) for name in FIELDS}, "Phone": self.phone, "Email": self.email}


@dataclass(frozen=True)
class Provisioned:
    household_id: str
    caregiver_id: str
    devices: dict[str, str]  # device type -> device id


def provision(
    api: httpx.Client,
    markers: Markers,
    *,
    household_id: str,
    caregiver_id: str,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    channels: list[str] | None = None,
    extra_contacts: list[dict[str, object]] | None = None,
) -> Provisioned:
    """A household with a resident, a caregiver, a care plan and three devices, through the API."""

    def ok(response: httpx.Response) -> httpx.Response:
        assert response.status_code in {200, 201}, response.text
        return response

    ok(
        api.post(
            "/households",
            json={
                "household_id": household_id,
                "name": markers.text("HouseholdName"),
                "address": markers.text("Address"),
                "district": "Changning",
                "residents": [
                    {"name": markers.text("ResidentName"), "birth_year": 1938, "medical_notes": markers.text("Medical")}
                ],
            },
        )
    )
    caregiver: dict[str, object] = {
        "caregiver_id": caregiver_id,
        "name": markers.text("CaregiverName"),
        "phone": markers.phone,
        "email": markers.email,
    }
    if webhook_url is not None:
        caregiver |= {"webhook_url": webhook_url, "webhook_secret": webhook_secret}
    ok(api.post("/caregivers", json=caregiver))
    contact = {
        "caregiver_id": caregiver_id,
        "role": "family",
        "channels": channels,
        "keyholder": True,
        "access_notes": markers.text("PlanAccess"),
        "medical_access": True,
    }
    ok(
        api.put(
            f"/care-plans/{household_id}",
            json={"contacts": [contact, *(extra_contacts or [])], "access_notes": markers.text("HouseAccess")},
        )
    )
    devices = {kind: f"{household_id}-{kind}" for kind in ("water_meter", "smoke_alarm", "call_button")}
    for kind, device_id in devices.items():
        ok(api.post("/devices", json={"device_id": device_id, "device_type": kind, "household_id": household_id}))
    return Provisioned(household_id=household_id, caregiver_id=caregiver_id, devices=devices)


_SCANNED_TYPES = ("text", "character varying", "character", "jsonb", "json", "ARRAY", "bytea")


def scan_database(conn: psycopg.Connection, markers: list[str]) -> list[tuple[str, str, str]]:
    """``(table, column, marker)`` for every marker found in any text, JSON, array or byte column of any
    table of the current schema."""
    pattern = "|".join(re.escape(marker) for marker in markers)
    columns = conn.execute(
        "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
        " JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' AND c.data_type = ANY(%s)"
        " ORDER BY 1, 2",
        (list(_SCANNED_TYPES),),
    ).fetchall()
    assert len(columns) >= 40, "the scan found too few columns to be looking at carewatch's schema"
    found = []
    for table, column, data_type in columns:
        value = sql.Identifier(column)
        text = (
            sql.SQL("encode({}, 'escape')").format(value) if data_type == "bytea" else sql.SQL("{}::text").format(value)
        )
        query = sql.SQL("SELECT DISTINCT substring({text} from %s) FROM {table} WHERE {text} ~ %s").format(
            text=text, table=sql.Identifier(table)
        )
        for (marker,) in conn.execute(query, (f"({pattern})", pattern)):
            found.append((str(table), str(column), str(marker)))
    return found
