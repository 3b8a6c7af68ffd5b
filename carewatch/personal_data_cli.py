"""``carewatch export --household ID`` and ``carewatch erase --household ID``: the operator's side of
access and erasure requests, with the same code and audit as the admin API (``api.personal_data``).

The audit row names the command and the operating-system user (``cli:<user>``), from client ``cli``.
An export is personal data: written to ``--output`` with mode 0600, or to standard output.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from api import personal_data
from storage import audit as audit_store
from storage.erasure import HouseholdNotFoundError


def add_arguments(export: argparse.ArgumentParser, erase: argparse.ArgumentParser) -> None:
    for parser in (export, erase):
        parser.add_argument("--household", required=True, metavar="ID", help="the household's id")
    export.add_argument("--output", type=Path, default=None, help="write the JSON here (mode 0600); default stdout")
    export.add_argument(
        "--raw-days", type=int, default=7, choices=range(32), metavar="N", help="raw readings of the last N days (0-31)"
    )


def _auditor(conn: psycopg.Connection, now: datetime) -> personal_data.AuditFn:
    subject = f"cli:{getpass.getuser()}"

    def audit(action: str, resource: str, resource_id: str, detail: str) -> None:
        audit_store.record(
            conn,
            at=now,
            token_id="cli",  # noqa: S106 - not a secret: the audit log's token column for the command line
            role="admin",
            subject=subject,
            action=action,
            resource=resource,
            resource_id=resource_id,
            client="cli",
            detail=detail,
        )

    return audit


def run_export(args: argparse.Namespace, database_url: str) -> int:
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        document = personal_data.export_household(
            conn, args.household, now, _auditor(conn, now), raw_days=args.raw_days
        )
    if document is None:
        sys.stderr.write(f"carewatch: household {args.household} not found\n")
        return 1
    text = document.model_dump_json(indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
    else:
        descriptor = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        sys.stderr.write(f"exported household {args.household} to {args.output}\n")
    return 0


def run_erase(args: argparse.Namespace, database_url: str) -> int:
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        try:
            report = personal_data.erase_household(conn, args.household, now, _auditor(conn, now))
        except HouseholdNotFoundError:
            sys.stderr.write(f"carewatch: household {args.household} not found\n")
            return 1
    sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    return 0
