"""``GET /api/v1/reports/monthly`` on the simulated month: roles, formats, languages and the audit log."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from api.auth import create_token
from tests.api.world import Served, serve
from tests.report.month import GENERATED_AT, MONTH, World

PATH = "/api/v1/reports/monthly"


@dataclass(frozen=True)
class Tokens:
    admin: str
    changning: str
    putuo: str
    caregiver: str
    provisioner: str


@pytest.fixture(scope="module")
def tokens(month_world: World) -> Tokens:
    with psycopg.connect(month_world.database_url) as conn:
        made = Tokens(
            admin=create_token(conn, "admin", "root"),
            changning=create_token(conn, "operator", "op-cn", "长宁区"),
            putuo=create_token(conn, "operator", "op-pt", "普陀区"),
            caregiver=create_token(conn, "caregiver", "d0cg-committee"),
            provisioner=create_token(conn, "device_provisioner", "prov"),
        )
        conn.commit()
    return made


@pytest.fixture(scope="module")
def server(month_world: World, tokens: Tokens) -> Iterator[Served]:
    with serve(month_world.database_url, clock=lambda: GENERATED_AT) as served:
        yield served


def _get(server: Served, token: str | None, **params: str) -> httpx.Response:
    with server.client(token) as client:
        return client.get(PATH, params=params, timeout=60)


def _json(server: Served, token: str, **params: str) -> dict[str, Any]:
    response = _get(server, token, format="json", **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_json_report_of_the_operators_district(server: Served, tokens: Tokens) -> None:
    report = _json(server, tokens.changning, month=MONTH)
    assert report["district"] == "长宁区"
    assert [(g["level"], g["committee"]) for g in report["groups"]] == [
        ("district", None),
        ("committee", "华阳路居委会"),
        ("committee", "江苏路居委会"),
    ]
    assert {r["district"] for r in report["not_visited"]} == {"长宁区"}
    assert {d["district"] for d in report["alerts_per_day"]} == {"长宁区"}
    # The same figures as the admin's report of every district, for this district.
    everything = _json(server, tokens.admin, month=MONTH)
    assert everything["district"] is None
    assert [g for g in everything["groups"] if g["district"] == "长宁区"] == report["groups"]
    assert everything["groups"][0]["level"] == "all"
    assert _json(server, tokens.admin, month=MONTH, district="长宁区")["groups"] == report["groups"]


def test_roles(server: Served, tokens: Tokens) -> None:
    assert _get(server, tokens.changning, month=MONTH, district="普陀区").status_code == 403
    assert _get(server, tokens.putuo, month=MONTH, district="普陀区").status_code == 200
    assert _get(server, tokens.caregiver, month=MONTH).status_code == 403
    assert _get(server, tokens.provisioner, month=MONTH).status_code == 403
    assert _get(server, None, month=MONTH).status_code == 401
    for bad in ("2026-13", "26-11", "2026-11-01"):
        assert _get(server, tokens.admin, month=bad).status_code == 422
    future = _get(server, tokens.admin, month="2027-01")
    assert future.status_code == 422
    assert future.json()["detail"] == "month 2027-01 has not begun"


def test_html_in_both_languages(server: Served, tokens: Tokens) -> None:
    zh = _get(server, tokens.putuo, month=MONTH)
    assert zh.status_code == 200
    assert zh.headers["content-type"] == "text/html; charset=utf-8"
    assert zh.headers["cache-control"] == "no-store"
    assert "script-src" not in zh.headers["content-security-policy"]
    assert "default-src 'none'" in zh.headers["content-security-policy"]
    page = zh.text
    assert '<html lang="zh-CN">' in page
    for text in ("普陀区居家安全监测月报", "2026年11月", "本月尚未探访的居民", "李大爷", "res-d1-nodevice", "误报率"):
        assert text in page, text
    assert page.count('<img src="data:image/svg+xml;base64,') >= 3  # alerts, daily, visits (+ service)
    en = _get(server, tokens.putuo, month=MONTH, lang="en").text
    assert '<html lang="en">' in en
    for text in ("Residents not yet visited this month", "November 2026", "False-alarm rate per detector", "李大爷"):
        assert text in en, text


def test_csv_and_pdf_downloads(server: Served, tokens: Tokens) -> None:
    response = _get(server, tokens.admin, month=MONTH, format="csv", lang="en")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "filename*=UTF-8''carewatch-report-2026-11.csv" in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["district", "committee", "section", "figure", "label", "value"]
    report = _json(server, tokens.admin, month=MONTH)
    total = report["groups"][0]
    assert ["Total", "Total", "homes", "households", "Households registered", str(total["homes"]["households"])] in rows
    assert [
        "Total",
        "Total",
        "visits",
        "residents_visited_share",
        "Share of residents visited",
        str(total["visits"]["residents_visited_share"]),
    ] in rows
    unvisited = [row for row in rows if row[2] == "not_visited"]
    assert [row[3] for row in unvisited] == [r["resident_id"] for r in report["not_visited"]]

    pdf = _get(server, tokens.changning, month=MONTH, format="pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert (
        "filename*=UTF-8''carewatch-report-2026-11-%E9%95%BF%E5%AE%81%E5%8C%BA.pdf"
        in pdf.headers["content-disposition"]
    )
    assert pdf.content.startswith(b"%PDF-")


def test_a_running_month_says_so(server: Served, tokens: Tokens) -> None:
    report = _json(server, tokens.admin, month="2026-12")
    assert report["complete"] is False
    page = _get(server, tokens.admin, month="2026-12", lang="en").text
    assert "The month is not over: figures up to 3 Dec 2026 10:00" in page


def test_every_generation_is_audited_with_ids_only(server: Served, tokens: Tokens, month_world: World) -> None:
    assert _get(server, tokens.putuo, month=MONTH, format="csv").status_code == 200
    with psycopg.connect(month_world.database_url) as conn:
        rows = conn.execute(
            "SELECT role, subject, action, resource_id, detail FROM audit_log WHERE resource = 'monthly_report'"
            " ORDER BY audit_id"
        ).fetchall()
        dump = " ".join(str(row) for row in conn.execute("SELECT * FROM audit_log").fetchall())
    assert ("operator", "op-pt", "generate", f"{MONTH}/普陀区", "csv zh-CN") in rows
    assert ("admin", "root", "generate", f"{MONTH}/*", "json zh-CN") in rows
    refused = [row for row in rows if row[1] in {"d0cg-committee", "prov"}]
    assert refused == []  # a refused request made no report
    for personal in ("李大爷", "王阿姨", "Resident 1"):
        assert personal not in dump
