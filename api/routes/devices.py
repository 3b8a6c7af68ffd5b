"""Devices: provisioning into the registry that ingest checks every message against."""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, status

from api.deps import Connection
from api.problems import ProblemError
from schemas.api import DeviceCreate, DevicePublic, Page
from storage import registry

router = APIRouter(prefix="/devices", tags=["devices"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_device(body: DeviceCreate, conn: Connection) -> DevicePublic:
    if not registry.household_exists(conn, body.household_id):
        raise ProblemError(404, "Not found", f"household {body.household_id} not found")
    try:
        with conn.transaction():
            registry.insert_device(conn, body)
    except psycopg.errors.UniqueViolation as exc:
        raise ProblemError(409, "Device exists", f"device {body.device_id} already exists") from exc
    return DevicePublic.model_validate(registry.get_device_row(conn, body.device_id))


@router.get("")
def list_devices(
    conn: Connection,
    household_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[DevicePublic]:
    rows = registry.list_device_rows(conn, household_id=household_id, after=cursor, limit=limit)
    items = [DevicePublic.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=items[-1].device_id if len(items) == limit else None)


@router.get("/{device_id}")
def get_device(device_id: str, conn: Connection) -> DevicePublic:
    row = registry.get_device_row(conn, device_id)
    if row is None:
        raise ProblemError(404, "Not found", f"device {device_id} not found")
    return DevicePublic.model_validate(row)
