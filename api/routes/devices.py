"""Devices: provisioning (the MQTT login is returned once), listing with health, decommissioning.

Provisioners (and admins, and operators within their district) add devices; every role may list the
devices it can see (a provisioner sees all: device records carry no personal data). Decommissioning sets
``decommissioned_at``: ingest stops accepting the device's messages and its MQTT login is revoked.

Every login change is committed first and then pushed to the broker (``context.broker``, see
``api.broker``): the answer's ``broker`` says whether the broker already has it.
"""

from __future__ import annotations

from typing import Annotated

import psycopg
from fastapi import APIRouter, Query, Response, status

from api.audit import Audit
from api.auth import Authenticated, Principal, Provisioner
from api.deps import Connection, Context
from api.problems import ProblemError
from i18n import N_
from schemas.api import DeviceCreate, DeviceProvisioned, DevicePublic, Page
from storage import access, fleet, registry
from storage import auth as credentials

router = APIRouter(prefix="/devices", tags=["devices"])


def device_or_404(conn: psycopg.Connection, principal: Principal, device_id: str) -> DevicePublic:
    row = fleet.get_device(conn, principal.scope, device_id)
    if row is None:
        raise ProblemError(404, N_("Not found"), N_("device {device_id} not found"), device_id=device_id)
    return DevicePublic.model_validate(row)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_device(
    body: DeviceCreate, conn: Connection, principal: Provisioner, audit: Audit, context: Context
) -> DeviceProvisioned:
    """Register a device and return its MQTT username and password (shown only in this response)."""
    if not access.household_visible(conn, principal.scope, body.household_id):
        raise ProblemError(
            404, N_("Not found"), N_("household {household_id} not found"), household_id=body.household_id
        )
    try:
        with conn.transaction():
            registry.insert_device(conn, body)
            username, password = credentials.issue_device_credentials(conn, body.device_id, context.clock())
            audit("create", "device", body.device_id, detail=f"household {body.household_id}")
    except psycopg.errors.UniqueViolation as exc:
        raise ProblemError(
            409, N_("Device exists"), N_("device {device_id} already exists"), device_id=body.device_id
        ) from exc
    device = device_or_404(conn, principal, body.device_id)
    applied = context.broker.apply(conn, [username], {username: password})
    return DeviceProvisioned(**device.model_dump(), mqtt_username=username, mqtt_password=password, broker=applied)


@router.get("")
def list_devices(
    conn: Connection,
    principal: Authenticated,
    household_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[DevicePublic]:
    """Ordered by id; ``cursor`` is the last id of the previous page. Includes each device's health."""
    rows = fleet.list_devices(conn, principal.scope, household_id=household_id, after=cursor, limit=limit)
    items = [DevicePublic.model_validate(row) for row in rows]
    return Page(items=items, next_cursor=items[-1].device_id if len(items) == limit else None)


@router.get("/{device_id}")
def get_device(device_id: str, conn: Connection, principal: Authenticated) -> DevicePublic:
    return device_or_404(conn, principal, device_id)


@router.post("/{device_id}/credentials")
def rotate_credentials(
    device_id: str, conn: Connection, principal: Provisioner, audit: Audit, context: Context
) -> DeviceProvisioned:
    """Issue a new MQTT password (the old one stops working); shown only in this response."""
    device = device_or_404(conn, principal, device_id)
    with conn.transaction():
        username, password = credentials.issue_device_credentials(conn, device_id, context.clock())
        audit("rotate_credentials", "device", device_id)
    applied = context.broker.apply(conn, [username], {username: password})
    return DeviceProvisioned(**device.model_dump(), mqtt_username=username, mqtt_password=password, broker=applied)


@router.post("/{device_id}/decommission", status_code=status.HTTP_204_NO_CONTENT)
def decommission(device_id: str, conn: Connection, principal: Provisioner, audit: Audit, context: Context) -> Response:
    device_or_404(conn, principal, device_id)
    with conn.transaction():
        if not credentials.decommission_device(conn, device_id, context.clock()):
            raise ProblemError(404, N_("Not found"), N_("device {device_id} not found"), device_id=device_id)
        audit("decommission", "device", device_id)
    # Disables the login at the broker and kicks its session; a miss is recorded and retried.
    username = credentials.device_username(conn, device_id)
    if username is not None:
        context.broker.apply(conn, [username], {})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
