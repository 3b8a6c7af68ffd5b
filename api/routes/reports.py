"""The district's monthly report (云监管): ``GET /reports/monthly?month=2026-11&district=X&format=&lang=``.

Formats: ``html`` (default; a self-contained page that also prints), ``pdf``, ``csv`` (one row per
figure) and ``json`` (the ``MonthlyReport`` model, every figure). Languages: ``zh-CN`` (default), ``en``.
Admins see every district (or one with ``district``); an operator sees their own district only (403
for another); caregivers and device provisioners get 403. Every generation is audited (ids only: the
month, the district, the format), after the report was made. The report names residents, so it is
never cached. See docs/reports.md for each figure's definition.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from api.audit import Audit
from api.auth import Staff
from api.deps import Connection, Context
from api.problems import ProblemError
from api.report.build import ReportRequestError, make_report
from api.report.render import PdfUnavailableError, render_csv, render_html, render_pdf
from i18n import N_
from schemas.api import ApiRole
from schemas.report import MonthlyReport, ReportFormat, ReportLanguage

router = APIRouter(prefix="/reports", tags=["reports"])

# The HTML is self-contained: inline styles, charts as data: images, no script at all.
HTML_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
MEDIA_TYPES = {
    ReportFormat.HTML: "text/html; charset=utf-8",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.PDF: "application/pdf",
    ReportFormat.JSON: "application/json",
}


@router.get(
    "/monthly",
    response_model=None,
    responses={
        200: {
            "description": "The report in the format asked for (the model is the json format's)",
            "model": MonthlyReport,
            "content": {
                "text/html": {},
                "text/csv": {},
                "application/pdf": {},
            },
        },
        403: {"description": "Another district than the operator's, or a role without reports"},
        422: {"description": "A malformed month, or one that has not begun"},
        503: {"description": "PDF asked for where WeasyPrint's libraries are missing"},
    },
)
def monthly_report(
    conn: Connection,
    principal: Staff,
    context: Context,
    audit: Audit,
    month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-11"])],
    district: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    report_format: Annotated[ReportFormat, Query(alias="format")] = ReportFormat.HTML,
    lang: ReportLanguage = ReportLanguage.ZH_CN,
) -> Response:
    if principal.role is ApiRole.OPERATOR:
        if district not in {None, principal.district}:
            raise ProblemError(403, N_("Forbidden"), N_("operators see the report of their own district only"))
        district = principal.district
    try:
        report = make_report(conn, month=month, district=district, now=context.clock())
    except ReportRequestError as exc:
        raise ProblemError(422, N_("Invalid request"), N_("{reason}"), reason=str(exc)) from exc
    try:
        response = _render(report, report_format, lang)
    except PdfUnavailableError as exc:
        raise ProblemError(503, N_("PDF unavailable"), N_("{reason}"), reason=str(exc)) from exc
    with conn.transaction():
        audit("generate", "monthly_report", f"{month}/{district or '*'}", detail=f"{report_format.value} {lang.value}")
    return response


def _render(report: MonthlyReport, report_format: ReportFormat, lang: ReportLanguage) -> Response:
    headers = {"Cache-Control": "no-store"}
    if report_format is ReportFormat.JSON:
        return JSONResponse(report.model_dump(mode="json"), headers=headers)
    if report_format is ReportFormat.HTML:
        headers["Content-Security-Policy"] = HTML_CSP
        return Response(render_html(report, lang), media_type=MEDIA_TYPES[report_format], headers=headers)
    name = report_filename(report, report_format)
    # An ASCII name for old clients, the real one (the district may be Chinese) per RFC 6266 / 5987.
    ascii_name = f"carewatch-report-{report.month}.{report_format.value}"
    headers["Content-Disposition"] = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
    if report_format is ReportFormat.CSV:
        # A byte-order mark, so spreadsheet programs read the Chinese as UTF-8.
        return Response("\ufeff" + render_csv(report, lang), media_type=MEDIA_TYPES[report_format], headers=headers)
    return Response(render_pdf(report, lang), media_type=MEDIA_TYPES[report_format], headers=headers)


def report_filename(report: MonthlyReport, report_format: ReportFormat) -> str:
    scope = f"-{report.district}" if report.district else ""
    return f"carewatch-report-{report.month}{scope}.{report_format.value}"
