"""Water meters that lose transmissions, as real NB-IoT meters in poor coverage do.

Measured on real meters (issue 15): about one transmission in twenty is lost, in runs of 4-25 hours with
no reading at all, and the lost readings are never back-filled; when transmissions resume, the cumulative
register carries the total, so the first reading after a run settles the whole gap. A fall whose quiet
falls into such a run is what carewatch's silence rule exists for.

:func:`loss_runs` draws the runs (the same model serves the detector evaluation, ``bench/detect_eval.py``);
:func:`lose_transmissions` drops a lossy meter's messages inside them from a simulation's stream, with one
ground-truth record (category ``fault``, kind ``transmission_loss``) per run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from schemas.kinds import DeviceType
from simulator.devices import SimDevice
from simulator.payloads import SimMessage
from simulator.scenarios import TruthRecord
from simulator.timefmt import HOUR_MS

LOSS_SHARE = 0.05
LOSS_RUN_H = (4.0, 25.0)


def loss_runs(rng: random.Random, start_h: float, end_h: float) -> Iterator[tuple[float, float]]:
    """Runs of lost transmissions ``(start, end)`` in hours, in [start_h, end_h): uniform 4-25 h long, the
    gaps between them exponential with the mean that loses ``LOSS_SHARE`` of the time. Started in its
    steady state: at ``start_h`` a run is already under way with that probability."""
    mean_run = sum(LOSS_RUN_H) / 2
    mean_gap = mean_run * (1 - LOSS_SHARE) / LOSS_SHARE
    if rng.random() < LOSS_SHARE:
        t = start_h - rng.uniform(0, rng.uniform(*LOSS_RUN_H))
    else:
        t = start_h + rng.expovariate(1 / mean_gap)
    while t < end_h:
        length = rng.uniform(*LOSS_RUN_H)
        if t + length > start_h:
            yield max(t, start_h), min(t + length, end_h)
        t += length + rng.expovariate(1 / mean_gap)


def lossy_meters(share: float, seed: int, devices: Sequence[SimDevice]) -> dict[str, random.Random]:
    """The water meters that lose transmissions (``share`` of them), each with its own generator."""
    out = {}
    for device in devices:
        if device.device_type is DeviceType.WATER_METER:
            rng = random.Random(f"{seed}/loss/{device.device_id}")
            if rng.random() < share:
                out[device.device_id] = rng
    return out


def lose_transmissions(
    messages: Iterator[SimMessage], share: float, *, seed: int, devices: Sequence[SimDevice], truth: list[TruthRecord]
) -> Iterator[SimMessage]:
    """``messages`` without what the lossy meters sent inside their loss runs (time order is kept)."""
    lossy = lossy_meters(share, seed, devices)
    by_id = {d.device_id: d for d in devices}
    runs: dict[str, Iterator[tuple[float, float]]] = {}
    current: dict[str, tuple[int, int]] = {}
    recorded: set[tuple[str, int]] = set()
    for message in messages:
        rng = lossy.get(message.device_id)
        if rng is None or message.kind == "will":
            yield message
            continue
        device_id = message.device_id
        if device_id not in runs:
            runs[device_id] = loss_runs(rng, message.at_ms / HOUR_MS, float("inf"))
        run = current.get(device_id)
        while run is None or run[1] <= message.at_ms:
            start_h, end_h = next(runs[device_id])
            run = current[device_id] = (int(start_h * HOUR_MS), int(end_h * HOUR_MS))
        if message.at_ms < run[0]:
            yield message
            continue
        if (device_id, run[0]) not in recorded:  # the truth names each run once, when it loses something
            recorded.add((device_id, run[0]))
            device = by_id[device_id]
            detail: dict[str, object] = {"never_back_filled": True}
            truth.append(
                TruthRecord("fault", "transmission_loss", device.household_id, run[0], run[1], None, device_id, detail)
            )
