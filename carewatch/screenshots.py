"""``python -m carewatch.screenshots``: retake the README's screenshots from a running demo.

It starts ``carewatch demo`` (a child process, with its seeded month), waits until the demo is live and
its scripted emergency press and smoke alarm are on the board, then drives the machine's Chromium
(Debian's ``chromium``, through Playwright, as ``tests/api/test_browser.py`` does) over the page:

- the alert board and a household page (the resident whose water stopped: the week's chart with its
  learned normal band and the alert markers),
- in zh-CN (the demo's default: the browser itself is left in English, so the page's own default is
  what shows) and in English (chosen with the page's switch, stored in ``localStorage``),
- in the wall layout (1600 x 1000, the whole page) and a phone layout (390 x 844: the first screen
  of the board, and the household page's screen with the chart),

and writes ``docs/img/{alert-board,household}[.zh-CN][.phone].png``. Then it stops the demo (SIGINT,
its own child only). The pictures come from live data: the ages, times and ids differ on every run.

Run with ``scripts/screenshots``; ``--out DIR`` writes elsewhere; ``--keep-running`` leaves the demo up
afterwards for a look in a browser (stop it with Ctrl-C).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# Playwright is a development dependency (pyproject "dev"): imported where the browser is driven, so
# that importing carewatch never needs it.

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
# The household shown: the demo's resident whose water stopped (simulator.demo: the first live meter).
HOUSEHOLD = "sim-000002"
# As root on a machine with a closed network: no sandbox, no background calls (the browser test uses these too).
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
    "--font-render-hinting=none",
]


@dataclass(frozen=True, slots=True)
class Layout:
    suffix: str
    width: int
    height: int
    mobile: bool


LAYOUTS = (Layout("", 1600, 1000, mobile=False), Layout(".phone", 390, 844, mobile=True))
LANGUAGES = ("zh-CN", "en")


@dataclass(frozen=True, slots=True)
class RunningDemo:
    url: str
    token: str
    process: subprocess.Popen[str]


@contextlib.contextmanager
def running_demo(extra: list[str], timeout_s: float = 300.0) -> Iterator[RunningDemo]:
    """``carewatch demo`` as a child process, until its API answers and the live incidents are in."""
    command = [sys.executable, "-m", "carewatch.cli", "demo", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        url = token = ""
        deadline = time.monotonic() + timeout_s
        assert process.stdout is not None  # noqa: S101 - stdout=PIPE above
        for line in process.stdout:
            sys.stdout.write(line)
            if line.startswith("api: "):
                url = line.split(" ", 1)[1].strip()
            elif line.startswith("token: "):
                token = line.split(" ", 1)[1].strip()
            elif "smoke household" in line:  # the last scripted incident reached a caregiver
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the demo did not go live in time")
        if not url or not token:
            raise RuntimeError("the demo stopped before it went live")
        # Keep reading its output, or a full pipe would stall the demo's prints.
        threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
        yield RunningDemo(url, token, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _drain(stream: IO[str]) -> None:
    for _ in stream:
        pass


def _page(browser: Browser, demo: RunningDemo, layout: Layout, language: str) -> Page:
    from playwright.sync_api import expect

    context = browser.new_context(
        viewport={"width": layout.width, "height": layout.height},
        is_mobile=layout.mobile,
        has_touch=layout.mobile,
        device_scale_factor=2 if layout.mobile else 1,
        locale="en-US",
        timezone_id="Asia/Shanghai",  # where the demo's readers are
    )
    if language == "en":
        context.add_init_script("localStorage.setItem('carewatch.lang', 'en')")
    page = context.new_page()
    page.goto(demo.url + "/")
    page.locator("#token").fill(demo.token)
    page.locator("#token").press("Enter")
    expect(page.locator("html")).to_have_attribute("lang", language)
    expect(page.locator("#live")).to_have_class(re.compile(r"\bon\b"), timeout=15_000)
    return page


def take(browser: Browser, demo: RunningDemo, out: Path) -> list[Path]:
    from playwright.sync_api import expect

    written: list[Path] = []
    for layout in LAYOUTS:
        for language in LANGUAGES:
            tag = "" if language == "en" else f".{language}"
            page = _page(browser, demo, layout, language)
            expect(page.locator("li.card").first).to_be_visible()
            page.wait_for_timeout(500)
            path = out / f"alert-board{tag}{layout.suffix}.png"
            # A phone shows one screen at a time: the first screen of the board, as a phone shows it.
            page.screenshot(path=str(path), full_page=not layout.mobile)
            written.append(path)
            page.goto(f"{demo.url}/#/household/{HOUSEHOLD}")
            expect(page.locator(".chart svg polygon.band")).to_have_count(1, timeout=15_000)
            expect(page.locator(".chart svg rect.bar").first).to_be_attached()
            if layout.mobile:  # the screen with the chart (its latest days; it scrolls sideways)
                page.evaluate("document.querySelector('.chart').scrollIntoView()")
            page.wait_for_timeout(500)
            path = out / f"household{tag}{layout.suffix}.png"
            page.screenshot(path=str(path), full_page=not layout.mobile)
            written.append(path)
            if layout.mobile:
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                if overflow > 1:
                    sys.stderr.write(f"warning: {path.name} scrolls sideways by {overflow}px\n")
            page.context.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carewatch.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--keep-running", action="store_true", help="leave the demo up afterwards")
    parser.add_argument("--homes", type=int, default=30)
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        sys.stderr.write("needs Debian's chromium (apt-get install chromium; scripts/bootstrap does it)\n")
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with running_demo(["--homes", str(args.homes)]) as demo, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            for path in take(browser, demo, args.out):
                sys.stdout.write(f"screenshot: {path}\n")
        finally:
            browser.close()
        if args.keep_running:
            sys.stdout.write(f"demo still running: {demo.url}/ token {demo.token} (Ctrl-C to stop)\n")
            with contextlib.suppress(KeyboardInterrupt):
                demo.process.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
