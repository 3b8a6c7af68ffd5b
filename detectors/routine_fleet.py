"""The routine's per-day limits (:func:`detectors.routine.quiet_limits`) for many meters at once.

Every meter's limits are recomputed when its day closes, so a fleet's midnight is one burst of ~100,000
calls of ~40 small numpy operations each. Here the meters are stacked instead: meters with the same
number of closed days share (slot, meter, history row) arrays, and each numpy operation runs once per
chunk of them. The result is byte for byte what :func:`quiet_limits` returns, with the same ``n`` and
the same None cases (the test compares them on simulated and hand-made ledgers).

How it stays identical. Quiet durations are whole slots (or never), so they are sorted as small integer
keys and turned into the same float seconds afterwards; the rows a meter does not use sort after its
own, so every order statistic is an index per meter into its sorted rows. From there the arithmetic is
the scalar code's, operation for operation, including numpy's 'linear' quantile for ``spread_quantile
< 1``. Configurations outside the routine's range (negative ``allowed_exceptions`` or quantile,
``min_days_per_type < 1``), where the scalar code's odd indexing or errors would have to be copied too,
go through it item by item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.config import DetectorSuiteConfig, RoutineConfig
from detectors.context import SLOT_S, SLOTS_PER_DAY, HouseholdView
from detectors.daily import MASK_BYTES, DayLedger
from detectors.routine import _FLOAT_MIN, quiet_limits

# Meters per stacked chunk: enough that numpy's per-call overhead vanishes, few enough that a chunk's
# arrays (~10 KiB per meter) stay close to the cache and 100,000 meters never need 1 GB at once.
CHUNK = 256
FEW = 3
# Sort keys, int16, one lane per slot and meter. Low byte: 48 - a history row's last use up to the slot,
# numbered from its second day's midnight (-48..-1 fall on the first day), so a smaller key is a shorter
# quiet: 1..96, or _NEVER. High byte: which rows come first in the lane, the meter's same-type rows
# (0), its other rows (1), then all its valid rows (2; pooled: one sort of a lane twice as long costs
# ~60% of two sorts), the others (3), and columns that are no row (_JUNK) padding the lane to a power
# of two (numpy's SIMD sorts are ~15% faster there). The work before the keys is int8, half of int16's.
_NONE = 100
_NEVER = SLOTS_PER_DAY + _NONE
_JUNK = 127
_SLOTS = np.arange(SLOTS_PER_DAY, dtype=np.uint8).reshape(MASK_BYTES, 8, 1, 1)
_BIT = np.arange(8, dtype=np.uint8)[:, None, None]
_SHIFT = (np.arange(SLOTS_PER_DAY, dtype=np.int16) - (SLOTS_PER_DAY - 1))[:, None]
# Seconds by whole slots of quiet (key + slot - 47), as the scalar (48 + k - last + 1) * 1800.0; inf
# beyond two days: never used (101 and up).
_SECONDS = np.array([c * float(SLOT_S) if c <= 2 * SLOTS_PER_DAY else np.inf for c in range(_NEVER + 1)])
_PACKED = 2 * 2 * SLOTS_PER_DAY  # bytes: two rows of uint16 per slot

Limits = tuple[bytes, int] | None


def quiet_limits_many(items: Sequence[tuple[DayLedger, int, HouseholdView]], cfg: DetectorSuiteConfig) -> list[Limits]:
    """:func:`detectors.routine.quiet_limits` ``(ledger, day, view, cfg)`` for every item, in order."""
    rc = cfg.routine
    # A chunk's set-up (~150 us) pays from three meters on: fewer go one by one.
    few = len(items) < FEW
    if few or rc.allowed_exceptions < 0 or rc.min_days_per_type < 1 or not rc.spread_quantile >= 0.0:
        return [quiet_limits(ledger, day, view, cfg) for ledger, day, view in items]
    out: list[Limits] = [None] * len(items)
    groups: dict[int, list[int]] = {}
    for i, (ledger, _, _) in enumerate(items):
        if ledger.newest is not None and ledger.days >= 2:  # else matrix() has fewer than two days: None
            groups.setdefault(ledger.days, []).append(i)
    for days, members in groups.items():
        # The chunks' two big arrays (int8 and int16 per slot, meter and column), reused: fresh ones
        # can come from the OS page by page every time (glibc maps large blocks and may return them),
        # which in some processes costs half as much again as the work.
        work = np.empty(3 * SLOTS_PER_DAY * min(CHUNK, len(members)) * _width(days, rc), np.int8)
        for start in range(0, len(members), CHUNK):
            _chunk(items, members[start : start + CHUNK], days, rc, out, work)
    return out


def _width(days: int, rc: RoutineConfig) -> int:
    """Columns per lane: a column per day for each variant, padded to a power of two."""
    return 1 << ((2 if rc.pool_day_types else 1) * days - 1).bit_length()


def _chunk(
    items: Sequence[tuple[DayLedger, int, HouseholdView]],
    members: list[int],
    days: int,
    rc: RoutineConfig,
    out: list[Limits],
    work: np.ndarray,
) -> None:
    """Fill ``out`` at ``members``, items whose ledgers all hold ``days`` closed days."""
    chunk = [items[i] for i in members]
    # Validity and day types first: meters with too few comparable days are dropped before the real work.
    mask, size = (1 << days) - 1, (days + 7) // 8
    raw = b"".join((ledger.valid & mask).to_bytes(size, "little") for ledger, _, _ in chunk)
    flags = np.frombuffer(raw, np.uint8).reshape(len(chunk), size)
    valid = np.unpackbits(flags, axis=1, count=days, bitorder="little").view(bool)
    both = valid[:, :-1] & valid[:, 1:]
    # Day type of each pair's second day (the day the slots fall on), against the day asked about; by
    # the weekday of the first such day (an int64 modulo over every pair costs more than the rest).
    weekday = (np.array([ledger.newest for ledger, _, _ in chunk], np.int64) - days + 2 + 3) % 7
    weekend = (np.arange(7)[:, None] + np.arange(days - 1)) % 7 >= 5
    wanted = np.array([view.is_weekend(day) for _, day, view in chunk])[:, None]
    comparable = both & (weekend[weekday] == wanted)
    n = np.count_nonzero(comparable, axis=1)
    keep = n >= rc.min_days_per_type
    if not keep.all():
        kept = np.flatnonzero(keep).tolist()
        chunk, members = [chunk[j] for j in kept], [members[j] for j in kept]
        both, comparable, n = both[keep], comparable[keep], n[keep]
        if not members:
            return
    halves = [comparable, both] if rc.pool_day_types else [comparable]
    # Per half, one column per day: the column of a pair's second day is its row, the first is no row.
    order = np.full((len(chunk), _width(days, rc)), _JUNK, np.uint8)
    for h, rows in enumerate(halves):
        order[:, h * days + 1 : (h + 1) * days] = np.where(rows, 2 * h, 2 * h + 1)
    lanes = _lanes(b"".join(ledger.bits for ledger, _, _ in chunk), days, len(halves), order, work)
    lanes.sort(axis=2)
    # Both variants in one pass: the same-type rows of every meter, then (pooled) all its valid rows.
    meters = np.arange(len(chunk))
    if rc.pool_day_types:
        cut = len(chunk)
        columns = (
            np.concatenate([meters, meters]),
            np.repeat([0, days - 1], cut),
            np.concatenate([n, np.count_nonzero(both, axis=1)]),
        )
        usual, peak = _peaks(lanes, *columns, rc)
        # Rare quiet stretches are better known from all days; the same-type limit decides where longer.
        # (The larger of two limits is the limit of the larger peaks: maxima commute, half the work.)
        usual, peak = np.maximum(usual[:, cut:], usual[:, :cut]), np.maximum(peak[:, cut:], peak[:, :cut])
    else:
        usual, peak = _peaks(lanes, meters, np.zeros_like(meters), n, rc)
    # Routines drift by an hour from day to day: the limit is the largest peak within the tolerance.
    limit = peak.copy()
    for k in range(1, max(rc.tolerance_min // 30, 0) + 1):
        np.maximum(limit[k:], peak[:-k], out=limit[k:])
        np.maximum(limit[:-k], peak[k:], out=limit[:-k])
    packed = np.minimum(np.ceil(np.stack([usual.T, limit.T], axis=1) / 60.0), 65535.0).astype("<u2").tobytes()
    for j, (i, count) in enumerate(zip(members, n.tolist(), strict=True)):
        out[i] = (packed[j * _PACKED : (j + 1) * _PACKED], count)


def _lanes(bits: bytes, days: int, halves: int, order: np.ndarray, work: np.ndarray) -> np.ndarray:
    """Sort keys, int16 (slot, meter, column): the ledgers' days once per half, high bytes ``order``;
    in ``work``."""
    meters, width = order.shape
    size = SLOTS_PER_DAY * meters * width
    # Slots first, bytes unpacked by shifts (np.unpackbits along a first axis is ~50x slower): every
    # operation below then runs over whole contiguous (meter, column) planes.
    raw = np.zeros((MASK_BYTES, 1, meters, width), np.uint8)
    day_bytes = np.frombuffer(bits, np.uint8).reshape(meters, days, MASK_BYTES).transpose(2, 0, 1)
    for h in range(halves):
        raw[:, 0, :, h * days : (h + 1) * days] = day_bytes
    # Last use up to each slot of each day, -_NONE before the first (uint8 wraps to int8's -_NONE).
    used = work[:size].view(np.uint8).reshape(MASK_BYTES, 8, meters, width)
    np.right_shift(raw, _BIT, out=used)
    used &= np.uint8(1)
    used *= _SLOTS + np.uint8(_NONE)
    used -= np.uint8(_NONE)
    last = used.reshape(SLOTS_PER_DAY, meters, width).view(np.int8)
    for k in range(1, SLOTS_PER_DAY):  # np.maximum.accumulate along this axis is several times slower
        np.maximum(last[k], last[k - 1], out=last[k])
    # What the scalar running maximum over the pair's 96 slots finds: the second day's last use, else
    # the first day's (its last slot in the column before, -48..-1; none is -128, below -_NONE).
    before = np.empty((meters, width), np.int8)
    np.maximum(last[-1, :, :-1], np.int8(SLOTS_PER_DAY - 128), out=before[:, 1:])
    before[:, 0] = SLOTS_PER_DAY - 128
    before -= np.int8(SLOTS_PER_DAY)
    np.maximum(last, before, out=last)
    lanes = work[size : 3 * size].view(np.int16).reshape(SLOTS_PER_DAY, meters, width)
    np.subtract((order.astype(np.int16) << 8) + np.int16(SLOTS_PER_DAY), last, out=lanes)
    return lanes


def _peaks(
    lanes: np.ndarray, meters: np.ndarray, first: np.ndarray, n: np.ndarray, rc: RoutineConfig
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`detectors.routine._limits` up to the tolerance: (usual, usual + margin) by (slot, column),
    for each column's meter's ``n`` durations sorted from ``first`` in its lanes."""

    # Every order statistic needed, gathered at once by flat indexes in memory order (lanes[:, meters,
    # first + rank] reads each column's 48 slots a plane apart, several times slower): the usual longest
    # quiet, the two middle rows (the same one for odd n), and the quantile's neighbours.
    ranks = [n - 1 - np.minimum(rc.allowed_exceptions, n - 1), (n - 1) // 2, n // 2]
    if rc.spread_quantile < 1.0:
        # numpy's 'linear' quantile as np.quantile computes it (numpy/lib/_function_base_impl.py,
        # _quantile, _get_indexes, _lerp), including its quirk for one row: both neighbours are the last
        # row and the weight is computed against index -1.
        virtual = (n - 1) * rc.spread_quantile
        top = virtual >= n - 1
        below = np.floor(virtual).astype(np.intp)
        gamma = virtual - np.where(top, -1, below)
        ranks += [np.where(top, n - 1, below), np.where(top, n - 1, below + 1)]
    start = (np.arange(SLOTS_PER_DAY) * lanes[0].size)[:, None] + meters * lanes.shape[2] + first
    keys = lanes.take(start + np.stack(ranks)[:, None, :]) & np.int16(0xFF)
    seconds = _SECONDS.take(keys + _SHIFT)  # by (rank, slot, column)
    usual, upper = seconds[0], seconds[0]
    if rc.spread_quantile < 1.0:
        low, high = seconds[3], seconds[4]
        with np.errstate(invalid="ignore"):  # inf - inf: nan, as in np.quantile (the spread becomes 0)
            diff = high - low
            upper = low + diff * gamma
            np.subtract(high, diff * (1 - gamma), out=upper, where=np.broadcast_to(gamma >= 0.5, upper.shape))
    # Scalar: the middle row if n is odd, else the mean of the two; (x + x) / 2.0 is exactly x.
    median = (seconds[1] + seconds[2]) / 2.0
    with np.errstate(invalid="ignore"):
        spread = upper - median
    spread[~(spread < np.inf)] = 0.0
    spread[spread == -np.inf] = _FLOAT_MIN
    margin = np.maximum(rc.min_margin_min * 60.0, rc.margin_factor * spread)
    return usual, usual + margin
