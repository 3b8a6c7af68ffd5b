"""The report's wording (both languages complete and alike) and its charts without a CJK font."""

from __future__ import annotations

import base64
import hashlib
import re
import string
from datetime import UTC, date, datetime

import pytest

from api.report import charts
from api.report.build import TARGETS, parse_month
from api.report.render import render_html, stylesheet_csp_source
from api.report.wording import EN, ZH_CN, Words
from schemas.kinds import AlertKind, AlertStatus, Outcome
from schemas.report import (
    AlertFigures,
    CheckinFigures,
    DailyAlerts,
    DeviceHealthFigures,
    GroupFigures,
    GroupLevel,
    HomeFigures,
    MonthlyReport,
    PageFigures,
    Period,
    ReportLanguage,
    ServiceLevelFigures,
    UnvisitedResident,
    VisitFigures,
)


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_every_key_with_the_same_fields() -> None:
    assert set(ZH_CN) == set(EN)
    for key in ZH_CN:
        assert _fields(ZH_CN[key]) == _fields(EN[key]), key
        assert ZH_CN[key], key
        assert EN[key], key


def test_every_kind_outcome_and_status_has_words() -> None:
    for language in ReportLanguage:
        words = Words(language)
        for kind in AlertKind:
            assert f"kind.{kind.value}" in words, kind
        for state in [*Outcome, *AlertStatus]:
            if state is not AlertStatus.RESOLVED:  # a resolved alert shows its outcome
                assert f"state.{state.value}" in words, state
    assert Words(ReportLanguage.ZH_CN).value("detector", "some_new_rule") == "some_new_rule"
    assert Words(ReportLanguage.ZH_CN).committee("") == "（未分配居委会）"


@pytest.mark.parametrize("text", ["2026-1", "2026-00", "0000-01", "9999-12", "x"])
def test_malformed_months(text: str) -> None:
    with pytest.raises(ValueError, match="month must look like 2026-11"):
        parse_month(text)
    assert parse_month("2026-11") == date(2026, 11, 1)


def _group() -> GroupFigures:
    return GroupFigures(
        level=GroupLevel.COMMITTEE,
        district="长宁区",
        committee="华阳路居委会",
        homes=HomeFigures(
            households=3, residents=3, homes_monitored=3, devices=9, water_meters=3, smoke_alarms=3, call_buttons=3
        ),
        health=DeviceHealthFigures(
            devices=9,
            device_hours=6480,
            offline_hours=2,
            online_share=0.9997,
            devices_at_end=9,
            online_at_end=9,
            online_share_at_end=1,
            battery_reported=9,
            battery_low=0,
            battery_low_share=0,
        ),
        alerts=AlertFigures(total=3, by_kind={"sos": {"resident_ok": 2, "claimed": 1}}),
        pages=PageFigures(alerts_paged=3, notifications=4, sent=4, dead=0, pending=0, cancelled=0),
        checkins=CheckinFigures(started=0, ok=0, help=0, away=0, no_answer=0, other=0),
        service=ServiceLevelFigures(
            critical=3,
            critical_claimed_60s=2,
            critical_claimed_180s=3,
            critical_share_60s=0.6667,
            critical_share_180s=1,
            high=0,
            high_claimed_15min=0,
            high_share_15min=None,
            median_to_first_notification_s=3,
            median_to_claim_s=40,
            median_to_resolution_s=2400,
        ),
        detectors=[],
        visits=VisitFigures(
            households=3,
            households_visited=2,
            visits=2,
            residents=3,
            residents_visited=2,
            residents_visited_share=0.6667,
        ),
    )


def test_charts_render_without_a_cjk_font(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a CJK font, Chinese stays text in the SVG (for the viewer's fonts), and nothing fails."""
    monkeypatch.setattr(charts, "cjk_family", lambda: None)
    words = Words(ReportLanguage.ZH_CN)
    uri = charts.alerts_by_kind(_group(), words)
    assert uri is not None
    svg = base64.b64decode(uri.removeprefix("data:image/svg+xml;base64,")).decode()
    assert "一键呼叫求助" in svg  # the kind's label, as text
    assert "Noto Sans CJK SC" in svg
    assert charts.visit_shares([_group()], 1.0, words) is not None
    days = [DailyAlerts(district="长宁区", day=date(2026, 11, 3), alerts=2)]
    assert charts.alerts_per_day(days, date(2026, 11, 1), date(2026, 11, 30), words) is not None
    assert charts.alerts_per_day([], date(2026, 11, 1), date(2026, 11, 30), words) is None


@pytest.mark.skipif(charts.cjk_family() is None, reason=f"needs a CJK font: install {charts.FONT_PACKAGES}")
def test_charts_draw_chinese_as_paths_with_a_cjk_font() -> None:
    uri = charts.service_shares([_group()], (0.975, 0.99), Words(ReportLanguage.ZH_CN))
    assert uri is not None
    svg = base64.b64decode(uri.removeprefix("data:image/svg+xml;base64,")).decode()
    assert "<text" not in svg  # every glyph drawn: the same picture in any browser and in the PDF


HOSTILE = "<script>alert(1)</script>"


def _hostile_report() -> MonthlyReport:
    """A report whose names and committee were typed by someone hostile."""
    group = _group().model_copy(update={"level": GroupLevel.DISTRICT, "committee": None})
    hostile = HOSTILE
    return MonthlyReport(
        month="2026-11",
        district="长宁区",
        generated_at=datetime(2026, 12, 3, 2, tzinfo=UTC),
        complete=True,
        periods=[
            Period(
                district="长宁区",
                timezone="Asia/Shanghai",
                start=datetime(2026, 10, 31, 16, tzinfo=UTC),
                end=datetime(2026, 11, 30, 16, tzinfo=UTC),
                households=3,
            )
        ],
        targets=TARGETS,
        groups=[group, _group().model_copy(update={"committee": hostile})],
        not_visited=[
            UnvisitedResident(
                district="长宁区",
                committee=hostile,
                household_id="hh-1",
                resident_id="res-1",
                name=hostile,
                timezone="Asia/Shanghai",
                last_visit_at=None,
            )
        ],
        alerts_per_day=[],
    )


def test_html_escapes_what_people_typed() -> None:
    """Names and committees come from the registry: the page shows them, never runs them."""
    hostile = HOSTILE
    report = _hostile_report()
    page = render_html(report, ReportLanguage.EN)
    assert hostile not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Period: 1 Nov 2026 to 30 Nov 2026 (Asia/Shanghai, local time)" in page


def test_the_page_allows_exactly_the_rendered_stylesheet() -> None:
    """The page's CSP names the report's stylesheet by hash (the page shows the report in a srcdoc frame):
    the hash must be of what is rendered, or the report would show unstyled in the page."""
    page = render_html(_hostile_report(), ReportLanguage.ZH_CN)
    styles = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert stylesheet_csp_source() == f"'sha256-{digest}'"
    assert "style=" not in page  # style attributes would need 'unsafe-hashes': none are used
