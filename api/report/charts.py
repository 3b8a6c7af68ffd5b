"""The report's charts, drawn server-side with matplotlib as SVG (shown in the HTML, embedded in the PDF).

Chinese labels need a CJK font. Debian's fonts-noto-cjk or fonts-wqy-microhei (scripts/bootstrap
installs one) is looked up by family name, then by its Debian file. With one, text becomes paths: the
SVG looks the same in every browser and in the PDF. Without one, the report still renders: text is
kept as SVG text with a CJK-first font list, so a browser with Chinese fonts still shows it (the PDF
then shows boxes), and a warning names the package to install.

matplotlib's settings are process-global, so charts are drawn one at a time (a lock).
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import threading
import warnings
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from matplotlib import font_manager, rc_context
from matplotlib.figure import Figure

from api.report.wording import Words
from schemas.report import DailyAlerts, GroupFigures

log = logging.getLogger(__name__)

CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans SC")
DEBIAN_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)
FONT_PACKAGES = "Debian's fonts-noto-cjk or fonts-wqy-microhei"

# Outcomes in warm (needed someone) to grey (nobody needed) order; unresolved states in blues.
STATE_COLOURS = {
    "emergency": "#b2182b",
    "needed_help": "#ef8a62",
    "resident_ok": "#4daf4a",
    "away": "#80cdc1",
    "false_alarm_device": "#878787",
    "test": "#d9d9d9",
    "other": "#984ea3",
    "checking_in": "#c6dbef",
    "open": "#08519c",
    "notified": "#3182bd",
    "claimed": "#6baed6",
}
_LOCK = threading.Lock()


@functools.cache
def cjk_family() -> str | None:
    """The CJK font family matplotlib will use, or None (with a warning naming the package)."""
    for attempt in range(2):
        names = {entry.name for entry in font_manager.fontManager.ttflist}
        for family in CJK_FAMILIES:
            if family in names:
                return family
        if attempt == 0:  # a font installed after matplotlib cached its font list: add the file itself
            for path in DEBIAN_FONT_FILES:
                if Path(path).exists():
                    font_manager.fontManager.addfont(path)
    log.warning(
        "no CJK font for the report's charts: install %s; Chinese chart text is left to the viewer", FONT_PACKAGES
    )
    return None


def _svg_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _draw(draw: Any, *args: Any, size: tuple[float, float] = (7.0, 3.2)) -> str:
    family = cjk_family()
    fonts = [*CJK_FAMILIES, "DejaVu Sans"] if family is None else [family, "DejaVu Sans"]
    with (
        _LOCK,
        rc_context(
            {
                "font.family": "sans-serif",
                "font.sans-serif": fonts,
                "font.size": 9,
                "svg.fonttype": "path" if family is not None else "none",
                "svg.hashsalt": "carewatch-report",
                "axes.unicode_minus": False,
                "axes.spines.top": False,
                "axes.spines.right": False,
            }
        ),
        warnings.catch_warnings(),
    ):
        # Without a CJK font matplotlib measures Chinese text with a Latin font: expected, logged above.
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        figure = Figure(figsize=size, layout="constrained")
        draw(figure, *args)
        return _svg_data_uri(figure)


def alerts_by_kind(group: GroupFigures, words: Words) -> str | None:
    """Horizontal bars per kind of alert, stacked by outcome (or state while unresolved)."""
    kinds = sorted(group.alerts.by_kind, key=lambda kind: sum(group.alerts.by_kind[kind].values()))
    if not kinds:
        return None
    states = [state for state in STATE_COLOURS if any(state in group.alerts.by_kind[k] for k in kinds)]
    states += sorted({s for k in kinds for s in group.alerts.by_kind[k]} - set(states))

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        left = [0] * len(kinds)
        labels = [words.value("kind", kind) for kind in kinds]
        for state in states:
            counts = [group.alerts.by_kind[kind].get(state, 0) for kind in kinds]
            axes.barh(
                labels, counts, left=left, color=STATE_COLOURS.get(state, "#bbbbbb"), label=words.value("state", state)
            )
            left = [a + b for a, b in zip(left, counts, strict=True)]
        axes.set_xlabel(words["chart.alerts_axis"])
        axes.set_title(words["chart.alerts"])
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)

    return _draw(draw, size=(7.0, 0.35 * len(kinds) + 1.6))


def alerts_per_day(days: Sequence[DailyAlerts], first: date, last: date, words: Words) -> str | None:
    """New alerts per local day of the month."""
    if not days:
        return None
    counts = {day.day: day.alerts for day in days}
    span = [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def draw(figure: Figure) -> None:
        axes = figure.subplots()
        axes.bar([d.day for d in span], [counts.get(d, 0) for d in span], color="#3182bd")
        axes.set_xticks([d.day for d in span if d.day == 1 or d.day % 5 == 0])
        axes.set_ylabel(words["chart.alerts_axis"])
        axes.set_title(words["chart.daily"])

    return _draw(draw, size=(7.0, 2.4))


def _shares(
    figure: Figure, labels: list[str], series: list[tuple[str, list[float], str]], targets: list[float]
) -> None:
    axes = figure.subplots()
    width = 0.8 / len(series)
    for index, (name, values, colour) in enumerate(series):
        positions = [i + (index - (len(series) - 1) / 2) * width for i in range(len(labels))]
        axes.bar(positions, [v * 100 for v in values], width=width, color=colour, label=name)
    for target in targets:
        axes.axhline(target * 100, color="#b2182b", linewidth=0.8, linestyle="--")
    axes.set_xticks(range(len(labels)), labels)
    axes.set_ylim(0, 105)
    axes.yaxis.set_major_formatter("{x:.0f}%")
    if len(series) > 1:
        axes.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def visit_shares(committees: Sequence[GroupFigures], target: float, words: Words) -> str | None:
    rows = [g for g in committees if g.visits.residents_visited_share is not None]
    if not rows:
        return None
    labels = [words.committee(g.committee or "") for g in rows]
    values = [g.visits.residents_visited_share or 0.0 for g in rows]

    def draw(figure: Figure) -> None:
        _shares(figure, labels, [(words["visits.residents_visited_share"], values, "#4daf4a")], [target])
        figure.axes[0].set_title(words["chart.visits"])

    return _draw(draw, size=(7.0, 2.6))


def service_shares(committees: Sequence[GroupFigures], targets: tuple[float, float], words: Words) -> str | None:
    rows = [g for g in committees if g.service.critical]
    if not rows:
        return None
    labels = [words.committee(g.committee or "") for g in rows]
    series = [
        (words["service.critical_share_60s"], [g.service.critical_share_60s or 0.0 for g in rows], "#08519c"),
        (words["service.critical_share_180s"], [g.service.critical_share_180s or 0.0 for g in rows], "#6baed6"),
    ]

    def draw(figure: Figure) -> None:
        _shares(figure, labels, series, list(targets))
        figure.axes[0].set_title(words["chart.service"])

    return _draw(draw, size=(7.0, 2.6))
