"""The web page in a real headless Chromium (Debian's ``chromium`` package) driven by Playwright.

Signs in with a caregiver token, claims and resolves an alert from the board, sees an alert opened by
another process appear live (SSE), opens the household page with its chart, and checks the screenshots
are not blank. With ``CAREWATCH_UPDATE_SCREENSHOTS=1`` the screenshots are also written to ``docs/img/``
for the README (otherwise a test run leaves the tree untouched).

Playwright never downloads a browser here: ``executable_path`` points at the system Chromium. The test
is skipped (by an explicit marker) only where that binary is missing: ``scripts/bootstrap`` installs it.
"""

from __future__ import annotations

import os
import statistics
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from alerting.service import AlertingConfig, apply_findings
from schemas.kinds import AlertKind, Severity
from tests.api.world import Served, World, finding

CHROMIUM = Path("/usr/bin/chromium")
DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"


def _shot_path(tmp_path: Path, name: str) -> str:
    folder = DOC_IMAGES if os.environ.get("CAREWATCH_UPDATE_SCREENSHOTS") == "1" else tmp_path
    return str(folder / name)


# As root on a machine with a closed network: no sandbox, and no background calls to Google's hosts.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

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
    expect(page.locator("#checkins tbody tr[data-checkin-status=waiting]")).to_contain_text("routine missed")
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
