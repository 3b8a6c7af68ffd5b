"""Scale: baselines + all detectors for ``--meters`` meters over one day of 15-minute readings, measured
on the production code path (the :class:`detectors.Engine` the live runner and the backtest use).

    .venv/bin/python bench/detect_scale.py [--meters 100000] [--engine-sample 2000]

``--engine-sample`` meters get a 28-day history (the routine baseline is warm) and then one day of
readings, delivered twice over to two engines in the two shapes the runner sees: hourly uploads of four
readings (live meters) and one daily batch of 96 (NB-IoT meters). Both engines are the production
configuration: the daily batch (one ``process`` call with every meter's day; the engine groups it per
meter, 96 readings each) goes through the fleet path (``detectors/meter_fleet.py``: all meters' uneventful
days screened and applied together, in chunks of 1,024 meters) and, for a day where something may fire,
the meter's bulk path (``detectors/meter_batch.py``) and the per-reading path; the hourly uploads (4
readings, below ``BATCH_MIN``) go through the per-reading path. Both times include closing the day: the
routine's new limits and the ledger. Meters are independent and the fleet path works in fixed chunks,
so the time for ``--meters`` is the sample's time scaled linearly (``--engine-sample 10000`` checks it;
``--engine-sample 100000`` measures it outright, but its two 28-day warm-ups take most of an hour).
State per meter is measured with tracemalloc after imports and
caches are warm (engine, device, health, meter logic, ledger, routine cache, household view and outage
state, timer heap entries; one household per meter, the worst case), and as snapshot JSON bytes.

An earlier version of this benchmark timed a separate numpy re-implementation of the detectors; that is
not what runs in production, so it is gone: the figures below are the engine's.

Last line: ``scale: meters=<n> engine_s_extrapolated=<s> engine_daily_batch_s_extrapolated=<s>
state_bytes_engine=<b> snapshot_bytes=<b> sample=<n>``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc

from detectors import DetectorSuiteConfig, Engine
from detectors.testing import PROFILES, Resident, meter_samples
from schemas.kinds import DeviceType
from schemas.records import DeviceInfo, MeterSample

DAYS = 28
STEPS = 96  # 15-minute intervals in a day


def fleet(meters: int) -> list[tuple[DeviceInfo, list[MeterSample]]]:
    names = list(PROFILES)
    out = []
    for i in range(meters):
        info = DeviceInfo(f"m{i}", DeviceType.WATER_METER, f"h{i}", 900)
        uses = Resident(info.household_id, info.device_id, PROFILES[names[i % len(names)]], i).uses(DAYS + 2)
        out.append((info, list(meter_samples(info.device_id, info.household_id, uses, 0, (DAYS + 1) * 24))))
    return out


def warm(per_meter: list[tuple[DeviceInfo, list[MeterSample]]]) -> Engine:
    engine = Engine(DetectorSuiteConfig())
    for info, samples in per_meter:
        engine.upsert_device(info)
        engine.process(samples[: DAYS * STEPS])
    return engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--engine-sample", type=int, default=2000)
    args = parser.parse_args()
    n, sample = args.meters, args.engine_sample
    per_meter = fleet(sample)
    warm(fleet(3)).process([])  # imports, numpy and zone caches: not per-meter state
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    engine = warm(per_meter)
    gc.collect()
    state_bytes = (tracemalloc.get_traced_memory()[0] - base) / sample
    tracemalloc.stop()
    hourly = 0.0
    start = time.perf_counter()
    for _, samples in per_meter:
        day = samples[DAYS * STEPS :]
        for i in range(0, len(day), 4):  # hourly uploads of four readings
            engine.process(day[i : i + 4])
    hourly = time.perf_counter() - start
    snaps = engine.all_snapshots()
    snapshot_bytes = sum(len(json.dumps(v)) for k, v in snaps.items() if k.startswith("dev:")) / sample
    del engine
    batch_engine = warm(per_meter)
    day_batch = [s for _, samples in per_meter for s in samples[DAYS * STEPS :]]
    bulk_before, fleet_before = batch_engine.batch_readings, batch_engine.fleet_readings
    start = time.perf_counter()
    batch_engine.process(day_batch)
    daily = time.perf_counter() - start
    bulk = batch_engine.batch_readings - bulk_before
    on_fleet = batch_engine.fleet_readings - fleet_before
    print(
        f"engine: {sample} meters x {STEPS} readings: hourly uploads {hourly:.2f} s "
        f"({hourly / (sample * STEPS) * 1e6:.1f} us/reading), one daily batch {daily:.2f} s "
        f"({daily / sample * 1e6:.0f} us/meter-day, {bulk / (sample * STEPS):.1%} of readings in bulk, "
        f"{on_fleet / (sample * STEPS):.1%} on the fleet path); "
        f"state {state_bytes:.0f} B/meter in memory, {snapshot_bytes:.0f} B/meter as snapshot JSON"
    )
    print(
        f"scale: meters={n} engine_s_extrapolated={hourly * n / sample:.1f} "
        f"engine_daily_batch_s_extrapolated={daily * n / sample:.1f} state_bytes_engine={state_bytes:.0f} "
        f"snapshot_bytes={snapshot_bytes:.0f} sample={sample}"
    )


if __name__ == "__main__":
    main()
