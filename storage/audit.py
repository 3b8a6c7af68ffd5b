"""The audit log: every write and every view of personal data through the API, with who/what/when/where.

Rows carry ids only (token, subject, resource ids, client address): never names, phone numbers or
addresses, so the log can be shared with an auditor without itself becoming personal data.
Functions take a connection and never commit: a write's audit row commits with the write.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row


def record(
    conn: psycopg.Connection,
    *,
    at: datetime,
    token_id: str,
    role: str,
    subject: str,
    action: str,
    resource: str,
    resource_id: str = "",
    client: str = "",
    detail: str = "",
) -> None:
    conn.execute(
        "INSERT INTO audit_log (at, token_id, role, subject, action, resource, resource_id, client, detail)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (at, token_id, role, subject, action, resource, resource_id, client, detail[:500]),
    )


def list_entries(
    conn: psycopg.Connection,
    *,
    subject: str | None = None,
    resource: str | None = None,
    resource_id: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; keyset pagination by ``audit_id``."""
    clauses = ["true"]
    params: list[Any] = []
    for column, value in (("subject", subject), ("resource", resource), ("resource_id", resource_id)):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(value)
    if before_id is not None:
        clauses.append("audit_id < %s")
        params.append(before_id)
    params.append(limit)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT audit_id, at, token_id, role, subject, action, resource, resource_id, client, detail"
            f" FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY audit_id DESC LIMIT %s",
            params,
        ).fetchall()
