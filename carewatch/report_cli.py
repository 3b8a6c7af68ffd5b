"""``carewatch report``: the district's monthly report from the command line.

    carewatch report --month 2026-11 [--district X] --format html|csv|pdf|json [--output FILE] [--lang zh-CN|en]

The same report as ``GET /api/v1/reports/monthly`` (``api.report``), read from CAREWATCH_DATABASE_URL
in one read-only snapshot. Without ``--output`` it goes to standard output. Every generation is
audited like the API's (role ``cli``, the operating-system user as subject). The report names
residents: write it only where the district's staff keep such files.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from api.report.build import ReportRequestError, make_report
from api.report.render import PdfUnavailableError, render_csv, render_html, render_pdf
from schemas.report import MonthlyReport, ReportFormat, ReportLanguage
from storage import audit

log = logging.getLogger(__name__)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--month", required=True, help="the month, e.g. 2026-11 (local month of each household)")
    parser.add_argument("--district", help="one district (default: every district, with a total)")
    parser.add_argument(
        "--format", dest="report_format", choices=[f.value for f in ReportFormat], default="html", help="default html"
    )
    parser.add_argument("--output", metavar="FILE", help="write here (default: standard output)")
    languages = [language.value for language in ReportLanguage]
    parser.add_argument("--lang", choices=languages, default="zh-CN", help="default zh-CN")


def render(report: MonthlyReport, report_format: ReportFormat, language: ReportLanguage) -> bytes:
    if report_format is ReportFormat.PDF:
        return render_pdf(report, language)
    if report_format is ReportFormat.CSV:
        return ("\ufeff" + render_csv(report, language)).encode()  # a BOM: spreadsheets then read UTF-8
    if report_format is ReportFormat.JSON:
        return report.model_dump_json(indent=2).encode()
    return render_html(report, language).encode()


def run_report_command(args: argparse.Namespace, database_url: str) -> int:
    report_format, language = ReportFormat(args.report_format), ReportLanguage(args.lang)
    now = datetime.now(UTC)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            report = make_report(conn, month=args.month, district=args.district, now=now)
            data = render(report, report_format, language)
            audit.record(
                conn,
                at=now,
                token_id="cli",  # noqa: S106 - no token: the audit log's token column says "the CLI"
                role="cli",
                subject=_user(),
                action="generate",
                resource="monthly_report",
                resource_id=f"{args.month}/{args.district or '*'}",
                client="cli",
                detail=f"{report_format.value} {language.value}",
            )
    except (ReportRequestError, PdfUnavailableError) as exc:
        sys.stderr.write(f"report: {exc}\n")
        return 2
    if args.output:
        Path(args.output).write_bytes(data)
        sys.stderr.write(f"report: {args.output} ({len(data):,} bytes, {len(report.groups)} groups)\n")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment (a container)
        return "unknown"
