"""Water use from fixture events, and the cumulative register a meter shows.

A resident's day (``profiles.DayPlan``) becomes a list of fixture events: toilet flushes, hand and face
washing, kettle fills, cooking and washing up, showers, laundry, mopping. Each event is a start, a
duration and a volume; volumes carry multiplicative noise (log-normal, sigma 0.2) because no two
showers are alike. Events only happen while the resident is at home and awake, except night-time
toilet visits.

The meter never sees events, only its register: cumulative litres sampled at interval instants. While
an event runs its volume is spread evenly over its duration, so a reading taken mid-shower shows part
of the shower. ``usage_at`` does this for a whole day's samples at once with numpy (one
``(samples x events)`` clip), which is what keeps 100,000 homes practical.

Volumes (litres) and why:
- toilet flush: the home's cistern, 4.5/6/9 L (``ResidentProfile.flush_l``); hand wash after it 0.8-2 L;
- morning and evening wash (face, teeth, dentures) 2-4 L; kettle 1-1.7 L;
- cooking (rinsing rice and vegetables) 2-10 L per meal in small draws, washing up 3-8 L;
- shower 6-8 L/min for 4-8 minutes; laundry in a front loader about 45 L in three fills; mopping 5-10 L.
A resident with typical habits lands at 90-150 L/day (see ``docs/simulator.md`` for the band and sources).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from simulator.profiles import DayPlan, ResidentProfile

_MIN = 60
_DAY_S = 86_400


class Fixture(StrEnum):
    TOILET = "toilet"
    HAND_WASH = "hand_wash"
    WASH = "wash"
    KETTLE = "kettle"
    COOKING = "cooking"
    WASHING_UP = "washing_up"
    SHOWER = "shower"
    LAUNDRY = "laundry"
    CLEANING = "cleaning"


@dataclass(frozen=True, slots=True)
class WaterEvent:
    """One use of a fixture; ``start_s`` is seconds after local midnight."""

    start_s: int
    duration_s: int
    litres: float
    fixture: Fixture


class _DayBuilder:
    """Collects events, dropping those when the resident is out, with per-event volume noise."""

    def __init__(self, plan: DayPlan, rng: random.Random) -> None:
        self.plan = plan
        self.rng = rng
        self.events: list[WaterEvent] = []

    def add(self, start: float, duration: float, litres: float, fixture: Fixture, *, anytime: bool = False) -> None:
        start_s = int(start)
        if not 0 <= start_s < _DAY_S:
            return
        if not anytime and not self.plan.home_at(start_s):
            return
        duration_s = max(1, min(int(duration), _DAY_S - 1 - start_s))
        noisy = litres * self.rng.lognormvariate(0.0, 0.2)
        self.events.append(WaterEvent(start_s, duration_s, round(noisy, 2), fixture))

    def toilet(self, at: float, flush_l: float, hand_wash_p: float = 0.85) -> None:
        self.add(at, 40, flush_l, Fixture.TOILET, anytime=True)
        if self.rng.random() < hand_wash_p:
            self.add(at + 45, self.rng.uniform(15, 45), self.rng.uniform(0.8, 2.0), Fixture.HAND_WASH, anytime=True)


def day_events(profile: ResidentProfile, plan: DayPlan, rng: random.Random) -> list[WaterEvent]:
    """All fixture events of one resident-day, in start order (``rng``: the home-day's generator)."""
    if not plan.at_home:
        return []
    day = _DayBuilder(plan, rng)
    wake, bed = plan.wake_s, plan.bed_s
    u = rng.uniform

    # Morning: toilet, wash, kettle for tea.
    day.toilet(wake + u(1, 10) * _MIN, profile.flush_l)
    day.add(wake + u(10, 25) * _MIN, u(120, 240), u(2.0, 4.0), Fixture.WASH)
    day.add(wake + u(20, 40) * _MIN, 30, u(1.0, 1.7), Fixture.KETTLE)

    # Meals: breakfast (only for three-meal cooks), lunch, dinner.
    meal_times = [(wake + u(30, 60) * _MIN)] if profile.meals_cooked >= 3 else []
    meal_times.append(u(10.75, 12.0) * 3600)
    if profile.meals_cooked >= 2:
        meal_times.append(u(16.75, 18.25) * 3600)
    for meal in meal_times:
        for _ in range(rng.randint(1, 3)):
            day.add(meal + u(0, 20) * _MIN, u(20, 90), u(0.8, 2.0), Fixture.COOKING)
        day.add(meal + u(50, 80) * _MIN, u(180, 420), u(3.0, 8.0), Fixture.WASHING_UP)

    # Daytime toilet visits and kettle fills spread over the waking day.
    for _ in range(_poisson(rng, profile.daytime_toilet_mean)):
        day.toilet(u(wake + 45 * _MIN, bed - 30 * _MIN), profile.flush_l)
    for _ in range(_poisson(rng, max(profile.kettle_per_day - 1, 0))):
        day.add(u(wake + 2 * 3600, bed - 3600), 30, u(1.0, 1.7), Fixture.KETTLE)

    # Evening: shower on some days, then the bedtime wash and toilet.
    if rng.random() < profile.showers_per_week / 7:
        day.add(bed - u(60, 150) * _MIN, u(4, 8) * _MIN, u(6, 8) * u(4, 8), Fixture.SHOWER)
    day.add(bed - u(10, 25) * _MIN, u(120, 240), u(2.0, 4.0), Fixture.WASH)
    day.toilet(bed - u(2, 8) * _MIN, profile.flush_l)

    # Chores: laundry in three fills (wash, rinse, rinse); mopping.
    if rng.random() < profile.laundry_per_week / 7:
        load = u(9.0, 11.0) * 3600
        for fill in range(3):
            day.add(load + fill * 20 * _MIN, u(120, 200), u(13, 17), Fixture.LAUNDRY)
    if rng.random() < 0.3:
        day.add(u(wake + 3600, bed - 2 * 3600), u(60, 180), u(5, 10), Fixture.CLEANING)

    # Night-time toilet visits, before waking and after going to bed.
    for _ in range(_poisson(rng, profile.night_toilet_mean)):
        at = u(0, wake - 10 * _MIN) if rng.random() < 0.7 else u(bed + 30 * _MIN, _DAY_S - 60)
        day.toilet(at, profile.flush_l, hand_wash_p=0.5)

    day.events.sort(key=lambda e: e.start_s)
    return day.events


def usage_at(
    sample_s: npt.NDArray[np.float64],
    starts_s: npt.NDArray[np.float64],
    durations_s: npt.NDArray[np.float64],
    litres: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Litres used since local midnight at each sample instant (seconds after midnight).

    Every event's volume is spread evenly over its duration, so partial events count partially.
    """
    if starts_s.size == 0:
        return np.zeros(sample_s.shape, dtype=np.float64)
    fraction = np.clip((sample_s[:, None] - starts_s[None, :]) / durations_s[None, :], 0.0, 1.0)
    result: npt.NDArray[np.float64] = fraction @ litres
    return result


def event_arrays(
    events: list[WaterEvent],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Columns (start, duration, litres) of a day's events for ``usage_at``."""
    starts = np.fromiter((e.start_s for e in events), dtype=np.float64, count=len(events))
    durations = np.fromiter((e.duration_s for e in events), dtype=np.float64, count=len(events))
    litres = np.fromiter((e.litres for e in events), dtype=np.float64, count=len(events))
    return starts, durations, litres


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: small means only, which is all a daily routine needs."""
    if mean <= 0:
        return 0
    limit = pow(2.718281828459045, -mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
