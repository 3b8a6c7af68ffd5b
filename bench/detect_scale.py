"""Scale: 100,000 meters × one day of 15-minute readings through baseline update + detectors.

    .venv/bin/python bench/detect_scale.py [--meters 100000] [--engine-sample 2000]

Two measurements, both printed:

1. Columnar day step (numpy over all meters at once): interval litres with register-reset handling,
   30-minute usage bits packed into the rolling 28-day baseline, the flat 12 h rule (exact, by
   searchsorted over each meter's register), continuous flow (runs of flowing intervals, the overnight
   window, running water), excessive daily use (absolute and 3 × own p90), and the routine limits
   (``detectors.routine.quiet_limits`` maths, vectorised in chunks of meters) evaluated against each
   meter's quiet stretch. This is how a daily batch of NB-IoT uploads is best processed.
2. The per-record :class:`detectors.Engine` (the live path) on ``--engine-sample`` meters with a
   warmed-up 28-day baseline, extrapolated linearly to ``--meters``; and its state per meter, measured
   with tracemalloc and as snapshot JSON bytes.

Last line: ``scale: meters=<n> columnar_s=<s> engine_s_extrapolated=<s> state_bytes_columnar=<b>
state_bytes_engine=<b> snapshot_bytes=<b>``.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc

import numpy as np

from detectors import DetectorSuiteConfig, Engine
from detectors.testing import PROFILES, Resident, meter_samples
from schemas.kinds import DeviceType
from schemas.records import DeviceInfo

DAYS = 28
STEPS = 96  # 15-minute intervals in a day
SLOT_PAIRS = 2  # intervals per 30-minute slot


def synth_day(n: int, rng: np.random.Generator) -> np.ndarray:
    """Registers (n, STEPS+1): morning/evening peaks, some leaks, a few resets and silent homes."""
    hour = (np.arange(STEPS) + 0.5) / 4
    rate = 0.15 + np.exp(-((hour - 7.5) ** 2) / 2) + 0.7 * np.exp(-((hour - 19) ** 2) / 3)
    use = rng.poisson(rate * 2.0, size=(n, STEPS)) * rng.choice([1.5, 4.0, 6.0], size=(n, STEPS))
    use[rng.random(n) < 0.02] = 0.0  # silent-water homes
    use[rng.random(n) < 0.05] += 3.0  # leaks
    reg = 1000 + np.concatenate([np.zeros((n, 1)), np.cumsum(use, axis=1)], axis=1)
    resets = rng.random(n) < 0.001
    reg[resets, 50:] -= reg[resets, 50:51] - 1.0
    return reg


def columnar_day(reg: np.ndarray, state: dict[str, np.ndarray], cfg: DetectorSuiteConfig) -> dict[str, int]:
    n = reg.shape[0]
    d = np.diff(reg, axis=1)
    boundary = d < -cfg.reset_tolerance_l
    litres = np.where(boundary, 0.0, np.maximum(d, 0.0))
    used = litres >= cfg.use_min_l
    # Baseline: pack 48 slot bits per meter and roll the 28-day history.
    slots = used.reshape(n, 48, SLOT_PAIRS).any(axis=2)
    bits = (slots.astype(np.uint64) << np.arange(48, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
    state["bits"] = np.concatenate([state["bits"][:, 1:], bits[:, None]], axis=1)
    total = litres.sum(axis=1)
    # Excessive use against the history before today.
    p90 = np.percentile(state["totals"], 90, axis=1)
    excess = (total > cfg.excess.daily_max_l) | (total > np.maximum(cfg.excess.relative_min_l, 3 * p90))
    state["totals"] = np.concatenate([state["totals"][:, 1:], total[:, None].astype(np.float32)], axis=1)
    # Flat rule, exact at reading resolution: earliest reading with register > r - L, per meter,
    # via one searchsorted over registers made globally monotone (row offset) and series-aware.
    series = np.cumsum(np.concatenate([np.zeros((n, 1), bool), boundary], axis=1), axis=1)
    mono = np.maximum.accumulate(reg - series * 1e6, axis=1) + series * 1e6
    flat = (mono + (np.arange(n) * 1e9)[:, None]).ravel()
    target = flat - cfg.flat_rules[0].min_litres
    first = np.searchsorted(flat, target, side="right").reshape(n, STEPS + 1) - (np.arange(n) * (STEPS + 1))[:, None]
    first = np.maximum(first, 0)
    quiet_steps = np.arange(STEPS + 1)[None, :] - first + state["carry_quiet"][:, None] * (first == 0)
    flat_fire = (quiet_steps >= 48).any(axis=1)
    state["carry_quiet"] = quiet_steps[:, -1].astype(np.int32)
    # Continuous flow: longest run of flowing intervals; overnight window 01:00-05:00 (steps 4..19).
    flowing = litres > 0
    idx = np.arange(STEPS)
    last_dry = np.maximum.accumulate(np.where(~flowing, idx, -1), axis=1)
    run = idx - last_dry + np.where(last_dry < 0, state["carry_run"][:, None], 0)
    state["carry_run"] = run[:, -1].astype(np.int32)
    all_day = (run >= 96).any(axis=1)
    overnight = flowing[:, 4:20].all(axis=1)
    high = litres >= cfg.flow.high_rate_lpm * 15
    running = np.lib.stride_tricks.sliding_window_view(high, 4, axis=1).all(axis=2).any(axis=1)
    # Routine: quiet limits for meters with a stretch of >= 1 h today, vectorised in chunks.
    last_use = np.maximum.accumulate(np.where(used, idx, -1), axis=1)
    quiet_now = idx - last_use
    candidates = np.flatnonzero((quiet_now >= 4).any(axis=1))
    routine_fire = 0
    for lo in range(0, len(candidates), 5000):
        rows_idx = candidates[lo : lo + 5000]
        hist = state["bits"][rows_idx]
        usage = ((hist[:, :, None] >> np.arange(48, dtype=np.uint64)) & np.uint64(1)).astype(bool)
        pairs = np.concatenate([usage[:, :-2], usage[:, 1:-1]], axis=2)  # history pairs before today
        last = np.maximum.accumulate(np.where(pairs, np.arange(96), -1), axis=2)[:, :, 48:]
        dur = np.where(last >= 0, (np.arange(48, 96) - last + 1) * 1800.0, np.inf)
        usual = dur.max(axis=1)
        limit = usual + np.maximum(3600.0, usual - np.median(dur, axis=1))
        q = quiet_now[rows_idx] * 900.0
        routine_fire += int((q.reshape(-1, 48, 2).max(axis=2) > limit).any(axis=1).sum())
    return {
        "flat": int(flat_fire.sum()),
        "routine": routine_fire,
        "all_day": int(all_day.sum()),
        "overnight": int(overnight.sum()),
        "running": int(running.sum()),
        "excess": int(excess.sum()),
        "resets": int(boundary.any(axis=1).sum()),
    }


def engine_sample(meters: int) -> tuple[float, float, float]:
    """Seconds for one day of the per-record engine on ``meters`` warmed-up meters, tracemalloc bytes
    per meter, snapshot JSON bytes per meter."""
    days = DAYS + 1
    per_meter = []
    for i in range(meters):
        info = DeviceInfo(f"m{i}", DeviceType.WATER_METER, f"h{i}", 900)
        uses = Resident(info.household_id, info.device_id, PROFILES["regular"], i).uses(days + 1)
        per_meter.append((info, list(meter_samples(info.device_id, info.household_id, uses, 0, days * 24))))
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    engine = Engine(DetectorSuiteConfig())
    for info, samples in per_meter:
        engine.upsert_device(info)
        engine.process(samples[: DAYS * STEPS])
    state_bytes = (tracemalloc.get_traced_memory()[0] - base) / meters
    tracemalloc.stop()
    start = time.perf_counter()
    for _, samples in per_meter:
        day = samples[DAYS * STEPS :]
        for i in range(0, len(day), 4):  # hourly uploads of four readings
            engine.process(day[i : i + 4])
    seconds = time.perf_counter() - start
    snaps = engine.all_snapshots()
    snapshot_bytes = sum(len(json.dumps(v)) for k, v in snaps.items() if k.startswith("dev:")) / meters
    return seconds, state_bytes, snapshot_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--engine-sample", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    n = args.meters
    cfg = DetectorSuiteConfig()
    hist_bits = rng.integers(0, 2**48, size=(n, DAYS), dtype=np.uint64)
    state = {
        "bits": hist_bits,
        "totals": rng.gamma(4, 50, size=(n, DAYS)).astype(np.float32),
        "carry_quiet": np.zeros(n, np.int32),
        "carry_run": np.zeros(n, np.int32),
    }
    reg = synth_day(n, rng)
    start = time.perf_counter()
    counts = columnar_day(reg, state, cfg)
    columnar_s = time.perf_counter() - start
    columnar_bytes = sum(a.nbytes for a in state.values()) / n
    print(f"columnar: {n} meters x {STEPS} readings in {columnar_s:.2f} s; findings {counts}")
    seconds, engine_bytes, snap_bytes = engine_sample(args.engine_sample)
    extrapolated = seconds * n / args.engine_sample
    print(
        f"engine: {args.engine_sample} meters x {STEPS} readings in {seconds:.2f} s "
        f"({seconds / (args.engine_sample * STEPS) * 1e6:.0f} us/reading) -> {extrapolated:.0f} s for {n}; "
        f"state {engine_bytes:.0f} B/meter in memory, {snap_bytes:.0f} B/meter as snapshot JSON"
    )
    print(
        f"scale: meters={n} columnar_s={columnar_s:.2f} engine_s_extrapolated={extrapolated:.1f} "
        f"state_bytes_columnar={columnar_bytes:.0f} state_bytes_engine={engine_bytes:.0f} "
        f"snapshot_bytes={snap_bytes:.0f}"
    )


if __name__ == "__main__":
    main()
