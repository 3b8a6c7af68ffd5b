"""Scale: baselines + all detectors for ``--meters`` meters over one day of 15-minute readings, measured
on the production code path (the :class:`detectors.Engine` the live runner and the backtest use).

    .venv/bin/python bench/detect_scale.py [--meters 100000] [--engine-sample 2000] [--first-hour 0]

``--engine-sample`` meters get a 28-day history (the routine baseline is warm) and then one day of
readings, delivered twice over to two engines in the two shapes the runner sees: hourly uploads of four
readings (live meters) and one daily batch of 96 (NB-IoT meters). Both engines are the production
configuration: the daily batch (one ``process`` call with every meter's day; the engine groups it per
meter, 96 readings each) goes through the fleet path (``detectors/meter_fleet.py``: all meters' uneventful
days screened and applied together, in chunks of 1,024 meters) and, for a day where something may fire,
the meter's bulk path (``detectors/meter_batch.py``) and the per-reading path; the hourly uploads (4
readings, below ``BATCH_MIN``) go through the per-reading path. Both times include closing the day: the
routine's new limits and the ledger. The sample's times scaled to ``--meters`` are the ``_extrapolated``
figures. The day's readings run from ``--first-hour`` (local) for 24 hours: from 00:00 they are one
local day; from any other hour (a meter that uploads at 03:00) two, and the fleet path works each
local day apart.

Then the full fleet, measured outright: ``--meters`` meters restored from the warm sample's snapshots (as
the runner restores on start; each sample meter under ``meters / sample`` new ids, with its readings) get
two days, each in the live runner's rounds (whole uploads, at most
``carewatch.detector_runner.UPLOADS_PER_ROUND`` of them and ~``READINGS_PER_ROUND`` readings, cut by the
runner's own functions). Both are printed; the second, steady, is ``engine_daily_batch_s`` (the first
after a restore also recomputes the routine's limits for a day already begun where a day's readings span
two local days). It includes what the sample does not show, 100,000 meters' state in memory, and
excludes the runner's own bookkeeping (device health, watermark: ~10 us per meter-day) and the database.
Warming 100,000 meters organically would take about an hour.

State per meter is measured with tracemalloc after imports and caches are warm (engine, device, health,
meter logic, ledger, routine cache, household view and outage state, timer heap entries; one household
per meter, the worst case), and as snapshot JSON bytes.

Last line: ``scale: meters=<n> engine_s_extrapolated=<s> engine_daily_batch_s_extrapolated=<s>
engine_daily_batch_s=<s> state_bytes_engine=<b> snapshot_bytes=<b> sample=<n>``.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
import tracemalloc
from collections import deque
from typing import Any

from carewatch.detector_runner import READINGS_PER_ROUND, UPLOADS_PER_ROUND, take_uploads, uploads
from detectors import DetectorSuiteConfig, Engine
from detectors.testing import PROFILES, Resident, meter_samples
from schemas.kinds import DeviceType
from schemas.records import DeviceInfo, MeterSample

DAYS = 28
STEPS = 96  # 15-minute intervals in a day


# The device, its warm-up, its day, and the day after (the full fleet's second day after restoring).
Meter = tuple[DeviceInfo, list[MeterSample], list[MeterSample], list[MeterSample]]


def fleet(meters: int, first_hour: int) -> list[Meter]:
    """Meters with DAYS days (and ``first_hour`` hours) of history, and two days of readings after."""
    names = list(PROFILES)
    out = []
    first = DAYS * STEPS + first_hour * STEPS // 24
    for i in range(meters):
        info = DeviceInfo(f"m{i}", DeviceType.WATER_METER, f"h{i}", 900)
        uses = Resident(info.household_id, info.device_id, PROFILES[names[i % len(names)]], i).uses(DAYS + 4)
        samples = list(meter_samples(info.device_id, info.household_id, uses, 0, (DAYS + 3) * 24))
        out.append((info, samples[:first], samples[first : first + STEPS], samples[first + STEPS : first + 2 * STEPS]))
    return out


def warm(per_meter: list[Meter]) -> Engine:
    engine = Engine(DetectorSuiteConfig())
    for info, history, _, _ in per_meter:
        engine.upsert_device(info)
        engine.process(history)
    return engine


def full_scale(warm_state: dict[str, dict[str, Any]], per_meter: list[Meter], meters: int) -> list[tuple[float, float]]:
    """For ``meters`` meters' two days, each fed as the live runner feeds it (rounds of whole uploads,
    :func:`carewatch.detector_runner.take_uploads`): seconds in engine calls and the share of readings
    on the fleet path.

    The engine is restored from snapshots, as the runner does on start: each of the sample's warm meters
    under ``meters / sample`` new ids, with its state and its days of readings. The sample's warm-up
    takes minutes per 2,000 meters; this holds the state of 100,000 without an hour of warm-up. The first
    day after a restore also recomputes each meter's routine limits for a day already begun (a cache the
    snapshots leave out) where the day's readings span two local days; the second day is steady."""
    snapshots: dict[str, dict[str, Any]] = {}
    copies = -(-meters // len(per_meter))
    for key, state in warm_state.items():
        kind, ident = key.split(":", 1)
        for c in range(copies):
            copy = state
            if kind == "dev":
                device_id, device_type, household_id, interval = state["info"]
                copy = {**state, "info": [f"{device_id}~{c}", device_type, f"{household_id}~{c}", interval]}
            snapshots[f"{kind}:{ident}~{c}"] = copy
    engine = Engine(DetectorSuiteConfig(), snapshots)
    del snapshots
    out = []
    for days in ([day for _, _, day, _ in per_meter], [after for _, _, _, after in per_meter]):
        pending: deque[list[MeterSample]] = deque()
        for k in range(meters):
            c, info, day = k // len(per_meter), per_meter[k % len(per_meter)][0], days[k % len(per_meter)]
            device_id, household_id = f"{info.device_id}~{c}", f"{info.household_id}~{c}"
            pending.extend(
                uploads([MeterSample(device_id, household_id, s.ts, s.register_l, s.received_at) for s in day])
            )
        rounds = []
        while pending:
            rounds.append(take_uploads(pending))
        gc.collect()
        fleet_before = engine.fleet_readings
        start = time.perf_counter()
        for records in rounds:
            engine.process(records)
        seconds = time.perf_counter() - start
        out.append((seconds, (engine.fleet_readings - fleet_before) / sum(map(len, rounds))))
        del rounds
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--engine-sample", type=int, default=2000)
    parser.add_argument(
        "--first-hour", type=int, default=0, choices=range(24), help="local hour of the day's first reading"
    )
    args = parser.parse_args()
    n, sample = args.meters, args.engine_sample
    per_meter = fleet(sample, args.first_hour)
    warm(fleet(3, args.first_hour)).process([])  # imports, numpy and zone caches: not per-meter state
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    engine = warm(per_meter)
    gc.collect()
    state_bytes = (tracemalloc.get_traced_memory()[0] - base) / sample
    tracemalloc.stop()
    hourly = 0.0
    start = time.perf_counter()
    for _, _, day, _ in per_meter:
        for i in range(0, len(day), 4):  # hourly uploads of four readings
            engine.process(day[i : i + 4])
    hourly = time.perf_counter() - start
    snaps = engine.all_snapshots()
    snapshot_bytes = sum(len(json.dumps(v)) for k, v in snaps.items() if k.startswith("dev:")) / sample
    del engine
    batch_engine = warm(per_meter)
    warm_state = batch_engine.all_snapshots()
    day_batch = [s for _, _, day, _ in per_meter for s in day]
    bulk_before, fleet_before = batch_engine.batch_readings, batch_engine.fleet_readings
    start = time.perf_counter()
    batch_engine.process(day_batch)
    daily = time.perf_counter() - start
    bulk = batch_engine.batch_readings - bulk_before
    on_fleet = batch_engine.fleet_readings - fleet_before
    # The full fleet's process holds what the runner would: engine state and the day's readings, not the
    # sample's four weeks of history (5 million objects more for the garbage collector to walk).
    del batch_engine, day_batch
    per_days: list[Meter] = [(info, [], day, after) for info, _, day, after in per_meter]
    del per_meter
    (first_day, _), (full, full_fleet) = full_scale(warm_state, per_days, n)
    print(
        f"engine: {sample} meters x {STEPS} readings from {args.first_hour:02d}:00: hourly uploads {hourly:.2f} s "
        f"({hourly / (sample * STEPS) * 1e6:.1f} us/reading), one daily batch {daily:.2f} s "
        f"({daily / sample * 1e6:.0f} us/meter-day, {bulk / (sample * STEPS):.1%} of readings in bulk, "
        f"{on_fleet / (sample * STEPS):.1%} on the fleet path); "
        f"state {state_bytes:.0f} B/meter in memory, {snapshot_bytes:.0f} B/meter as snapshot JSON"
    )
    print(
        f"engine: {n} meters restored from the sample's snapshots, two days in the live runner's rounds "
        f"(whole uploads, at most {UPLOADS_PER_ROUND} and ~{READINGS_PER_ROUND} readings): the first "
        f"{first_day:.2f} s, the second {full:.2f} s ({full / n * 1e6:.0f} us/meter-day, "
        f"{full_fleet:.1%} of readings on the fleet path)"
    )
    print(
        f"scale: meters={n} engine_s_extrapolated={hourly * n / sample:.1f} "
        f"engine_daily_batch_s_extrapolated={daily * n / sample:.1f} engine_daily_batch_s={full:.1f} "
        f"state_bytes_engine={state_bytes:.0f} "
        f"snapshot_bytes={snapshot_bytes:.0f} sample={sample}"
    )


if __name__ == "__main__":
    main()
