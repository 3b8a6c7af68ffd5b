"""docs/protocol.md carries the JSON Schemas generated from schemas/: they must not drift apart."""

from __future__ import annotations

from pathlib import Path

from schemas.export import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_protocol_doc_schemas_match_the_models() -> None:
    document = DOC.read_text(encoding="utf-8")
    assert render(document) == document, "docs/protocol.md is stale: run `python -m schemas.export`"
