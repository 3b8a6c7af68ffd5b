"""The web page in a real headless Chromium (Debian's ``chromium`` package) driven by Playwright.

Signs in with a caregiver token, claims and resolves an alert from the board, sees an alert opened by
another process appear live (SSE), opens the household page with its chart, and checks the screenshots
are not blank. A browser set to Chinese gets the board and the household page in Chinese, and the
language switch turns them to English; an installation's default language (the demo's zh-CN) wins over
the browser's, on a phone. With ``CAREWATCH_UPDATE_SCREENSHOTS=1`` the screenshots of the test's small
world are written to ``docs/img/test/`` (otherwise a test run leaves the tree untouched); the README's
come from the running demo (``scripts/screenshots``).

Playwright never downloads a browser here: ``executable_path`` points at the system Chromium. The test
is skipped (by an explicit marker) only where that binary is missing: ``scripts/bootstrap`` installs it.
"""

from __future__ import annotations

import os
import statistics
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from alerting.service import AlertingConfig, apply_findings
from carewatch.screenshots import CHROMIUM_ARGS
from schemas.evidence import WaterRunning
from schemas.kinds import AlertKind, Severity
from tests.api.world import Served, World, finding

CHROMIUM = Path("/usr/bin/chromium")
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


def _shot_path(tmp_path: Path, name: str) -> str:
    folder = DOC_IMAGES / "test" if os.environ.get("CAREWATCH_UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / name)


pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


def png_pixel_spread(png: bytes) -> tuple[int, float]:
    """(distinct byte values, standard deviation) of the decompressed image data: blank pages have ~1."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, data = 8, b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        if kind == b"IDAT":
            data += png[position + 8 : position + 8 + length]
        position += 12 + length
    raw = zlib.decompress(data)
    sample = raw[:: max(1, len(raw) // 200_000)]
    return len(set(sample)), statistics.pstdev(sample)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def test_claim_resolve_live_update_and_chart(
    browser: Browser, server: Served, world: World, database_url: str, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.url + "/")
    page.get_by_label("API token").fill(world.tokens.cg_fam)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#whoami")).to_contain_text("caregiver cg-fam")
    expect(page.locator("#live")).to_have_text("Live")

    sos = world.alerts["a1-sos"]
    card = page.locator(f'li.card[data-alert-id="{sos}"]')
    expect(card).to_be_visible()
    page.locator(f"#claim-{sos}").click()
    expect(card).to_contain_text("claimed by cg-fam")

    # Another process opens an alert: it appears on the board without a reload.
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        (new_id,) = apply_findings(
            conn, [finding("hh-a1", AlertKind.SERVICE_REQUEST, Severity.NORMAL, now)], now, AlertingConfig()
        )
    expect(page.locator(f'li.card[data-alert-id="{new_id}"]')).to_be_visible(timeout=10_000)
    # A routine alert asks the resident first (hh-a1 has a call button): the board says so, live.
    with psycopg.connect(database_url) as conn:
        (asking,) = apply_findings(
            conn, [finding("hh-a1", AlertKind.ROUTINE_MISSED, Severity.HIGH, now)], now, AlertingConfig()
        )
    checking = page.locator(f'li.card[data-alert-id="{asking}"]')
    expect(checking).to_be_visible(timeout=10_000)
    expect(checking.locator(".badge")).to_have_text("checking in")
    expect(checking.locator(".checkin")).to_contain_text("Asking the resident (call button): attempt 1 of 2")

    # The board with a claimed and a live-arrived alert: checked not blank, kept for the README.
    DOC_IMAGES.mkdir(parents=True, exist_ok=True)
    board = page.screenshot(path=_shot_path(tmp_path, "alert-board.png"), full_page=True)
    distinct, spread = png_pixel_spread(board)
    assert distinct > 20, distinct
    assert spread > 5, spread

    page.locator(f"#outcome-{sos}").select_option("needed_help")
    page.locator(f"#resolve-{sos}").click()
    expect(card).to_have_count(0)
    with server.client(world.tokens.admin) as client:
        resolved = client.get(f"/api/v1/alerts/{sos}").json()
    assert resolved["status"] == "resolved"
    assert resolved["outcome"] == "needed_help"
    assert resolved["claimed_by"] == "cg-fam"

    page.goto(server.url + "/#/household/hh-a1")
    chart = page.locator(".chart svg")
    expect(chart).to_be_visible()
    expect(page.locator(".chart svg rect.bar").first).to_be_attached()
    expect(page.locator(".chart svg polygon.band")).to_have_count(1)
    expect(page.locator(".chart svg line.marker").first).to_be_attached()
    expect(page.locator("#checkins tbody tr[data-checkin-status=waiting]")).to_contain_text("missed routine")
    household = page.screenshot(path=_shot_path(tmp_path, "household.png"), full_page=True)
    assert png_pixel_spread(household)[1] > 5
    assert errors == []
    page.close()


def test_phone_layout_and_keyboard(browser: Browser, server: Served, world: World) -> None:
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(server.url + "/")
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.locator(".skip")).to_be_focused()
    page.get_by_label("API token").fill(world.tokens.op_a)
    page.keyboard.press("Enter")
    expect(page.locator("#whoami")).to_contain_text("operator op-a")
    expect(page.locator("li.card").first).to_be_visible()
    # No horizontal scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.goto(server.url + "/#/fleet")
    expect(page.get_by_role("heading", name="Fleet health")).to_be_visible()
    page.close()


def test_the_page_in_chinese_with_a_switch_to_english(
    browser: Browser, server: Served, world: World, database_url: str, tmp_path: Path
) -> None:
    """A browser set to Chinese gets the page in Chinese (board, live evidence, household page); the
    switch turns it to English, and the choice outlives a reload."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN", accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.goto(server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    page.get_by_label("API 令牌").fill(world.tokens.op_a)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#whoami")).to_contain_text("值班员 op-a")
    expect(page.locator("#live")).to_have_text("实时")
    expect(page.locator("#nav")).to_contain_text("告警看板")
    expect(page.get_by_role("heading", name="未处理告警")).to_be_visible()
    expect(page.locator('section.column[data-severity="critical"] h3')).to_contain_text("紧急")

    # An alert whose evidence is data arrives live, its kind and evidence in Chinese.
    now = datetime.now(UTC)
    running = WaterRunning(rate_lpm=12.5, since=now - timedelta(minutes=70), running_s=4200, litres=875)
    with psycopg.connect(database_url) as conn:
        (flow_id,) = apply_findings(
            conn,
            [finding("hh-a2", AlertKind.CONTINUOUS_FLOW, Severity.HIGH, now, "a2-smoke", message=running)],
            now,
            AlertingConfig(),
        )
    card = page.locator(f'li.card[data-alert-id="{flow_id}"]')
    expect(card).to_be_visible(timeout=10_000)
    expect(card.locator("h4")).to_contain_text("持续用水")
    expect(card.locator(".evidence")).to_contain_text("每分钟 12.5 升")
    expect(card.locator(".evidence")).to_contain_text("请给老人打电话")
    expect(card.get_by_role("button", name="认领")).to_be_visible()
    expect(card.get_by_role("button", name="处理完毕")).to_be_visible()
    expect(card.locator(f"#outcome-{flow_id}")).to_contain_text("老人安好")
    board = page.screenshot(path=_shot_path(tmp_path, "alert-board.zh-CN.png"), full_page=True)
    assert png_pixel_spread(board)[1] > 5

    page.goto(server.url + "/#/household/hh-a1")
    expect(page.get_by_role("heading", name="住户 hh-a1")).to_be_visible()
    expect(page.get_by_role("heading", name="照护计划")).to_be_visible()
    expect(page.locator("#plan-title + ol")).to_contain_text("家属")
    expect(page.locator("#plan-title + ol")).to_contain_text("老伙伴")
    expect(page.get_by_role("heading", name="近 7 天每小时用水量")).to_be_visible()
    expect(page.locator(".chart svg rect.bar").first).to_be_attached()
    expect(page.locator("#dev-title + table")).to_contain_text("智能水表")
    household = page.screenshot(path=_shot_path(tmp_path, "household.zh-CN.png"), full_page=True)
    assert png_pixel_spread(household)[1] > 5

    # The district's monthly report, as the server renders it, in the page's language and styles.
    page.goto(server.url + "/#/report")
    expect(page.get_by_role("heading", name="月度报告")).to_be_visible()
    page.get_by_label("月份").fill(now.strftime("%Y-%m"))  # this running month holds the world's alerts
    page.get_by_role("button", name="查看").click()
    report = page.frame_locator("iframe.report")
    expect(report.locator("h1")).to_contain_text("居家安全监测月报")
    expect(report.locator(".chart img").first).to_be_visible()
    # The report's own stylesheet applies (the page's CSP allows it by its hash, nothing else inline).
    expect(report.locator("h2").first).to_have_css("border-bottom-style", "solid")
    assert not [m for m in console if "Content Security Policy" in m], console
    with page.expect_download() as pdf:
        page.get_by_role("button", name="下载 PDF").click()
    assert pdf.value.suggested_filename.endswith(".pdf")

    page.locator("#lang").select_option("en")
    page.goto(server.url + "/#/household/hh-a1")
    expect(page.get_by_role("heading", name="Care plan")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.reload()
    expect(page.get_by_role("heading", name="Water use per hour, last 7 days")).to_be_visible()
    expect(page.locator("#nav")).to_contain_text("Alert board")
    assert page.evaluate("localStorage.getItem('carewatch.lang')") == "en"
    page.goto(server.url + "/#/board")
    expect(page.locator(f'li.card[data-alert-id="{flow_id}"] .evidence')).to_contain_text("water running at 12.5 L/min")
    assert errors == []
    page.close()


def test_the_installations_default_language_wins_over_the_browsers(
    browser: Browser, server: Served, world: World
) -> None:
    """The demo opens in zh-CN (setting ``page_language``) even in a browser set to English; the switch
    still turns the page to English, and that choice then wins."""
    server.app.state.page_language = "zh-CN"
    try:
        page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, locale="en-US")
        page.goto(server.url + "/")
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        page.get_by_label("API 令牌").fill(world.tokens.op_a)
        page.get_by_role("button", name="登录").click()
        expect(page.locator("#nav")).to_contain_text("告警看板")
        expect(page.locator("li.card").first).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.goto(server.url + "/#/household/hh-a1")
        expect(page.get_by_role("heading", name="近 7 天每小时用水量")).to_be_visible()
        # The week scrolls inside its panel on a phone; the page does not scroll sideways.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        page.locator("#lang").select_option("en")
        expect(page.get_by_role("heading", name="Water use per hour, last 7 days")).to_be_visible()
        page.reload()
        expect(page.locator("html")).to_have_attribute("lang", "en")
        page.close()
    finally:
        server.app.state.page_language = None
