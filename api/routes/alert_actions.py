"""Alert actions beside claim/resolve (``api.routes.alerts``): decline, and the delivery record.

``POST /alerts/{id}/decline``: a caregiver cannot take the alert; when everyone asked at the current
step has declined, the next step is notified at once (``alerting.service.decline_alert``). The same
action arrives over MQTT from the caregiver app (``alerting.app``). Caregivers decline as themselves.

``GET /alerts/{id}/deliveries``: every notification of the alert with every attempt (channel, key,
status, errors), for operators asking "who was told, and did it arrive?".
"""

from __future__ import annotations

from fastapi import APIRouter

from alerting.service import decline_alert
from api.audit import Audit
from api.auth import Reader, Staff
from api.deps import Connection, Context
from api.problems import ProblemError
from i18n import N_
from schemas.alerts import AlertDecline, NotificationPublic
from schemas.api import ApiRole
from storage import access, outbox
from storage import alerts as store

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.post("/{alert_id}/decline")
def decline(
    alert_id: int, body: AlertDecline, conn: Connection, principal: Reader, context: Context, audit: Audit
) -> dict[str, object]:
    if access.alert_household(conn, principal.scope, alert_id) is None:
        raise ProblemError(404, N_("Not found"), N_("alert {alert_id} not found"), alert_id=alert_id)
    if principal.role is ApiRole.CAREGIVER and body.caregiver_id != principal.subject:
        raise ProblemError(403, N_("Forbidden"), N_("caregivers decline as themselves"))
    if not store.on_care_plan(conn, alert_id, body.caregiver_id):
        raise ProblemError(
            422,
            N_("Invalid request"),
            N_("caregiver {caregiver_id} is not on this alert's care plan"),
            caregiver_id=body.caregiver_id,
        )
    with conn.transaction():  # refusals become 404/409 problems (api.problems)
        escalated = decline_alert(conn, alert_id, body.caregiver_id, body.note, context.clock(), context.alerting)
        audit("decline", "alert", alert_id, detail=f"by caregiver {body.caregiver_id}")
    context.on_alert_changed(alert_id)
    return {"alert_id": alert_id, "declined_by": body.caregiver_id, "escalated": escalated}


@router.get("/{alert_id}/deliveries")
def deliveries(alert_id: int, conn: Connection, principal: Staff) -> list[NotificationPublic]:
    if access.alert_household(conn, principal.scope, alert_id) is None:
        raise ProblemError(404, N_("Not found"), N_("alert {alert_id} not found"), alert_id=alert_id)
    return [NotificationPublic.model_validate(row) for row in outbox.list_for_alert(conn, alert_id)]
