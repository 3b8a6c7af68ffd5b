"""Many meters' uploads applied in bulk at once: :mod:`detectors.meter_batch` across the fleet.

A daily upload from 100,000 NB-IoT meters is 100,000 runs of meter_batch's screen, each ~80 numpy calls
on arrays of 96: the cost is numpy's per-call overhead, not arithmetic. Here the same screen runs on 2-D
arrays, one row per meter, for all meters of one engine call at once, one local day at a time:

- Only whole local days (segments) in which nothing can fire are applied. A meter whose segment might
  raise anything, or that this module does not take (see :func:`_prepare`), stops here, and the engine
  carries on with it from its first unapplied reading through meter_batch (which finds the exact
  reading) and the per-reading path. So this module only needs *whether* a segment is clean.
- Here: which uploads the path takes (:func:`_prepare`), their readings stacked a row per meter (equal
  lengths together: nothing is padded) and cut into local days once per clock, and the days worked in
  order, in chunks of ``CHUNK`` meters. :mod:`detectors.fleet_day` screens and commits one day: the
  same operations as meter_batch, elementwise along rows. ``tests/detectors/test_meter_batch.py`` (one
  meter per engine) and ``tests/detectors/test_meter_fleet.py`` (many meters per call) prove the state
  bit-identical to the per-reading path.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import islice
from operator import attrgetter, lt
from typing import NamedTuple

import numpy as np

from detectors.context import DAY_S, SLOT_S, HouseholdView
from detectors.fleet_day import DayRows, FleetMeter, screen_day
from detectors.meter import MeterLogic
from detectors.meter_batch import uses_program_rule
from schemas.records import Record

_ts = attrgetter("ts")
_timestamp = datetime.timestamp
# Meters screened together: enough that numpy's per-call overhead vanishes, few enough that the ~25
# arrays of a chunk stay in the CPU cache (a day of 15-minute readings: ~0.8 KiB per array and meter).
CHUNK = 1024


def apply_fleet(
    batches: Sequence[tuple[MeterLogic, list[Record], HouseholdView]], busy: set[str]
) -> list[tuple[int, datetime | None]]:
    """For each meter's records: how many, from the first in device-time order, were applied in bulk
    (whole uneventful local days; 0 when none), and the newest receive time of the records when all were
    applied (None otherwise). A list committed out of order is sorted in place. Meters of the ``busy``
    households, and of households where a meter sent anything but readings, are left to the engine's
    device-by-device order."""
    if not batches or uses_program_rule(batches[0][0].cfg):
        return [(0, None)] * len(batches)  # the program rule's step points are kept reading by reading
    seen: _Grids = {}
    prepared = [_prepare(logic, recs, view, seen) for logic, recs, view in batches]
    busy = busy | {
        logic.device.household_id for (logic, _, _), meter in zip(batches, prepared, strict=True) if meter is _MIXED
    }
    meters = [m if isinstance(m, FleetMeter) and m.logic.device.household_id not in busy else None for m in prepared]
    by_length: dict[int, list[FleetMeter]] = {}
    for meter in meters:
        if meter is not None:
            by_length.setdefault(len(meter.t), []).append(meter)
    groups = [_split_days(group) for group in by_length.values()]
    active = [(g, meter) for g, group in enumerate(groups) for meter in group.meters]
    k = 0
    while active:
        buckets: dict[tuple[int, int, int], list[FleetMeter]] = {}
        for g, meter in active:
            if k + 1 < len(meter.bounds):
                buckets.setdefault((g, meter.bounds[k], meter.bounds[k + 1]), []).append(meter)
        active = []
        for (g, a, b), bucket in buckets.items():
            stacked = groups[g]
            for c in range(0, len(bucket), CHUNK):
                chunk = bucket[c : c + CHUNK]
                rows = np.array([meter.row for meter in chunk])
                days = [meter.days[k] for meter in chunk]
                segment = DayRows(
                    chunk, days, stacked.t[rows, a:b], stacked.r[rows, a:b], stacked.slots[rows, a:b].astype(np.int64)
                )
                for meter, clean in zip(chunk, screen_day(segment), strict=True):
                    if clean:
                        meter.applied = b
                        active.append((g, meter))
        k += 1
    return [
        (0, None) if meter is None else (meter.applied, meter.received if meter.applied == len(meter.t) else None)
        for meter in meters
    ]


def _prepare(logic: MeterLogic, records: list[Record], view: HouseholdView, seen: _Grids) -> FleetMeter | object | None:
    """The meter's readings as floats; _MIXED for records other than readings; None where meter_batch's
    own checks are needed: its first reading, a program rule's latch, an away period or a DST change in the
    span."""
    # Comprehensions, not map(attrgetter): on slotted records they cost half as much.
    try:
        r = [rec.register_l for rec in records]  # type: ignore[union-attr]
    except AttributeError:  # a status report or an event
        return _MIXED
    if logic.last_t is None or (logic.fired and logic.bulk_blocked()):
        return None
    t = _seconds(records, seen)
    if t is None:
        # Committed out of order (or a reading twice): in device-time order, as the engine would sort
        # them; duplicates stay out of this path (the per-reading path ignores the second).
        records.sort(key=_ts)
        t = _seconds(records, seen)
        r = [rec.register_l for rec in records]  # type: ignore[union-attr]
    if t is None or not view.away_clear(t[0], t[-1]):
        return None
    offset = view.steady_offset(t[0] - 1e-3, t[-1])
    if offset is None:
        return None
    # Read now, while the records are in the CPU cache (the engine needs it for the device's health).
    return FleetMeter(logic, view, t, r, offset, max([rec.received_at for rec in records]))


_MIXED = object()
# Device times already converted in this call, by (first, last, count): (datetimes, epoch seconds, in order).
_Grids = dict[tuple[datetime, datetime, int], tuple[list[datetime], list[float], bool]]


def _seconds(records: list[Record], seen: _Grids) -> list[float] | None:
    """The readings' device times as epoch seconds (None unless strictly increasing).

    A fleet's meters read on the same clock (every 15 minutes on the quarter hour), so most uploads of
    a call carry the same device times. Converting a datetime costs ~0.2 us and comparing two ~0.07 us,
    so an upload whose times equal one already converted reuses its seconds (equal instants: equal
    timestamps, exactly)."""
    times = [rec.ts for rec in records]
    key = (times[0], times[-1], len(times))
    known = seen.get(key)
    if known is not None and times == known[0]:
        return known[1] if known[2] else None
    t = list(map(_timestamp, times))
    ordered = all(map(lt, t, islice(t, 1, None)))
    if known is None:
        seen[key] = (times, t, ordered)
    return t if ordered else None


class _Group(NamedTuple):
    """Uploads of equal length stacked, a row per meter."""

    t: np.ndarray  # device times, epoch seconds
    r: np.ndarray  # registers, litres
    slots: np.ndarray  # local 30-minute slot of each interval's end (int8)
    meters: list[FleetMeter]  # the meters whose readings follow their last applied one, with their segments


def _split_days(group: list[FleetMeter]) -> _Group:
    """Stack readings of equal count; keep meters whose readings start after the last applied one,
    with their local-day segments (bounds and day numbers)."""
    # A clock: one list of seconds (meters reading on the same quarter hours share one, see _seconds)
    # in one UTC offset. Local days and slots are worked out once per clock, not per meter.
    clocks: dict[tuple[int, float], int] = {}
    first: list[FleetMeter] = []
    which: list[int] = []
    for meter in group:
        c = clocks.setdefault((id(meter.t), meter.offset), len(first))
        if c == len(first):
            first.append(meter)
        which.append(c)
    t_c = np.array([meter.t for meter in first], dtype=np.float64)
    offset_c = np.array([meter.offset for meter in first], dtype=np.float64)[:, None]
    days_c = ((t_c + offset_c) // DAY_S).astype(np.int64)
    slots_c = (((t_c - 1e-3 + offset_c) % DAY_S) // SLOT_S).astype(np.int8)
    n = t_c.shape[1]
    segments: list[tuple[list[int], list[int]]] = []
    for c in range(len(first)):
        inner = (np.flatnonzero(days_c[c, 1:] != days_c[c, :-1]) + 1).tolist()
        segments.append(([0, *inner, n], [int(days_c[c, 0]), *(int(days_c[c, i]) for i in inner)]))
    index = np.array(which)
    t = t_c[index]
    r = np.array([meter.r for meter in group], dtype=np.float64)
    # Within a clock the seconds strictly increase (_seconds); the first must follow the meter's last.
    follows = (t[:, 0] > np.array([meter.logic.last_t for meter in group])).tolist()
    kept: list[FleetMeter] = []
    for row, (meter, good, c) in enumerate(zip(group, follows, which, strict=True)):
        if good:
            meter.row = row
            meter.bounds, meter.days = segments[c]
            kept.append(meter)
    return _Group(t, r, slots_c[index], kept)
