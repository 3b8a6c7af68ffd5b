"""The monthly report rendered for people: HTML (a page that also prints), CSV, and PDF from the HTML.

Everything here reads the ``MonthlyReport`` model only; wording comes from ``api.report.wording`` and
number, date and time formats from ``api.report.fmt`` (Babel). The HTML is one self-contained document
(styles inline, charts as SVG data URIs) from an autoescaping Jinja template, so it can be saved,
mailed or printed as it is; the PDF is that same document laid out by WeasyPrint (pango underneath,
which finds the CJK font through fontconfig) with page numbers, each district starting a page.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader

from api.report import charts
from api.report.fmt import Formatter
from api.report.wording import Words
from schemas.report import GroupFigures, GroupLevel, MonthlyReport, ReportLanguage
from storage.monthly_report import LOW_BATTERY_PCT

_TEMPLATES = Environment(loader=PackageLoader("api.report", "templates"), autoescape=True, keep_trailing_newline=True)


def stylesheet_csp_source() -> str:
    """The CSP source (``'sha256-…'``) of the report's one inline stylesheet.

    The web page shows the report in a sandboxed ``srcdoc`` frame, which inherits the page's
    Content-Security-Policy; allowing exactly this stylesheet by its hash keeps ``style-src`` closed to
    every other inline style. The template's ``<style>`` holds no template syntax, so its source is
    what is rendered (a test checks this against a rendered report).
    """
    source = _TEMPLATES.loader.get_source(_TEMPLATES, "monthly.html.j2")[0]  # type: ignore[union-attr]
    found = re.search(r"<style>(.*?)</style>", source, re.DOTALL)
    if found is None:
        raise RuntimeError("the report template has no <style> element")
    digest = hashlib.sha256(found.group(1).encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


class PdfUnavailableError(RuntimeError):
    """WeasyPrint cannot run here (its Debian libraries are missing); ``str`` says which to install."""


@dataclass
class _Row:
    """A committee-table row: a group with the name to show."""

    name: str
    group: GroupFigures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.group, name)


@dataclass
class _District:
    name: str
    periods: list[str]
    rows: list[_Row]
    homes: list[tuple[str, str]]
    health: list[tuple[str, str]]
    pages: list[tuple[str, str]]
    checkins: list[tuple[str, str]]
    service: list[tuple[str, str]]
    visits: list[tuple[str, str]]
    states: list[dict[str, str]]
    kinds: list[dict[str, Any]]
    detectors: list[dict[str, Any]]
    not_visited: list[dict[str, str]]
    charts: dict[str, str | None] = field(default_factory=dict)


def render_html(report: MonthlyReport, language: ReportLanguage) -> str:
    words, fmt = Words(language), Formatter(language)
    first = date.fromisoformat(report.month + "-01")
    month_label = fmt.month(first)
    title = words("title.district", district=report.district) if report.district else words["title"]
    zone = report.periods[0].timezone if report.periods else "Asia/Shanghai"
    districts = [group for group in report.groups if group.level is GroupLevel.DISTRICT]
    # Several districts: an overview of them first, with the total.
    overview = [_Row(words.district(g.district or ""), g) for g in districts] if len(districts) > 1 else []
    overview += [_Row(words["total"], g) for g in report.groups if g.level is GroupLevel.ALL and overview]
    return _TEMPLATES.get_template("monthly.html.j2").render(
        lang=language.value,
        w=words,
        f=fmt,
        title=title,
        month_label=month_label,
        periods=[
            _period(words, fmt, words.district(p.district), p.start, p.end, p.timezone, named=True)
            for p in report.periods
        ],
        generated=words("generated", time=fmt.datetime(report.generated_at, zone)),
        partial=None if report.complete else words("partial", time=fmt.datetime(report.generated_at, zone)),
        overview=overview,
        districts=[_district(report, group, words, fmt, first) for group in districts],
    )


def _period(
    words: Words, fmt: Formatter, district: str, start: datetime, end: datetime, zone: str, *, named: bool
) -> str:
    # The month ends at midnight; people read the last day as the end ("1 to 30 November").
    last = end - timedelta(microseconds=1) if end.astimezone(ZoneInfo(zone)).time() == datetime.min.time() else end
    text = words("period", start=fmt.date(start, zone), end=fmt.date(last, zone), timezone=zone)
    return f"{district} · {text}" if named else text


def _district(report: MonthlyReport, group: GroupFigures, words: Words, fmt: Formatter, first: date) -> _District:
    name = group.district or ""
    committees = [g for g in report.groups if g.level is GroupLevel.COMMITTEE and g.district == name]
    rows = [_Row(words.committee(g.committee or ""), g) for g in committees] + [_Row(words["total"], group)]
    periods = [p for p in report.periods if p.district == name]
    states = sorted({s for counts in group.alerts.by_kind.values() for s in counts}, key=_state_order)
    kinds = sorted(group.alerts.by_kind.items(), key=lambda item: -sum(item[1].values()))
    last_day = (date(first.year + first.month // 12, first.month % 12 + 1, 1)) - timedelta(days=1)
    view = _District(
        name=words.district(name),
        periods=[_period(words, fmt, name, p.start, p.end, p.timezone, named=False) for p in periods],
        rows=rows,
        homes=_figures(words, fmt, "homes", group.homes.model_dump()),
        health=_figures(words, fmt, "health", group.health.model_dump(exclude={"device_hours"}), low=LOW_BATTERY_PCT),
        pages=_figures(words, fmt, "pages", group.pages.model_dump()),
        checkins=_figures(words, fmt, "checkins", group.checkins.model_dump()),
        service=_figures(words, fmt, "service", group.service.model_dump()),
        visits=_figures(words, fmt, "visits", group.visits.model_dump()),
        states=[{"key": s, "label": words.value("state", s)} for s in states],
        kinds=[
            {
                "label": words.value("kind", kind),
                "counts": [fmt.number(counts.get(s, 0)) for s in states],
                "total": fmt.number(sum(counts.values())),
            }
            for kind, counts in kinds
        ],
        detectors=[
            {
                "label": words.value("detector", d.detector),
                "resolved": fmt.number(d.resolved),
                "rate": fmt.share(d.false_alarm_rate),
                "paged": fmt.number(d.paged),
                "paged_rate": fmt.share(d.paged_false_alarm_rate),
            }
            for d in group.detectors
        ],
        not_visited=[
            {
                "committee": words.committee(r.committee),
                "name": r.name,
                "resident_id": r.resident_id,
                "household_id": r.household_id,
                "last_visit": fmt.date(r.last_visit_at, r.timezone) if r.last_visit_at else words["unvisited.never"],
            }
            for r in report.not_visited
            if r.district == name
        ],
    )
    view.charts = {
        "alerts": charts.alerts_by_kind(group, words),
        "daily": charts.alerts_per_day(
            [d for d in report.alerts_per_day if d.district == name], first, last_day, words
        ),
        "service": charts.service_shares(
            committees, (report.targets.critical_60s, report.targets.critical_180s), words
        ),
        "visits": charts.visit_shares(committees, report.targets.visits, words),
    }
    return view


_STATE_ORDER = list(charts.STATE_COLOURS)


def _state_order(state: str) -> tuple[int, str]:
    return (_STATE_ORDER.index(state) if state in _STATE_ORDER else len(_STATE_ORDER), state)


def _figures(
    words: Words, fmt: Formatter, section: str, values: dict[str, Any], **fields: object
) -> list[tuple[str, str]]:
    return [(words(f"{section}.{key}", **fields), _value(fmt, key, value)) for key, value in values.items()]


def _value(fmt: Formatter, key: str, value: Any) -> str:
    if key.endswith(("share", "rate")) or "_share_" in key:
        return fmt.share(value)
    if key.endswith("_s"):
        return fmt.duration(value)
    if key.endswith("hours"):
        return fmt.number(value, 1)
    return fmt.number(value)


# --- CSV -------------------------------------------------------------------------------------------


def render_csv(report: MonthlyReport, language: ReportLanguage) -> str:
    """One row per figure: district, committee, section, figure key, its label, its raw value.

    Values are machine-readable (shares as fractions, times in seconds, dates ISO); keys are stable
    across languages. Residents not visited are rows of section ``not_visited`` (key: resident id,
    label: name, value: last visit date or empty). Written with a UTF-8 byte-order mark by callers that
    save a file, so that spreadsheet programs read the Chinese correctly.
    """
    words = Words(language)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([words[f"csv.{c}"] for c in ("district", "committee", "section", "key", "label", "value")])
    for group in report.groups:
        district = words.district(group.district) if group.district is not None else words["total"]
        committee = words.committee(group.committee or "") if group.level is GroupLevel.COMMITTEE else words["total"]
        for section, key, label, value in _group_rows(group, words):
            writer.writerow([district, committee, section, key, label, "" if value is None else value])
    for r in report.not_visited:
        last = r.last_visit_at.astimezone(ZoneInfo(r.timezone)).date().isoformat() if r.last_visit_at else ""
        district = words.district(r.district)
        writer.writerow([district, words.committee(r.committee), "not_visited", r.resident_id, r.name, last])
    return out.getvalue()


def _group_rows(group: GroupFigures, words: Words) -> Iterator[tuple[str, str, str, Any]]:
    for section in ("homes", "health", "pages", "checkins", "service", "visits"):
        for key, value in getattr(group, section).model_dump().items():
            yield section, key, words(f"{section}.{key}", low=LOW_BATTERY_PCT), value
    for kind, counts in sorted(group.alerts.by_kind.items()):
        for state, n in sorted(counts.items()):
            yield "alerts", f"{kind}.{state}", f"{words.value('kind', kind)} / {words.value('state', state)}", n
    for d in group.detectors:
        label = words.value("detector", d.detector)
        yield "detectors", f"{d.detector}.resolved", label, d.resolved
        yield "detectors", f"{d.detector}.false_alarm_rate", label, d.false_alarm_rate
        yield "detectors", f"{d.detector}.paged", label, d.paged
        yield "detectors", f"{d.detector}.paged_false_alarm_rate", label, d.paged_false_alarm_rate


# --- PDF -------------------------------------------------------------------------------------------


def render_pdf(report: MonthlyReport, language: ReportLanguage) -> bytes:
    html = render_html(report, language)
    try:
        from weasyprint import HTML  # noqa: PLC0415 - imported on use: it loads pango, which may be missing
    except OSError as exc:  # cffi could not load pango/harfbuzz
        raise PdfUnavailableError(
            "PDF output needs WeasyPrint's libraries: install Debian's libpango-1.0-0 and libpangoft2-1.0-0"
        ) from exc
    # WeasyPrint reports each layout step at INFO: noise in a service's log.
    logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
    pdf: bytes = HTML(string=html).write_pdf()
    return pdf
