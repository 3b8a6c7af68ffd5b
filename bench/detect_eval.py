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

What reaches a person (issue 15): the same runs also go through the check-in, as the deployed system
does (``alerting/checkin_model.py``): every inactivity, routine-missed and continuous-flow alert first
asks the resident (the default policy: two attempts ten minutes apart, so the household's check-in lead,
``HouseholdSettings.checkin_lead_s``, is 20 minutes and the detectors raise that much earlier), with the
issue's fixed resident-response model (fine: an attempt answered within its wait with p 0.8, a further
one 10 minutes later with p 0.5; fallen: never; any sign of life during the check-in answers it), and an
unanswered check-in pages the care plan. Answered and resolved alerts reach the engine as closures
(``Engine.alert_closed``), in time order, as in the live runner.

- ``pages_per_home_month`` / ``real_pages_per_home_month``: inactivity and routine alerts that reached a
  caregiver on normal living (scored month; real: ordinary home-days, as the false alerts);
  ``checkins_per_home_month`` / ``real_checkins_per_home_month``: the check-ins of those kinds (the
  resident's burden; continuous-flow check-ins are printed on the ``chain:`` line).
- ``median_time_to_page_min``: from the fall to the first page of an inactivity-type alert, check-in
  included, over the regular residents' falls (never paged: counted as infinite);
  ``flat_rule_median_time_to_page_min``: the program's flat rule, which pages directly, over the same
  falls. ``recall_paged_12h``: falls paged within 12 h of the fall (synthetic), ``real_recall_paged_12h``
  the real homes as recorded, ``lossy_recall_paged_12h`` the real homes with lost transmissions applied.
  A fall inside a quiet stretch whose alert had already paged and was not resolved yet counts as paged
  (``pre_paged``, no delay figure).
- Meters that lose transmissions (``simulator/loss.py``: 1 in 20, runs of 4-25 h, never back-filled):
  a third of the synthetic homes (three in every nine, so every profile; normal living and fall), and
  the real homes' ``lossy`` replay.

The last line is the issue's summary line; the lines before it break the figures down.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from alerting.checkin_model import CheckinChain
from alerting.checkin_policy import CheckinConfig
from detectors import DetectorSuiteConfig, Engine, HouseholdSettings, Period
from detectors.testing import PROFILES, Resident, hours_to_dt, meter_samples
from schemas.findings import Finding, FindingAction
from schemas.kinds import AlertKind, DeviceType
from schemas.records import DeviceEvent, DeviceInfo, MeterSample, Record
from simulator.loss import loss_runs

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
    silence=replace(SUITE.silence, enabled=False),  # the programs' rule as they run it today
)
CHECKINS = CheckinConfig()
# The household's check-in lead, as the runner sets it (the default policy: 2 attempts x 10 min).
LEAD_S = CHECKINS.lead().total_seconds()
WINDOW = timedelta(hours=12)
CHAIN: Counter[str] = Counter()
REAL_PAGE_DELAYS: list[float] = []


def run(
    cfg: DetectorSuiteConfig,
    devices: list[DeviceInfo],
    settings: HouseholdSettings | None,
    batches: Sequence[Sequence[Record]],
    *,
    chain: CheckinChain | None = None,
    end: datetime | None = None,
) -> list[Finding]:
    """Feed batches (lists of records, in arrival order) and tick between them; with ``chain``, every
    finding also goes through the check-in, whose closures reach the engine in time order. ``end``: run
    the timers (and check-ins) up to then after the last batch."""
    engine = Engine(cfg)
    for d in devices:
        engine.upsert_device(d)
    if settings is not None:
        engine.set_household(devices[0].household_id, settings)
    out: list[Finding] = []

    def handle(found: list[Finding], now: datetime) -> None:
        out.extend(found)
        if chain is not None:
            for f in found:
                chain.finding(f, now)

    def advance(until: datetime) -> None:
        """Timers due before ``until`` and check-ins decided by then, in time order."""
        while True:
            timer = engine.next_timer()
            due = chain.next_due() if chain is not None else None
            timer = timer if timer is not None and timer < until else None
            due = due if due is not None and due <= until else None
            if due is not None and (timer is None or due <= timer):
                for closure in chain.settle(due) if chain is not None else []:
                    engine.alert_closed(closure)
            elif timer is not None:
                handle(engine.tick(timer), timer)
            else:
                return

    for batch in batches:
        now = batch[0].received_at
        advance(now)
        handle(engine.process(batch), now)
    if end is not None:
        advance(end)
    return [f for f in out if f.action is FindingAction.RAISE]


