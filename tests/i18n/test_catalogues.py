"""The gettext catalogues: templates match the source, every message has its Chinese (no fuzzy or
obsolete entries, the same placeholders), and the committed .mo files are what the .po compile to."""

from __future__ import annotations

import ast
import io
import re
import string
import subprocess
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from i18n.catalog import LOCALE_DIR

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ("carewatch", "web")
ZH = LOCALE_DIR / "zh_CN" / "LC_MESSAGES"


def _read(path: Path) -> Catalog:
    with path.open("rb") as fp:
        return read_po(fp)


def _ids(catalog: Catalog) -> set[tuple[str | None, str]]:
    return {(m.context, str(m.id)) for m in catalog if m.id}


def test_the_templates_hold_every_marked_message_of_the_source(tmp_path: Path) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "i18n"), "extract", str(tmp_path)], check=True, cwd=ROOT)
    for domain in DOMAINS:
        extracted, committed = _ids(_read(tmp_path / f"{domain}.pot")), _ids(_read(LOCALE_DIR / f"{domain}.pot"))
        assert extracted == committed, f"{domain}.pot is stale: run scripts/i18n update (and translate)"


def _placeholders(text: str) -> list[str]:
    """``{name:spec}`` fields (str.format) and ``$name`` fields (string.Template), sorted."""
    found = [f"{{{name}:{spec}}}" for _, name, spec, _ in string.Formatter().parse(text) if name is not None]
    found += [
        f"${m.group(1) or m.group(2)}" for m in string.Template.pattern.finditer(text) if m.group(1) or m.group(2)
    ]
    return sorted(found)


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_message_has_its_chinese_with_the_same_placeholders(domain: str) -> None:
    template, po = _read(LOCALE_DIR / f"{domain}.pot"), _read(ZH / f"{domain}.po")
    assert _ids(po) == _ids(template), f"zh_CN/{domain}.po is not updated: run scripts/i18n update"
    assert [m.id for m in po if m.id and not m.string] == [], "messages without their Chinese"
    assert [m.id for m in po if m.id and m.fuzzy] == [], "fuzzy translations: review them, then drop the flag"
    assert list(po.obsolete) == [], "obsolete entries: remove them (scripts/i18n update drops them)"
    for message in po:
        if message.id:
            assert _placeholders(str(message.string)) == _placeholders(str(message.id)), message.id
            # Chinese text, not a copy of the English (formats like "{date} {time}" excepted).
            if re.search(r"[A-Za-z]{3,}", re.sub(r"\{[^}]*\}|\$\w+", "", str(message.id))):
                assert re.search(r"[\u4e00-\u9fff]", str(message.string)), message.id


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_committed_mo_files_are_the_compiled_po(domain: str) -> None:
    with (ZH / f"{domain}.po").open("rb") as fp:
        catalog = read_po(fp, locale="zh_CN", domain=domain)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    assert compiled.getvalue() == (ZH / f"{domain}.mo").read_bytes(), "run scripts/i18n compile"


def _text_arguments(tree: ast.AST) -> list[tuple[int, ast.expr]]:
    """The title and detail arguments of every ProblemError(...) and _unauthorized(...) call."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "ProblemError":
                found += [(node.lineno, arg) for arg in node.args[1:3]]
            elif node.func.id == "_unauthorized":
                found += [(node.lineno, arg) for arg in node.args[:1]]
    return found


def test_every_problem_detail_is_a_catalogue_message() -> None:
    """``ProblemError(404, N_("Not found"), N_("alert {alert_id} not found"), alert_id=...)``: an f-string
    or an unmarked string could not be translated whole."""
    unmarked = []
    for path in sorted((ROOT / "api").rglob("*.py")):
        for line, arg in _text_arguments(ast.parse(path.read_text())):
            marked = isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "N_"
            if not marked and not isinstance(arg, ast.Name):
                unmarked.append(f"{path.relative_to(ROOT)}:{line}")
    assert unmarked == []
