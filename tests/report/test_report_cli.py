"""``carewatch report`` writing html, csv and pdf files from the simulated month; the PDF read back with
pypdf (pages, page numbers, Chinese text when a CJK font is installed)."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pypdf import PdfReader

from api.report import charts
from api.report.build import make_report
from carewatch.cli import main
from tests.report.month import DISTRICTS, GENERATED_AT, MONTH, World

NO_CJK_FONT = f"needs a CJK font for Chinese text in the PDF: install {charts.FONT_PACKAGES}"


@pytest.fixture(scope="module")
def report(month_world: World) -> dict[str, Any]:
    with psycopg.connect(month_world.database_url, autocommit=True) as conn:
        return make_report(conn, month=MONTH, district=None, now=GENERATED_AT).model_dump(mode="json")


@pytest.fixture(scope="module")
def pdf(month_world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "report.pdf"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAREWATCH_DATABASE_URL", month_world.database_url)
        assert main(["report", "--month", MONTH, "--format", "pdf", "--output", str(path)]) == 0
    return path


def _run(world: World, monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", world.database_url)
    return main(["report", "--month", MONTH, *argv])


def test_cli_writes_html(month_world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    assert _run(month_world, monkeypatch, "--format", "html", "--output", str(path), "--lang", "en") == 0
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "Home-safety monitoring: monthly report · November 2026" in page
    for district in DISTRICTS:
        assert f"<h2>{district} · November 2026</h2>" in page


def test_cli_writes_csv_with_the_json_figures(
    month_world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, report: dict[str, Any]
) -> None:
    path = tmp_path / "report.csv"
    assert _run(month_world, monkeypatch, "--format", "csv", "--output", str(path)) == 0
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["区", "居委会", "部分", "指标", "名称", "数值"]
    values = {(r[0], r[1], r[2], r[3]): r[5] for r in rows[1:] if r[2] != "not_visited"}
    for group in report["groups"]:
        district = group["district"] or "合计"
        committee = group["committee"] if group["level"] == "committee" else "合计"
        for section in ("homes", "health", "pages", "checkins", "service", "visits"):
            for key, value in group[section].items():
                assert values[(district, committee, section, key)] == ("" if value is None else str(value))
        for kind, states in group["alerts"]["by_kind"].items():
            for state, n in states.items():
                assert values[(district, committee, "alerts", f"{kind}.{state}")] == str(n)
    unvisited = [r for r in rows if r[2] == "not_visited"]
    assert [(r[3], r[4]) for r in unvisited] == [(r["resident_id"], r["name"]) for r in report["not_visited"]]


def test_cli_writes_a_paginated_pdf(pdf: Path) -> None:
    reader = PdfReader(pdf)
    pages = len(reader.pages)
    # An overview page, then every district from a page of its own (each at least two pages long here).
    assert pages >= 1 + 2 * len(DISTRICTS)
    texts = [page.extract_text() for page in reader.pages]
    for number, text in enumerate(texts, start=1):
        assert re.search(rf"\b{number} / {pages}\b", text), f"page {number} has no 'n / {pages}' footer"


@pytest.mark.skipif(charts.cjk_family() is None, reason=NO_CJK_FONT)
def test_pdf_shows_the_chinese_report(pdf: Path, report: dict[str, Any]) -> None:
    texts = [page.extract_text() for page in PdfReader(pdf).pages]
    assert "居家安全监测月报" in texts[0]
    assert "总体概况" in texts[0]
    starts = []
    for district in sorted(DISTRICTS):
        heading = f"{district} · 2026年11月"
        (first,) = [i for i, text in enumerate(texts) if heading in text][:1]
        assert first > 0  # not on the overview page
        starts.append(first)
    assert starts == sorted(set(starts))  # in order, each on its own page
    everything = "".join(texts)
    for resident in report["not_visited"]:
        assert resident["resident_id"] in everything
    assert "李大爷" in everything
    assert "本月尚未探访的居民" in everything


def test_a_month_not_begun_is_refused(
    month_world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", month_world.database_url)
    assert main(["report", "--month", "2999-01", "--format", "csv"]) == 2
    assert "month 2999-01 has not begun" in capsys.readouterr().err


def test_cli_generations_are_audited(month_world: World, pdf: Path) -> None:
    with psycopg.connect(month_world.database_url) as conn:
        rows = conn.execute(
            "SELECT role, client, action, resource_id, detail FROM audit_log WHERE token_id = 'cli' ORDER BY audit_id"
        ).fetchall()
    assert ("cli", "cli", "generate", f"{MONTH}/*", "pdf zh-CN") in rows
