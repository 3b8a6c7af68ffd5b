"""The scripted demo incidents: an emergency press, a smoke alarm, and a resident who stops using water.

The demo runs a small fleet whose simulated time starts ``DEMO_BACKFILL`` (13 hours) before the live
moment ``live_start``. Publishing replays that backfill as fast as it can (device timestamps in the
past, as late NB-IoT data would arrive) and then paces messages at ``speed`` simulated seconds per real
second (see ``publisher.Pacer``). The incidents are placed so that, at the given speed, each is visible
within about a minute of real time after ``live_start``:

- a fall in a home with a live meter, beginning 12 h 20 min before ``live_start``: no water since then,
  so "less than 10 L in 12 hours" already holds for the first readings published live (and for the
  last ones of the backfill), expected alert ``inactivity``;
- an ``sos`` press about 10 real seconds in, expected ``sos``;
- a kitchen smoke ``alarm`` about 20 real seconds in, cleared 10 simulated minutes later, expected
  ``smoke``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from simulator.devices import Home, MeterMode
from simulator.fleet import Fleet
from simulator.scenarios import Incident, ScenarioKind
from simulator.timefmt import HOUR_MS, MINUTE_MS, SECOND_MS, to_ms

DEMO_BACKFILL = timedelta(hours=13)


def demo_scenarios(fleet: Fleet, live_start: datetime, *, speed: float = 10.0) -> list[Incident]:
    """The scripted demo incidents for ``fleet`` (which should start ``DEMO_BACKFILL`` before ``live_start``).

    Args:
        fleet: at least three homes; the fall goes to the first home with a live meter.
        live_start: the simulated instant at which real-time-paced publishing begins.
        speed: simulated seconds per real second after ``live_start`` (``1.0`` is real time).
    """
    if len(fleet.homes) < 3:
        raise ValueError("the demo needs at least three homes")
    live = to_ms(live_start)
    if fleet.start_ms > live - 12 * HOUR_MS - 30 * MINUTE_MS:
        raise ValueError("the fleet must start at least 12.5 hours before live_start (use DEMO_BACKFILL)")
    fall_home = _first_live_meter(fleet.homes)
    others = [h.index for h in fleet.homes if h.index != fall_home]
    sos_at = live + int(10 * speed * SECOND_MS)
    fire_at = live + int(20 * speed * SECOND_MS)
    fall_at = live - 12 * HOUR_MS - 20 * MINUTE_MS
    return [
        Incident(ScenarioKind.FALL, fall_home, fall_at, live + 2 * HOUR_MS),
        Incident(ScenarioKind.EMERGENCY_PRESS, others[0], sos_at, sos_at, device="cb"),
        Incident(ScenarioKind.FIRE, others[1], fire_at, fire_at + 10 * MINUTE_MS, device="sa1"),
    ]


# A tap left running this long before the live moment is detected (after an hour of running water, on
# the next 15-minute reading) 1 to 16 minutes before it, so its check-in (in the demo that household
# waits 30 minutes per attempt: carewatch.demo) is still asking when the demo goes live.
TAP_BEFORE_LIVE = timedelta(minutes=76)


def history_scenarios(fleet: Fleet, live_start: datetime) -> list[Incident]:
    """Extra incidents for a demo that seeds its history up to ``live_start`` (``carewatch.demo_history``):
    a tap left running ``TAP_BEFORE_LIVE`` before it, in a home with a live meter that none of the
    scripted incidents uses, running on for 8 simulated hours (its continuous-flow alert is still asking
    the resident when the demo goes live)."""
    scripted = {incident.home for incident in demo_scenarios(fleet, live_start)}
    live = to_ms(live_start)
    for home in fleet.homes:
        if home.index not in scripted and home.meter.meter_mode is MeterMode.LIVE:
            start = live - int(TAP_BEFORE_LIVE.total_seconds() * 1000)
            return [Incident(ScenarioKind.TAP_LEFT_RUNNING, home.index, start, live + 8 * HOUR_MS, rate_l_per_h=360.0)]
    return []


def demo_fleet(homes: int, seed: int, live_start: datetime) -> Fleet:
    """A fleet whose simulated time starts ``DEMO_BACKFILL`` before ``live_start``."""
    return Fleet.generate(homes=homes, seed=seed, start=live_start - DEMO_BACKFILL)


def _first_live_meter(homes: tuple[Home, ...]) -> int:
    for home in homes:
        if home.meter.meter_mode is MeterMode.LIVE:
            return home.index
    return homes[0].index
