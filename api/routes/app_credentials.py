"""Caregiver app MQTT logins: issued (and rotated) and revoked by admins and operators.

The app logs in as ``app.<caregiver_id>`` and may read only its own ``{root}/app/<caregiver_id>/alerts``
and ``.../acks`` and publish only its own ``.../replies`` (carewatch.broker.roles). The password is
returned once, like a device's; the registry keeps its PBKDF2 hash. Each change is committed, then
pushed to the broker (``api.broker``).
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.audit import Audit
from api.auth import Staff
from api.deps import Connection, Context
from api.problems import ProblemError
from i18n import N_
from schemas.api import AppCredentials
from storage import broker_access, registry

router = APIRouter(prefix="/caregivers", tags=["caregivers"])


@router.post("/{caregiver_id}/app-credentials")
def issue_app_credentials(
    caregiver_id: str, conn: Connection, principal: Staff, audit: Audit, context: Context
) -> AppCredentials:
    """Issue a new MQTT login for the caregiver's app (a previous password stops working); shown once."""
    if not registry.caregiver_exists(conn, caregiver_id):
        raise ProblemError(404, N_("Not found"), N_("caregiver {caregiver_id} not found"), caregiver_id=caregiver_id)
    with conn.transaction():
        username, password = broker_access.issue_app_credentials(conn, caregiver_id, context.clock())
        audit("issue_app_credentials", "caregiver", caregiver_id)
    applied = context.broker.apply(conn, [username], {username: password})
    return AppCredentials(caregiver_id=caregiver_id, mqtt_username=username, mqtt_password=password, broker=applied)


@router.delete("/{caregiver_id}/app-credentials", status_code=status.HTTP_204_NO_CONTENT)
def revoke_app_credentials(
    caregiver_id: str, conn: Connection, principal: Staff, audit: Audit, context: Context
) -> Response:
    """Revoke the app's login: the broker disables it and disconnects the app at once."""
    with conn.transaction():
        username = broker_access.revoke_app_credentials(conn, caregiver_id, context.clock())
        if username is None:
            raise ProblemError(
                404, N_("Not found"), N_("caregiver {caregiver_id} has no active app login"), caregiver_id=caregiver_id
            )
        audit("revoke_app_credentials", "caregiver", caregiver_id)
    context.broker.apply(conn, [username], {})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
