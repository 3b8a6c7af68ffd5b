"""Score the detectors on labelled synthetic residents and, with ``--real PATH``, on real meters.

    .venv/bin/python bench/detect_eval.py [--homes 90] [--seed 1] [--real ../shared/data/karratha]

Synthetic (always): ``--homes`` residents (regular / weekend-different / irregular in turn) live 28
warm-up days and one scored month. Normal-living runs include announced away trips and hospital stays
(set as household periods) and, in every third home, a meter that goes silent for 8 h and then uploads
the stored readings late. Incident runs stop all water use at a random time of a random scored day (a
fall) and press sos / sound the smoke alarm at random times. The default suite is compared with the
program rule alone (flat 12 h, exactly as written, no routine).

Real (``--real``): the 200 Karratha homes (hourly litres) are replayed untouched; water alerts after
the 28-day warm-up on home-days with some use (not the 0 L days, which are real absences) count as
false. Then a fall is injected into each home's real baseline (use stops at a random hour of an
ordinary day after the warm-up) to measure recall within 12 h. The data is never copied.

Scoring, and why (issue 4):

- ``recall_inactivity`` counts a fall as detected when an inactivity finding is raised within 12 h of
  the fall itself (not of the last reading). On 15-minute readings the last use before a fall is only
  seen at the next reading, up to 15 min later, so a rule counting 12 h from that reading can land
  just past 12 h; the suite's backstop therefore counts from the start of that interval (see
  ``detectors/meter.py``). ``recall_inactivity_within_12h15m`` is printed for comparison.
- A fall lands at home: never inside (or within its 24 h follow-up, before) the announced away or
  hospital period of that home's normal-living run, whose settings stay in force. (Earlier versions
  injected falls into the water gap of a trip with the trip unannounced, scoring the trip's quiet.)
- A fall injected into a stretch that was already quiet and already alerted before the fall (the
  finding's quiet began at or after the last use before the fall) counts as detected: the alert is
  open and a caregiver on the way. Such cases are counted and printed (``pre_alerted``); they have no
  delay figure.
- ``routine_regular_median_delay_min`` is over the regular residents' falls where the routine fired
  first or at all; ``suite_regular_median_delay_min`` over all of them; ``flat_*`` is the program rule.
- Real data: ``real_false_alerts_per_home_month`` counts inactivity findings (the ones that send a
  volunteer); all water kinds are printed on the ``real:`` line. The standing-leak LOW maintenance
  notice is printed in the breakdown, not counted.

The last line is the issue's summary line; the lines before it break the figures down.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, Period
from detectors.testing import PROFILES, Resident, hours_to_dt, meter_samples
from schemas.findings import Finding, FindingAction
from schemas.kinds import AlertKind, DeviceType
from schemas.records import DeviceEvent, DeviceInfo, MeterSample, Record

WARMUP_D = 28
SCORED_D = 30
INACTIVITY = {AlertKind.INACTIVITY, AlertKind.ROUTINE_MISSED}
WATER = INACTIVITY | {AlertKind.CONTINUOUS_FLOW, AlertKind.EXCESSIVE_USE}
SUITE = DetectorSuiteConfig()
BREAKDOWN: Counter[str] = Counter()
PRE_ALERTED: Counter[str] = Counter()
PROGRAM = replace(
    SUITE,
    flat_rules=(replace(SUITE.flat_rules[0], personal=False), SUITE.flat_rules[1]),
    routine=replace(SUITE.routine, enabled=False),
)


def run(
    cfg: DetectorSuiteConfig,
    devices: list[DeviceInfo],
    settings: HouseholdSettings | None,
    batches: Sequence[Sequence[Record]],
) -> list[Finding]:
    """Feed batches (lists of records, in arrival order) and tick between them."""
    engine = Engine(cfg)
    for d in devices:
        engine.upsert_device(d)
    if settings is not None:
        engine.set_household(devices[0].household_id, settings)
    out: list[Finding] = []
    for batch in batches:
        now = batch[0].received_at
        timer = engine.next_timer()
        while timer is not None and timer < now:
            out.extend(engine.tick(timer))
            timer = engine.next_timer()
        out.extend(engine.process(batch))
    return [f for f in out if f.action is FindingAction.RAISE]


def chunk(samples: list[MeterSample]) -> list[list[MeterSample]]:
    """Group by arrival time (a late batch arrives as one)."""
    groups: list[list[MeterSample]] = []
    for s in samples:
        if groups and groups[-1][0].received_at == s.received_at:
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


# Synthetic --------------------------------------------------------------------------------------------
def synthetic(homes: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    names = list(PROFILES)
    false_alerts = 0
    delays: dict[str, list[float]] = {
        "suite": [],
        "program": [],
        "routine_regular": [],
        "program_regular": [],
        "suite_regular": [],
    }
    detected, falls, emergencies, emergencies_hit = 0, 0, 0, 0
    # Within 12 h plus one reading interval: a use just before the fall is only seen at the next reading.
    detected_grid = 0
    for h in range(homes):
        profile = PROFILES[names[h % len(names)]]
        hid, mid = f"syn{h:03d}", f"syn{h:03d}-m"
        meter = DeviceInfo(mid, DeviceType.WATER_METER, hid, 900)
        resident = Resident(hid, mid, profile, seed * 1000 + h)
        uses = resident.uses(WARMUP_D + SCORED_D + 1)
        end_h = (WARMUP_D + SCORED_D) * 24.0
        # Normal living, with an announced away trip or hospital stay in some homes.
        periods: tuple[Period, ...] = ()
        if rng.random() < 0.3:
            start = (WARMUP_D + rng.integers(2, SCORED_D - 8)) * 24 + rng.uniform(8, 18)
            length = rng.uniform(2, 6) * 24
            periods = (Period(hours_to_dt(start), hours_to_dt(start + length), rng.choice(["away", "hospital"])),)
            uses = [u for u in uses if not start - 0.5 <= u[0] < start + length]
        samples = list(meter_samples(mid, hid, uses, 0, end_h))
        silent: tuple[float, float] | None = None
        if h % 3 == 2:  # the meter goes silent for 8 h, then uploads the stored readings late
            s0 = (WARMUP_D + rng.integers(1, SCORED_D - 1)) * 24 + rng.uniform(0, 24)
            silent = (s0, s0 + 8)
            late = hours_to_dt(s0 + 8)
            samples = [replace(s, received_at=late) if hours_to_dt(s0) <= s.ts < late else s for s in samples]
        found = run(SUITE, [meter], HouseholdSettings(away=periods), chunk(samples))
        scored_from = hours_to_dt(WARMUP_D * 24)
        for f in found:
            if f.detected_at < scored_from:
                continue
            if f.kind is AlertKind.DEVICE_OFFLINE and silent is not None:
                continue  # the injected fault, correctly reported
            false_alerts += 1
            BREAKDOWN[f"{profile.name}:{f.detector}"] += 1
        # A fall: all use stops at a random time of a random scored day, at home: not during the away
        # trip or hospital stay (whose water use was removed above), which stays announced, so the
        # quiet of the trip is not mistaken for the fall's.
        t_inc = (WARMUP_D + rng.integers(0, SCORED_D - 1)) * 24 + rng.uniform(0, 24)
        while any(hours_to_dt(t_inc - 0.5) < p.end and p.start < hours_to_dt(t_inc + 24) for p in periods):
            t_inc = (WARMUP_D + rng.integers(0, SCORED_D - 1)) * 24 + rng.uniform(0, 24)
        fall_uses = [u for u in uses if u[0] < t_inc]
        fall = chunk(list(meter_samples(mid, hid, fall_uses, 0, t_inc + 24)))
        inc = hours_to_dt(t_inc)
        falls += 1
        household = HouseholdSettings(away=periods)
        last_use = hours_to_dt(fall_uses[-1][0] - 0.25) if fall_uses else hours_to_dt(0)
        for label, cfg in (("suite", SUITE), ("program", PROGRAM)):
            found_fall = run(cfg, [meter], household, fall)
            hits = [f for f in found_fall if f.kind in INACTIVITY and f.detected_at >= inc]
            if label == "suite" and pre_alerted(found_fall, inc, last_use):
                detected += 1
                detected_grid += 1
                PRE_ALERTED["synthetic"] += 1
                continue
            if not hits:
                continue
            first = min(hits, key=lambda f: f.detected_at)
            delay = (first.detected_at - inc).total_seconds() / 60
            delays[label].append(delay)
            if label == "suite" and delay <= 12 * 60:
                detected += 1
            if label == "suite" and delay <= 12 * 60 + 15:
                detected_grid += 1
            if profile.name == "regular":
                if label == "program":
                    delays["program_regular"].append(delay)
                else:
                    delays["suite_regular"].append(delay)
                routine = [f for f in hits if f.detector == "routine"]
                if label == "suite" and routine:
                    delays["routine_regular"].append((min(f.detected_at for f in routine) - inc).total_seconds() / 60)
        emergencies_hit += emergency_run(hid, rng)
        emergencies += 2
    months = homes * SCORED_D / 30.0
    return {
        "recall_emergency": emergencies_hit / emergencies,
        "recall_inactivity": detected / falls,
        "recall_inactivity_12h15": detected_grid / falls,
        "median_delay_inactivity_min": statistics.median(delays["suite"]) if delays["suite"] else float("nan"),
        "flat_rule_median_delay_min": statistics.median(delays["program"]) if delays["program"] else float("nan"),
        "routine_regular_median_delay_min": statistics.median(delays["routine_regular"] or [float("nan")]),
        "flat_regular_median_delay_min": statistics.median(delays["program_regular"] or [float("nan")]),
        "suite_regular_median_delay_min": statistics.median(delays["suite_regular"] or [float("nan")]),
        "routine_regular_share": len(delays["routine_regular"]) / max(len(delays["suite_regular"]), 1),
        "false_alerts_per_home_month": false_alerts / months,
    }


def pre_alerted(found: list[Finding], inc: datetime, last_use: datetime) -> bool:
    """The incident fell inside a quiet stretch that was already alerted before it and is still open.

    A fall injected at random can land in a home that was already silent for hours (the resident out,
    or the data's own long quiet); when an inactivity alert for that very stretch (quiet since the
    interval of the last use before the incident, or later) was raised before the incident, a caregiver
    is already on the way and no detector can raise it again: it counts as detected, with no delay
    figure (such cases are counted separately, ``pre_alerted``).
    """
    return any(f.kind in INACTIVITY and f.detected_at < inc and f.at >= last_use for f in found)


def emergency_run(hid: str, rng: np.random.Generator) -> int:
    button = DeviceInfo(f"{hid}-c", DeviceType.CALL_BUTTON, hid, 3600)
    smoke = DeviceInfo(f"{hid}-s", DeviceType.SMOKE_ALARM, hid, 3600)
    t_sos = hours_to_dt(rng.uniform(0, 24 * SCORED_D))
    t_fire = hours_to_dt(rng.uniform(0, 24 * SCORED_D))
    events = [
        DeviceEvent(button.device_id, hid, DeviceType.CALL_BUTTON, t_sos, 1, "sos", t_sos),
        DeviceEvent(smoke.device_id, hid, DeviceType.SMOKE_ALARM, t_fire, 1, "alarm", t_fire),
    ]
    events.sort(key=lambda e: e.received_at)
    found = run(SUITE, [button, smoke], None, [[e] for e in events])
    kinds = {(f.kind, f.at) for f in found}
    return int((AlertKind.SOS, t_sos) in kinds) + int((AlertKind.SMOKE, t_fire) in kinds)


# Real: Karratha -------------------------------------------------------------------------------------------
def karratha(path: Path, seed: int, limit: int | None = None) -> dict[str, float]:
    csv_path = path / "karratha_sample_hourly_litres_200hh.csv" if path.is_dir() else path
    with csv_path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        data = np.array([[float(x or 0) for x in row] for row in reader])
    litres = data[:, 1:]
    hours_n = litres.shape[0]
    rng = np.random.default_rng(seed)
    false_inactivity = false_water = 0
    ordinary_days = 0
    hits = falls = 0
    day_totals = litres[: hours_n // 24 * 24].reshape(-1, 24, litres.shape[1]).sum(axis=1)
    for col, name in enumerate(header[1 : 1 + limit if limit else None]):
        meter = DeviceInfo(f"{name}-m", DeviceType.WATER_METER, name, 3600)
        use = litres[:, col]
        found = run(SUITE, [meter], None, [[s] for s in hourly_samples(meter, use, hours_n)])
        zero_days = set(np.flatnonzero(day_totals[:, col] <= 0).tolist())
        ordinary_days += sum(1 for d in range(WARMUP_D, day_totals.shape[0]) if d not in zero_days)
        for f in found:
            day = int((f.detected_at - hours_to_dt(0)).total_seconds() // 86400)
            if f.detector == "flow_standing" and day >= WARMUP_D:
                BREAKDOWN["real:flow_standing(low maintenance notice, not counted)"] += 1
            if day < WARMUP_D or day in zero_days or f.kind not in WATER:
                continue
            false_water += 1
            BREAKDOWN[f"real:{f.detector}"] += 1
            false_inactivity += f.kind in INACTIVITY
        # Injected fall on an ordinary day after the warm-up.
        candidates = [d for d in range(WARMUP_D, day_totals.shape[0] - 1) if d not in zero_days]
        if not candidates:
            continue
        t_inc = int(rng.choice(candidates)) * 24 + int(rng.integers(0, 24))
        cut = use[: t_inc + 24].copy()
        cut[t_inc:] = 0.0
        inc = hours_to_dt(t_inc)
        fall = [[s] for s in hourly_samples(meter, cut, t_inc + 24)]
        falls += 1
        found_fall = run(SUITE, [meter], None, fall)
        got = [f for f in found_fall if f.kind in INACTIVITY and f.detected_at >= inc]
        used_before = np.flatnonzero(cut[:t_inc] > 0)
        last_use = hours_to_dt(float(used_before[-1]) if len(used_before) else 0.0)
        if pre_alerted(found_fall, inc, last_use):
            PRE_ALERTED["real"] += 1
            hits += 1
            continue
        hits += any(f.detected_at <= inc + timedelta(hours=12) for f in got)
    months = ordinary_days / 30.0
    return {
        "real_false_alerts_per_home_month": false_inactivity / months,
        "real_water_alerts_per_home_month": false_water / months,
        "real_recall_inactivity": hits / max(falls, 1),
    }


def hourly_samples(meter: DeviceInfo, use: np.ndarray, n: int) -> list[MeterSample]:
    register = 1000.0 + np.concatenate([[0.0], np.cumsum(use[:n])])
    out = []
    for i in range(n + 1):
        ts = hours_to_dt(float(i))
        out.append(MeterSample(meter.device_id, meter.household_id, ts, float(register[i]), ts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--homes", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--real-homes", type=int, default=None, help="only the first N real homes (iterating)")
    parser.add_argument("--real", type=Path, default=None, help="path to ../shared/data/karratha")
    args = parser.parse_args()
    syn = synthetic(args.homes, args.seed)
    print(
        f"synthetic: homes={args.homes} routine_regular_median_delay_min={syn['routine_regular_median_delay_min']:.0f} "
        f"flat_regular_median_delay_min={syn['flat_regular_median_delay_min']:.0f} "
        f"suite_regular_median_delay_min={syn['suite_regular_median_delay_min']:.0f} "
        f"routine_first_share_regular={syn['routine_regular_share']:.2f} "
        f"recall_inactivity_within_12h15m={syn['recall_inactivity_12h15']:.3f}"
    )
    line = (
        f"detect: recall_emergency={syn['recall_emergency']:.3f} recall_inactivity={syn['recall_inactivity']:.3f} "
        f"median_delay_inactivity_min={syn['median_delay_inactivity_min']:.0f} "
        f"flat_rule_median_delay_min={syn['flat_rule_median_delay_min']:.0f} "
        f"false_alerts_per_home_month={syn['false_alerts_per_home_month']:.3f}"
    )
    if args.real is not None and args.real.exists():
        real = karratha(args.real, args.seed, args.real_homes)
        print(f"real: water_alerts_per_home_month={real['real_water_alerts_per_home_month']:.3f} (all water kinds)")
        line += (
            f" real_false_alerts_per_home_month={real['real_false_alerts_per_home_month']:.3f}"
            f" real_recall_inactivity={real['real_recall_inactivity']:.3f}"
        )
    elif args.real is not None:
        print(f"real: {args.real} not found; skipped")
    print("false alerts by profile:detector:", dict(sorted(BREAKDOWN.items())))
    print("incidents inside an already-alerted quiet stretch (counted detected):", dict(PRE_ALERTED))
    print(line)


if __name__ == "__main__":
    main()
