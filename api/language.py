"""The language of an API response, and alerts said in it.

Human text in a response (problem details, an alert's ``evidence``, a timeline entry's ``detail``) is in
the client's ``Accept-Language`` (English without one). The structure stays beside the text
(``evidence_data``, ``detail_data``), so a client can render it itself; text stored before evidence was
data is returned as it was written.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from api.problems import request_language
from i18n import Language, render_evidence
from schemas.alerts import AlertEventPublic, AlertPublic

RequestLanguage = Annotated[Language, Depends(request_language)]


def localized_alert(alert: AlertPublic, language: Language) -> AlertPublic:
    """``alert`` with its evidence said in ``language`` (unchanged without structured evidence)."""
    if alert.evidence_data is None:
        return alert
    return alert.model_copy(update={"evidence": render_evidence(alert.evidence_data, language)})


def alert_public(row: dict[str, Any], language: Language) -> AlertPublic:
    return localized_alert(AlertPublic.model_validate(row), language)


def event_public(row: dict[str, Any], language: Language) -> AlertEventPublic:
    event = AlertEventPublic.model_validate(row)
    if event.detail_data is None:
        return event
    return event.model_copy(update={"detail": render_evidence(event.detail_data, language)})