def lossy(samples: list[MeterSample], rng: random.Random, start_h: float, end_h: float) -> list[MeterSample]:
    """The readings a meter that loses transmissions delivers (simulator/loss.py): none inside a run."""
    runs = [(hours_to_dt(a), hours_to_dt(b)) for a, b in loss_runs(rng, start_h, end_h)]
    return [s for s in samples if not any(a <= s.ts < b for a, b in runs)]


def household(hid: str, seed: int | str, fallen_at: datetime | None = None) -> CheckinChain:
    return CheckinChain(hid, random.Random(f"checkin/{seed}"), CHECKINS, fallen_at=fallen_at)


def inactivity_alerts(chain: CheckinChain) -> list[tuple[datetime, str, str, datetime | None]]:
    """(opened, detector, outcome, paged) of the chain's inactivity-type alerts that checked in."""
    return [(a.opened_at, a.detector, a.outcome, a.paged_at) for a in chain.alerts if a.kind in INACTIVITY]


def time_to_page(chain: CheckinChain, inc: datetime) -> float | None:
    """Minutes from the fall to the first page of an inactivity-type alert (inf: none in the run); None
    when the fall came while such an alert had paged and was not resolved yet (pre-paged)."""
    for a in chain.alerts:
        paged_before = a.kind in INACTIVITY and a.paged_at is not None and a.paged_at < inc
        if paged_before and (a.resolved_at is None or a.resolved_at > inc):
            return None
    pages = [a.paged_at for a in chain.alerts if a.kind in INACTIVITY and a.paged_at is not None and a.paged_at >= inc]
    return (min(pages) - inc).total_seconds() / 60 if pages else math.inf


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


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
        "page_regular": [],
        "page_all": [],
        "flat_page_all": [],
        "flat_page_regular": [],
    }
    detected, falls, emergencies, emergencies_hit = 0, 0, 0, 0
    # Within 12 h plus one reading interval: a use just before the fall is only seen at the next reading.
    detected_grid = 0
    paged_12h = 0
    pages = checkins = 0
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
        # A third of the homes (of every profile) have a meter that loses transmissions (its own generator:
        # the draws above stay as they were).
        loses = h // 3 % 3 == 1
        if loses:
            samples = lossy(samples, random.Random(f"loss/{seed}/{h}"), 0.0, end_h + 24)
        silent: tuple[float, float] | None = None
        if h % 3 == 2:  # the meter goes silent for 8 h, then uploads the stored readings late
            s0 = (WARMUP_D + rng.integers(1, SCORED_D - 1)) * 24 + rng.uniform(0, 24)
            silent = (s0, s0 + 8)
            late = hours_to_dt(s0 + 8)
            samples = [replace(s, received_at=late) if hours_to_dt(s0) <= s.ts < late else s for s in samples]
        household_settings = HouseholdSettings(away=periods, checkin_lead_s=LEAD_S)
        found = run(SUITE, [meter], household_settings, chunk(samples))
        scored_from = hours_to_dt(WARMUP_D * 24)
        for f in found:
            if f.detected_at < scored_from:
                continue
            if f.kind is AlertKind.DEVICE_OFFLINE and (silent is not None or loses):
                continue  # the injected fault, correctly reported
            false_alerts += 1
            BREAKDOWN[f"{profile.name}:{f.detector}"] += 1
        # The same life through the check-in: what reaches the resident, and what reaches a person.
        chain = household(hid, f"{seed}/{h}")
        run(SUITE, [meter], household_settings, chunk(samples), chain=chain, end=hours_to_dt(end_h))
        for opened, detector, outcome, _ in inactivity_alerts(chain):
            if opened >= scored_from:
                checkins += 1
                pages += outcome == "paged"
                CHAIN[f"synthetic:{detector}:{outcome}"] += 1
        CHAIN["synthetic:flow checkins"] += sum(
            a.kind is AlertKind.CONTINUOUS_FLOW and a.opened_at >= scored_from for a in chain.alerts
        )
        # A fall: all use stops at a random time of a random scored day, at home: not during the away
        # trip or hospital stay (whose water use was removed above), which stays announced, so the
        # quiet of the trip is not mistaken for the fall's.
        t_inc = (WARMUP_D + rng.integers(0, SCORED_D - 1)) * 24 + rng.uniform(0, 24)
        while any(hours_to_dt(t_inc - 0.5) < p.end and p.start < hours_to_dt(t_inc + 24) for p in periods):
            t_inc = (WARMUP_D + rng.integers(0, SCORED_D - 1)) * 24 + rng.uniform(0, 24)
        fall_uses = [u for u in uses if u[0] < t_inc]
        fall_samples = list(meter_samples(mid, hid, fall_uses, 0, t_inc + 24))
        if loses:
            fall_samples = lossy(fall_samples, random.Random(f"loss/{seed}/{h}/fall"), 0.0, t_inc + 24)
        fall = chunk(fall_samples)
        inc = hours_to_dt(t_inc)
        falls += 1
        last_use = hours_to_dt(fall_uses[-1][0] - 0.25) if fall_uses else hours_to_dt(0)
        for label, cfg in (("suite", SUITE), ("program", PROGRAM)):
            found_fall = run(cfg, [meter], household_settings, fall, end=hours_to_dt(t_inc + 24))
            hits = [f for f in found_fall if f.kind in INACTIVITY and f.detected_at >= inc]
            if label == "suite" and pre_alerted(found_fall, inc, last_use):
                detected += 1
                detected_grid += 1
                PRE_ALERTED["synthetic"] += 1
                continue
            if label == "program" and not pre_alerted(found_fall, inc, last_use):
                # The program's rule pages directly: its time to page is its delay (never: infinite).
                first_delay = (min(f.detected_at for f in hits) - inc).total_seconds() / 60 if hits else math.inf
                delays["flat_page_all"].append(first_delay)
                if profile.name == "regular":
                    delays["flat_page_regular"].append(first_delay)
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
        # The fall through the check-in: the fallen resident answers nothing.
        chain = household(hid, f"{seed}/{h}/fall", fallen_at=inc)
        run(SUITE, [meter], household_settings, fall, chain=chain, end=hours_to_dt(t_inc + 24))
        to_page = time_to_page(chain, inc)
        if to_page is None:
            CHAIN["synthetic:pre_paged"] += 1
            paged_12h += 1
        else:
            paged_12h += to_page <= 12 * 60
            delays["page_all"].append(to_page)
            if profile.name == "regular":
                delays["page_regular"].append(to_page)
            if to_page > 12 * 60:
                CHAIN[f"synthetic:late page ({profile.name}{', lossy' if loses else ''})"] += 1
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
        "pages_per_home_month": pages / months,
        "checkins_per_home_month": checkins / months,
        "median_time_to_page_min": median(delays["page_regular"]),
        "flat_rule_median_time_to_page_min": median(delays["flat_page_regular"]),
        "median_time_to_page_all_min": median(delays["page_all"]),
        "flat_rule_median_time_to_page_all_min": median(delays["flat_page_all"]),
        "recall_paged_12h": paged_12h / falls,
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
    pages = checkins = lossy_pages = lossy_checkins = 0
    paged_12h = lossy_paged_12h = 0
    settings = HouseholdSettings(checkin_lead_s=LEAD_S)
    day_totals = litres[: hours_n // 24 * 24].reshape(-1, 24, litres.shape[1]).sum(axis=1)
    for col, name in enumerate(header[1 : 1 + limit if limit else None]):
        meter = DeviceInfo(f"{name}-m", DeviceType.WATER_METER, name, 3600)
        use = litres[:, col]
        samples = hourly_samples(meter, use, hours_n)
        found = run(SUITE, [meter], settings, [[s] for s in samples])
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
        # The same homes through the check-in, as recorded and with lost transmissions.
        end = hours_to_dt(hours_n)
        loss = random.Random(f"real-loss/{seed}/{col}")
        for label, replay in (("real", samples), ("lossy", lossy(samples, loss, 0.0, hours_n + 24.0))):
            chain = household(name, f"{label}/{seed}/{col}")
            run(SUITE, [meter], settings, [[s] for s in replay], chain=chain, end=end)
            for a in chain.alerts:
                day = int((a.opened_at - hours_to_dt(0)).total_seconds() // 86400)
                if day < WARMUP_D or day in zero_days:
                    continue
                if a.kind in INACTIVITY:
                    CHAIN[f"{label}:{a.detector}:{a.outcome}"] += 1
                    if label == "real":
                        checkins, pages = checkins + 1, pages + (a.outcome == "paged")
                    else:
                        lossy_checkins, lossy_pages = lossy_checkins + 1, lossy_pages + (a.outcome == "paged")
                elif a.kind is AlertKind.CONTINUOUS_FLOW:
                    CHAIN[f"{label}:flow checkins"] += 1
                    CHAIN[f"{label}:flow pages"] += a.outcome == "paged"
        # Injected fall on an ordinary day after the warm-up.
        candidates = [d for d in range(WARMUP_D, day_totals.shape[0] - 1) if d not in zero_days]
        if not candidates:
            continue
        t_inc = int(rng.choice(candidates)) * 24 + int(rng.integers(0, 24))
        cut = use[: t_inc + 24].copy()
        cut[t_inc:] = 0.0
        inc = hours_to_dt(t_inc)
        fall_samples = hourly_samples(meter, cut, t_inc + 24)
        fall = [[s] for s in fall_samples]
        falls += 1
        # Through the check-in (the fallen resident answers nothing), as recorded and with lost transmissions.
        end = hours_to_dt(t_inc + 24)
        lost = lossy(fall_samples, random.Random(f"real-loss/{seed}/{col}/fall"), 0.0, t_inc + 24.0)
        for label, replay in (("real", fall_samples), ("lossy", lost)):
            chain = household(name, f"{label}-fall/{seed}/{col}", fallen_at=inc)
            run(SUITE, [meter], settings, [[s] for s in replay], chain=chain, end=end)
            to_page = time_to_page(chain, inc)
            within = to_page is None or to_page <= 12 * 60
            if label == "real":
                paged_12h += within
                if to_page is not None:
                    REAL_PAGE_DELAYS.append(to_page)
            else:
                lossy_paged_12h += within
            if not within:
                CHAIN[f"{label}:late page"] += 1
            if to_page is None:
                CHAIN[f"{label}:pre_paged"] += 1
        found_fall = run(SUITE, [meter], settings, fall)
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
        "real_pages_per_home_month": pages / months,
        "real_checkins_per_home_month": checkins / months,
        "lossy_pages_per_home_month": lossy_pages / months,
        "lossy_checkins_per_home_month": lossy_checkins / months,
        "real_flow_checkins_per_home_month": CHAIN["real:flow checkins"] / months,
        "real_recall_paged_12h": paged_12h / max(falls, 1),
        "lossy_recall_paged_12h": lossy_paged_12h / max(falls, 1),
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
    real: dict[str, float] = {}
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
    nan = float("nan")
    print(
        f"chain: lead_s={LEAD_S:.0f} median_time_to_page_all_min={syn['median_time_to_page_all_min']:.0f} "
        f"flat_rule_median_time_to_page_all_min={syn['flat_rule_median_time_to_page_all_min']:.0f} "
        f"real_median_time_to_page_min={median(REAL_PAGE_DELAYS):.0f} "
        f"real_flow_checkins_per_home_month={real.get('real_flow_checkins_per_home_month', nan):.3f} "
        f"lossy_pages_per_home_month={real.get('lossy_pages_per_home_month', nan):.3f} "
        f"lossy_checkins_per_home_month={real.get('lossy_checkins_per_home_month', nan):.3f}"
    )
    print("alerts through the check-in (where:detector:outcome):", dict(sorted(CHAIN.items())))
    line += (
        f" pages_per_home_month={syn['pages_per_home_month']:.3f}"
        f" real_pages_per_home_month={real.get('real_pages_per_home_month', nan):.3f}"
        f" checkins_per_home_month={syn['checkins_per_home_month']:.3f}"
        f" real_checkins_per_home_month={real.get('real_checkins_per_home_month', nan):.3f}"
        f" median_time_to_page_min={syn['median_time_to_page_min']:.0f}"
        f" flat_rule_median_time_to_page_min={syn['flat_rule_median_time_to_page_min']:.0f}"
        f" recall_paged_12h={syn['recall_paged_12h']:.3f}"
        f" real_recall_paged_12h={real.get('real_recall_paged_12h', nan):.3f}"
        f" lossy_recall_paged_12h={real.get('lossy_recall_paged_12h', nan):.3f}"
    )
    print(line)


if __name__ == "__main__":
    main()
