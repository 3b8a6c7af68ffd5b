"""The ``Audit`` request dependency: record who did or saw what, when, and from where.

Handlers call ``audit("view", "household", household_id)`` for every view of personal data and
``audit("create", ...)`` inside the transaction of every write, so a write and its audit row commit
together. The client address is the socket peer (a proxy in front should be configured to pass it on
through uvicorn's ``--proxy-headers``). Only ids are stored (see ``storage.audit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import psycopg
from fastapi import Depends, Request

from api.auth import Authenticated, Principal
from api.deps import Connection, Context
from storage import audit as store


@dataclass(frozen=True, slots=True)
class Auditor:
    conn: psycopg.Connection
    principal: Principal
    client: str
    context: Context

    def __call__(self, action: str, resource: str, resource_id: str | int = "", detail: str = "") -> None:
        store.record(
            self.conn,
            at=self.context.clock(),
            token_id=self.principal.token_id,
            role=self.principal.role.value,
            subject=self.principal.subject,
            action=action,
            resource=resource,
            resource_id=str(resource_id),
            client=self.client,
            detail=detail,
        )


def get_auditor(request: Request, conn: Connection, principal: Authenticated, context: Context) -> Auditor:
    client = request.client.host if request.client is not None else ""
    return Auditor(conn=conn, principal=principal, client=client, context=context)


Audit = Annotated[Auditor, Depends(get_auditor)]
