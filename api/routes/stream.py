"""``GET /api/v1/alerts/stream``: Server-Sent Events of alert changes the caller may see.

Each event is ``event: alert``, ``id: <change id>``, ``data: <AlertPublic JSON>`` (the alert's current
state). A client reconnecting with ``Last-Event-ID`` first gets the changes it missed (up to 500), then
live ones; a comment line every 15 s keeps proxies from closing an idle stream. Browsers cannot set an
``Authorization`` header on ``EventSource``, so the web page reads the stream with ``fetch`` (keeping
tokens out of URLs and access logs). Registered before the alerts router so ``stream`` is not read as
an alert id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import Principal, Reader
from api.deps import ApiContext, Context
from api.feed import END, AlertFeed, FeedItem, scope_predicate
from api.language import RequestLanguage, localized_alert
from i18n import Language
from schemas.alerts import AlertPublic
from storage import access, alert_views
from storage import audit as audit_store

router = APIRouter(prefix="/alerts", tags=["alerts"])

KEEPALIVE_S = 15.0


def _subscriber_scope(context: ApiContext, principal: Principal, client: str) -> frozenset[str] | None:
    """Audit the subscription and load a caregiver's households (one short pooled connection)."""
    with context.pool.connection() as conn:
        audit_store.record(
            conn,
            at=context.clock(),
            token_id=principal.token_id,
            role=principal.role.value,
            subject=principal.subject,
            action="subscribe",
            resource="alert_stream",
            client=client,
        )
        return access.visible_household_ids(conn, principal.scope)


def _missed(context: ApiContext, allows: Callable[[str, str], bool], after: int) -> list[FeedItem]:
    """The changes after ``after`` the caller may see, each with its alert's current state."""
    with context.pool.connection() as conn:
        changes = [c for c in alert_views.changes_after(conn, after) if allows(c.household_id, c.district)]
        rows = alert_views.get_alerts(conn, sorted({c.alert_id for c in changes}))
    return [FeedItem(c.change_id, AlertPublic.model_validate(rows[c.alert_id])) for c in changes if c.alert_id in rows]


def _event(item: FeedItem, language: Language) -> str:
    """One SSE event; the feed shares one alert among subscribers, each reads it in their language."""
    alert = localized_alert(item.alert, language)
    return f"id: {item.change_id}\nevent: alert\ndata: {json.dumps(alert.model_dump(mode='json'))}\n\n"


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "alert changes as Server-Sent Events"}},
)
async def stream_alerts(
    request: Request,
    context: Context,
    principal: Reader,
    language: RequestLanguage,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**63 - 1)] = None,
) -> StreamingResponse:
    feed: AlertFeed = request.app.state.feed
    client = request.client.host if request.client is not None else ""
    household_ids = await run_in_threadpool(_subscriber_scope, context, principal, client)
    allows = scope_predicate(principal.scope, household_ids)
    # Subscribe before reading the missed changes: a change in between arrives twice, never not at all.
    subscription = feed.subscribe(asyncio.get_running_loop(), allows)
    missed = await run_in_threadpool(_missed, context, allows, last_event_id) if last_event_id is not None else []

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n: connected\n\n"
            for item in missed:
                yield _event(item, language)
            while True:
                try:
                    item = await asyncio.wait_for(subscription.queue.get(), timeout=KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if item is END:
                    return
                yield _event(item, language)
        finally:
            feed.unsubscribe(subscription)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
