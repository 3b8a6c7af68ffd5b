"""Same seed and start give byte-identical output; the CLI writes it as JSON lines."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest

from simulator import FaultPlan, parse_scenarios
from simulator.cli import main
from tests.simulator.helpers import small_fleet

ARGS = [
    "--homes",
    "15",
    "--days",
    "1",
    "--start",
    "2026-01-05T00:00:00Z",
    "--scenario",
    "all",
    "--faults",
    "0.01",
    "--quiet",
]


def _digest(seed: int) -> str:
    fleet = small_fleet(seed=seed)
    sim = fleet.simulate(timedelta(hours=30), scenarios=parse_scenarios("all"), faults=FaultPlan.parse(0.02))
    digest = hashlib.sha256()
    for message in sim:
        digest.update(message.to_json_line().encode() + b"\n")
    return digest.hexdigest()


def test_same_seed_same_messages() -> None:
    assert _digest(5) == _digest(5)
    assert _digest(5) != _digest(6)


def test_cli_output_is_byte_identical(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    truth = tmp_path / "truth.jsonl"
    assert main([*ARGS, "--seed", "4", "--output", str(first), "--ground-truth", str(truth)]) == 0
    assert main([*ARGS, "--seed", "4", "--output", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    lines = first.read_text(encoding="utf-8").splitlines()
    assert len(lines) > 1000
    row = json.loads(lines[0])
    assert set(row) == {"topic", "payload"}
    assert row["topic"].startswith("care/v1/dev/sim-")
    summary = capsys.readouterr().out
    assert "messages by kind:" in summary
    assert "incidents injected: 10" in summary
    records = [json.loads(line) for line in truth.read_text(encoding="utf-8").splitlines()]
    assert {r["category"] for r in records} >= {"incident", "fault"}


def test_window_order_is_publish_order() -> None:
    sim = small_fleet().simulate(timedelta(hours=26))
    times = [m.at_ms for m in sim]
    assert times == sorted(times)
