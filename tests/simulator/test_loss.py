"""Water meters that lose transmissions: 1 in 20, in runs of 4-25 h, never back-filled."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest

from simulator import FaultPlan
from simulator.cli import main
from simulator.fleet import Simulation
from simulator.loss import LOSS_RUN_H, loss_runs, lossy_meters
from simulator.timefmt import HOUR_MS
from tests.simulator.helpers import small_fleet


def test_loss_runs_lose_one_in_twenty_in_runs_of_4_to_25_hours() -> None:
    span = 24 * 365 * 50.0
    runs = list(loss_runs(random.Random(3), 0.0, span))
    lengths = [end - start for start, end in runs[:-1]]
    assert LOSS_RUN_H[0] <= min(lengths) <= max(lengths) <= LOSS_RUN_H[1]
    assert 0.045 < sum(end - start for start, end in runs) / span < 0.055
    assert all(a[1] < b[0] for a, b in itertools.pairwise(runs))
    # Steady from the start: some windows begin inside a run.
    assert 0.02 < sum(next(loss_runs(random.Random(s), 0.0, 1e9))[0] == 0.0 for s in range(2000)) / 2000 < 0.08


def test_a_lossy_meter_sends_nothing_inside_its_runs_and_nothing_is_back_filled() -> None:
    fleet = small_fleet(homes=40, seed=4)
    lossy_sim = fleet.simulate(timedelta(days=20), faults=FaultPlan(lossy_meters=0.5))
    lossy, whole = _sent(lossy_sim), _sent(fleet.simulate(timedelta(days=20)))
    runs = [r for r in lossy_sim.ground_truth() if r.kind == "transmission_loss"]
    chosen = lossy_meters(0.5, fleet.seed, list(lossy_sim.devices))
    assert runs
    assert {r.device_id for r in runs} <= set(chosen)
    assert all(
        4 * HOUR_MS - 1 <= r.end_ms - r.start_ms <= 25 * HOUR_MS + 1 for r in runs if r.end_ms < lossy_sim.end_ms
    )
    inside: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for run in runs:
        assert run.device_id is not None
        inside[run.device_id].append((run.start_ms, run.end_ms))
    for device_id, messages in whole.items():
        if device_id not in chosen:
            assert lossy[device_id] == messages, device_id  # other devices lose nothing
            continue
        # Exactly the messages sent inside a run are missing: nothing is sent again later (a reading whose
        # transmission was lost never arrives; the register carries the total).
        kept = [m for m in messages if not any(s <= m[0] < e for s, e in inside[device_id])]
        assert lossy[device_id] == kept, device_id
        assert len(kept) < len(messages) or not inside[device_id]


def _sent(sim: Simulation) -> dict[str, list[tuple[int, bytes]]]:
    out: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for message in sim:
        out[message.device_id].append((message.at_ms, message.payload))
    return out


def test_the_cli_makes_meters_lossy_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--homes", "40", "--days", "6", "--start", "2026-01-05T00:00:00Z", "--seed", "4", "--quiet"]
    assert main([*args, "--lossy-meters", "0.5", "--output", str(tmp_path / "out.jsonl")]) == 0
    assert "transmission_loss" in capsys.readouterr().out
