"""The command line speaks the environment's language (gettext's LANGUAGE / LC_ALL / LC_MESSAGES / LANG)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from carewatch.backtest_cli import table
from carewatch.cli import main
from detectors import DetectorSuiteConfig, HouseholdSettings
from detectors.backtest import replay
from i18n import Language, messages
from tests.detectors.helpers import BUTTON, HH, METER, at, event, readings


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """``main`` configures logging for the process; the other tests keep theirs."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _speak(monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LANG", lang)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [("zh_CN.UTF-8", "数据库已迁移；存储模式："), ("C.UTF-8", "migrated; storage mode: ")],
)
def test_db_migrate_says_so_in_the_environments_language(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], database_url: str, lang: str, expected: str
) -> None:
    _speak(monkeypatch, lang)
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", database_url)
    assert main(["db", "migrate"]) == 0
    assert capsys.readouterr().out.startswith(expected)


def test_a_missing_setting_is_explained_in_chinese(monkeypatch: pytest.MonkeyPatch) -> None:
    _speak(monkeypatch, "zh_CN.UTF-8")
    monkeypatch.delenv("CAREWATCH_DATABASE_URL", raising=False)
    monkeypatch.delenv("CAREWATCH_CONFIG", raising=False)
    with pytest.raises(SystemExit, match="carewatch：未设置 CAREWATCH_DATABASE_URL"):
        main(["db", "migrate"])


def test_the_backtest_table_in_both_languages() -> None:
    # The press after the quiet (a press during it would be a sign of life that restarts its clock).
    records = [*readings(at(0), at(13)), event("sos", at(13))]
    result = replay(records, [METER, BUTTON], {HH: HouseholdSettings()}, DetectorSuiteConfig())
    chinese = table(result, messages(Language.ZH_CN))
    assert chinese.splitlines()[0].split() == ["住户", "检测器", "类型", "告警数"]
    assert "合计" in chinese
    assert "条记录" in chinese.splitlines()[-1]
    english = table(result, messages(Language.EN))
    assert english.splitlines()[0].split() == ["household", "detector", "kind", "alerts"]
    assert "backstop:flat_12h" in english
