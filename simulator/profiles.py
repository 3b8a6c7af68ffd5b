"""Resident profiles and daily routines: who lives in each home and what their day looks like.

Pure and seeded. A profile is drawn once per home from ``Random(f"{seed}/profile/{home}")``; a day is
planned from the home-day's generator (``seeds.rng(seed, DAY, home, day)``, shared with the water and
device schedules of that day), so any home-day can be regenerated on its own and the fleet's output
never depends on how many homes were generated before it.

Residents are older people living alone in Shanghai. Their routines differ in the ways that matter to
an inactivity detector: when they get up and go to bed, how regular they are, whether weekends differ,
how often they get up at night, and how often they are out (a morning at the market, a weekend with
family, a hospital stay). Water use itself is built from these plans in ``simulator.water``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from simulator import seeds
from simulator.timefmt import weekday

_MIN = 60
_HOUR = 3600


class Routine(StrEnum):
    EARLY_RISER = "early_riser"
    LATE_RISER = "late_riser"
    IRREGULAR = "irregular"
    WEEKEND_DIFFERENT = "weekend_different"


@dataclass(frozen=True, slots=True)
class ResidentProfile:
    """A resident's habits. Times are seconds after local midnight."""

    routine: Routine
    wake_s: int
    bed_s: int
    # Day-to-day standard deviation of wake and bed times.
    jitter_s: int
    # Added to wake/bed on Saturdays and Sundays (only ``weekend_different`` residents).
    weekend_shift_s: int
    night_toilet_mean: float
    daytime_toilet_mean: float
    showers_per_week: float
    laundry_per_week: float
    meals_cooked: int
    kettle_per_day: float
    # Litres per flush: 9 L for older cisterns (Shanghai's standard since the 2000s), 6 L for newer.
    flush_l: float
    # Chance of a half day out (market, park, clinic) on a given day.
    outing_p: float
    # Chance that a given weekend is spent with family, away from home.
    away_weekend_p: float
    # Chance per day that a hospital stay starts.
    hospital_p_per_day: float


@dataclass(frozen=True, slots=True)
class DayPlan:
    """One local day of a resident: when they are up, and when they are not at home."""

    day: int
    wake_s: int
    bed_s: int
    at_home: bool
    out_from_s: int = 0
    out_to_s: int = 0

    def home_at(self, second: int) -> bool:
        if not self.at_home:
            return False
        return not self.out_from_s <= second < self.out_to_s


def make_profile(seed: int, home: int) -> ResidentProfile:
    """Draw the resident profile of home number ``home``."""
    rng = random.Random(f"{seed}/profile/{home}")
    routine = rng.choices(list(Routine), weights=[40, 25, 15, 20])[0]
    if routine is Routine.EARLY_RISER:
        wake, bed, jitter = rng.gauss(5.75, 0.4), rng.gauss(21.0, 0.5), rng.uniform(10, 25)
    elif routine is Routine.LATE_RISER:
        wake, bed, jitter = rng.gauss(8.0, 0.5), rng.gauss(23.0, 0.4), rng.uniform(15, 30)
    elif routine is Routine.IRREGULAR:
        wake, bed, jitter = rng.gauss(7.0, 0.7), rng.gauss(22.0, 0.7), rng.uniform(50, 90)
    else:
        wake, bed, jitter = rng.gauss(6.5, 0.5), rng.gauss(21.75, 0.5), rng.uniform(15, 30)
    wake_s = int(min(max(wake, 4.5), 10.0) * _HOUR)
    bed_s = int(min(max(bed, 19.5), 23.5) * _HOUR)
    return ResidentProfile(
        routine=routine,
        wake_s=wake_s,
        bed_s=bed_s,
        jitter_s=int(jitter * _MIN),
        weekend_shift_s=int(rng.uniform(45, 120) * _MIN) if routine is Routine.WEEKEND_DIFFERENT else 0,
        # Nocturia is common in old age: most residents get up once or twice a night.
        night_toilet_mean=rng.choice([0.3, 0.8, 1.2, 1.5, 2.0, 2.5]),
        daytime_toilet_mean=rng.uniform(3.0, 5.0),
        showers_per_week=rng.uniform(2.0, 5.0),
        laundry_per_week=rng.uniform(1.0, 2.5),
        meals_cooked=rng.choices([1, 2, 3], weights=[20, 50, 30])[0],
        kettle_per_day=rng.uniform(1.5, 4.0),
        flush_l=rng.choice([6.0, 6.0, 6.0, 9.0, 9.0, 4.5]),
        outing_p=rng.uniform(0.2, 0.6),
        away_weekend_p=rng.choice([0.0, 0.0, 0.0, 0.1, 0.25]),
        hospital_p_per_day=rng.choice([0.0, 0.0, 0.0005, 0.001]),
    )


def plan_day(profile: ResidentProfile, seed: int, home: int, day: int, rng: random.Random) -> DayPlan:
    """The resident's plan for one local day (no water yet; see ``simulator.water``)."""
    if _away_weekend(profile, seed, home, day) or _in_hospital(profile, seed, home, day):
        return DayPlan(day=day, wake_s=profile.wake_s, bed_s=profile.bed_s, at_home=False)
    shift = profile.weekend_shift_s if weekday(day) >= 5 else 0
    wake = int(rng.gauss(profile.wake_s + shift, profile.jitter_s))
    bed = int(rng.gauss(profile.bed_s + shift // 2, profile.jitter_s))
    # Keep the day inside the calendar day so each day's water is generated exactly once.
    wake = min(max(wake, 4 * _HOUR), 11 * _HOUR)
    bed = min(max(bed, wake + 10 * _HOUR), 23 * _HOUR + 50 * _MIN)
    out_from = out_to = 0
    if rng.random() < profile.outing_p:
        out_from = int(rng.uniform(wake + _HOUR, bed - 4 * _HOUR))
        out_to = out_from + int(rng.uniform(1.5, 4.0) * _HOUR)
    return DayPlan(day=day, wake_s=wake, bed_s=bed, at_home=True, out_from_s=out_from, out_to_s=out_to)


def _away_weekend(profile: ResidentProfile, seed: int, home: int, day: int) -> bool:
    """Away from Saturday morning to Sunday night, decided once per weekend."""
    if profile.away_weekend_p <= 0 or weekday(day) < 5:
        return False
    saturday = day - (weekday(day) - 5)
    return seeds.unit(seed, seeds.WEEKEND, home, saturday) < profile.away_weekend_p


def _in_hospital(profile: ResidentProfile, seed: int, home: int, day: int) -> bool:
    """Stays of 3-10 days; a stay starting on any of the last 10 days may cover today."""
    if profile.hospital_p_per_day <= 0:
        return False
    for start in range(day - 9, day + 1):
        if seeds.unit(seed, seeds.HOSPITAL, home, start) < profile.hospital_p_per_day:
            length = 3 + int(seeds.unit(seed, seeds.HOSPITAL, home, start, 1) * 8)
            if day < start + length:
                return True
    return False


def away_reason(profile: ResidentProfile, seed: int, home: int, day: int) -> str | None:
    """Why the resident is not at home on ``day`` (for the ground truth), or None."""
    if _in_hospital(profile, seed, home, day):
        return "hospital_stay"
    if _away_weekend(profile, seed, home, day):
        return "away_weekend"
    return None
