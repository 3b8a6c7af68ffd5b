"""Request dependencies (``Annotated``): a pooled connection in a transaction, the clock, the config.

Everything comes from ``app.state``, set once by ``create_app``: no module-level singletons.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from alerting.service import AlertingConfig
from api.broker import BrokerAccess, NoBroker


@dataclass(frozen=True, slots=True)
class ApiContext:
    pool: ConnectionPool
    alerting: AlertingConfig
    clock: Callable[[], datetime]
    # Called after an alert changed through the API (wakes the dispatcher for "claimed" notices).
    on_alert_changed: Callable[[int], None]
    # Shared with the phone gateway: it signs its check-in answer callbacks with it (None: refused).
    checkin_secret: str | None = None
    # Where MQTT login changes go after they are committed (api.broker).
    broker: BrokerAccess = field(default_factory=NoBroker)


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


def get_connection(context: Annotated[ApiContext, Depends(get_context)]) -> Iterator[psycopg.Connection]:
    """One autocommit connection per request. Handlers that write wrap their work in
    ``conn.transaction()`` so the commit happens before the response is sent (the exit of a yield
    dependency may run after it), and a client never hears "done" about an uncommitted change."""
    with context.pool.connection() as conn:
        yield conn


Context = Annotated[ApiContext, Depends(get_context)]
Connection = Annotated[psycopg.Connection, Depends(get_connection)]
