"""Synthetic, labelled residents for detector tests and the evaluation benchmark (seeded, pure).

Deliberately small and self-contained (the full device simulator lives in ``simulator/``): a resident
is a few routine parameters, a day is a list of water uses (time, litres) drawn from them, and a meter
turns uses into 15-minute cumulative register readings. Incidents are injected by editing the uses:
a fall stops all use from a moment on, a tap left running adds a steady flow.

Profiles
    ``regular``: wakes within ±15 min, meals at fixed times, rarely out.
    ``weekend``: regular on weekdays, wakes two hours later at weekends.
    ``irregular``: wakes anywhere in a 3-hour band, often out for half a day, skips meals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from schemas.records import MeterSample

# Monday 2024-01-01 00:00 Asia/Shanghai.
EPOCH0 = datetime(2023, 12, 31, 16, 0, tzinfo=UTC)
TZ_OFFSET_H = 8


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    wake_h: float
    wake_sd_h: float
    weekend_shift_h: float
    bed_h: float
    meal_sd_h: float
    out_prob: float  # chance per day of a half day out (no water)
    skip_meal_prob: float
    day_uses_per_h: float
    night_toilet_prob: float


PROFILES = {
    "regular": Profile("regular", 6.75, 0.25, 0.0, 21.5, 0.3, 0.03, 0.05, 0.5, 0.5),
    "weekend": Profile("weekend", 6.75, 0.25, 2.0, 22.0, 0.3, 0.05, 0.05, 0.5, 0.4),
    "irregular": Profile("irregular", 8.0, 1.2, 0.0, 23.0, 1.2, 0.2, 0.3, 0.3, 0.6),
}


def day_uses(profile: Profile, day: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Water uses of one local day: (hours since local midnight of day 0, litres)."""
    weekend = day % 7 >= 5
    base = day * 24.0
    wake = profile.wake_h + (profile.weekend_shift_h if weekend else 0.0) + rng.normal(0, profile.wake_sd_h)
    bed = profile.bed_h + rng.normal(0, 0.5)
    uses: list[tuple[float, float]] = []
    # Morning: toilet, wash, kettle within 40 minutes of waking.
    for offset, litres in ((0.0, 6.0), (0.15, 4.0), (0.4, 1.5)):
        uses.append((wake + offset + rng.uniform(0, 0.1), litres))
    out = (rng.uniform(9, 13), rng.uniform(3, 6)) if rng.random() < profile.out_prob else None
    for meal_h, litres in ((12.0, 5.0), (18.5, 12.0)):
        if rng.random() >= profile.skip_meal_prob:
            uses.append((meal_h + rng.normal(0, profile.meal_sd_h), litres))
    n = rng.poisson(profile.day_uses_per_h * max(bed - wake, 0))
    uses.extend((rng.uniform(wake, bed), float(rng.choice([6.0, 2.0, 1.5]))) for _ in range(n))
    uses.append((bed - 0.2, 8.0))  # evening wash
    if rng.random() < profile.night_toilet_prob:
        uses.append((rng.uniform(bed + 1, 24 + wake - 1), 6.0))
    if out is not None:
        start, length = out
        uses = [(h, litres) for h, litres in uses if not start <= h < start + length]
    return sorted((base + h, litres) for h, litres in uses)


@dataclass(frozen=True, slots=True)
class Resident:
    household_id: str
    device_id: str
    profile: Profile
    seed: int

    def uses(self, days: int) -> list[tuple[float, float]]:
        rng = np.random.default_rng(self.seed)
        out: list[tuple[float, float]] = []
        for day in range(days):
            out.extend(day_uses(self.profile, day, rng))
        return out


def hours_to_dt(hours: float) -> datetime:
    return EPOCH0 + timedelta(hours=hours)


def meter_samples(
    device_id: str,
    household_id: str,
    uses: list[tuple[float, float]],
    start_h: float,
    end_h: float,
    *,
    step_min: int = 15,
    register: float = 1000.0,
    flow: tuple[float, float, float] | None = None,
) -> Iterator[MeterSample]:
    """Readings every ``step_min`` in [start_h, end_h); ``flow`` = (from_h, to_h, litres_per_min)."""
    times = np.arange(start_h, end_h, step_min / 60.0)
    use_t = np.array([u[0] for u in uses]) if uses else np.zeros(0)
    use_l = np.cumsum([u[1] for u in uses]) if uses else np.zeros(0)
    before = np.searchsorted(use_t, start_h, side="right")
    base = use_l[before - 1] if before > 0 else 0.0
    for h in times:
        idx = np.searchsorted(use_t, h, side="right")
        total = (use_l[idx - 1] if idx > 0 else 0.0) - base
        if flow is not None and h > flow[0]:
            total += (min(h, flow[1]) - flow[0]) * 60 * flow[2]
        ts = hours_to_dt(float(h))
        yield MeterSample(device_id, household_id, ts, round(register + total, 1), ts)
