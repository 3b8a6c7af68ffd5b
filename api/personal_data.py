"""Access and erasure requests, the same for the admin API and the ``carewatch export``/``erase`` commands.

Each request is audited (``audit_log``: who, when, from where, which household; ids only) in the same
transaction as what it does, so an erasure and its audit row commit together or not at all. The audit
log itself is kept through an erasure: it is the record that the request was honoured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import psycopg

from schemas.personal_data import ErasureReport, HouseholdExport
from storage import erasure, personal_export

log = logging.getLogger(__name__)

# audit(action, resource, resource_id, detail): api.audit.Auditor, or the CLI's equivalent.
AuditFn = Callable[[str, str, str, str], None]


def export_household(
    conn: psycopg.Connection, household_id: str, now: datetime, audit: AuditFn, *, raw_days: int = 7
) -> HouseholdExport | None:
    """The household's export, audited; None if there is no such household."""
    with conn.transaction():
        fields = personal_export.household_export(conn, household_id, now, raw_days=raw_days)
        if fields is None:
            return None
        document = HouseholdExport.model_validate(fields)
        cut = f"; cut: {','.join(document.truncated)}" if document.truncated else ""
        audit("export", "household", household_id, f"raw readings since {document.raw_readings_since.isoformat()}{cut}")
    log.info("household %s exported (%d alerts, %d events)", household_id, len(document.alerts), len(document.events))
    return document


def erase_household(conn: psycopg.Connection, household_id: str, now: datetime, audit: AuditFn) -> ErasureReport:
    """Erase the household (``storage.erasure``), audited; raises ``erasure.HouseholdNotFoundError``.
    ``conn`` must be in autocommit mode: TimescaleDB's aggregate is refreshed after the commit."""
    with conn.transaction():
        done = erasure.erase_household(conn, household_id, now)
        audit(
            "erase",
            "household",
            household_id,
            f"devices {len(done.devices)}, alerts kept {done.alerts_kept} (resolved now {done.alerts_resolved}),"
            f" caregivers erased {','.join(done.caregivers_erased) or '-'}",
        )
    if done.readings_span is not None and erasure.refresh_hourly(conn, done.readings_span):
        log.info("household %s: hourly aggregate refreshed over the erased readings", household_id)
    log.info(
        "household %s erased (%d devices, %d alerts kept, %d caregivers erased)",
        household_id,
        len(done.devices),
        done.alerts_kept,
        len(done.caregivers_erased),
    )
    return ErasureReport(
        household_id=done.household_id,
        erased_at=done.erased_at,
        already_erased=done.already_erased,
        devices_decommissioned=done.devices,
        alerts_kept=done.alerts_kept,
        alerts_resolved=done.alerts_resolved,
        caregivers_erased=done.caregivers_erased,
        rows_deleted=done.rows_deleted,
        rows_scrubbed=done.rows_scrubbed,
    )
