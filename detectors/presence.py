"""Signs of life for the meter's inactivity rules: how evidence names them, and the check-in lead.

A press or a smoke alarm pressed in the household is a sign of life the engine passes to the household's
meters (``MeterLogic.sign_of_life``, kept as ``MeterLogic.alive``: time, signal, device). When it began a
quiet stretch, the backstop's, the routine's and the silence rule's evidence name it (:func:`after_sign`,
:func:`sign_details`). The check-in lead moves the backstop earlier on the meter's own reading grid
(:func:`backstop_window_s`), written once for the per-reading, bulk and fleet paths.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from detectors.context import HouseholdView, iso, to_dt
from detectors.events import presence
from schemas import evidence as ev
from schemas.findings import Finding, PresenceSignal
from schemas.kinds import AlertKind
from schemas.records import DeviceInfo

# Reading intervals longer than this are gaps, not the meter's grid (meters read every 15 or 60 minutes).
GRID_MAX_S = 3600.0
Alive = tuple[float, str, str]


def backstop_window_s(window_s: Any, lead_s: Any, dt: Any) -> Any:
    """The quiet (from the start of the last use's interval) at which the backstop raises, at a reading
    ``dt`` after the one before: its window less the check-in lead, the lead rounded up to whole reading
    intervals. A reading can only come on the meter's grid, so raising at the last reading before the
    deadline (not the first after it) keeps the page, check-in included, within the window of the fall
    on any grid; without a lead it is the window exactly. Floats on the per-reading path; arrays (a
    column per meter for the window and lead) on the bulk paths, the same operations."""
    if isinstance(dt, float):
        if lead_s <= 0.0:
            return window_s
        step = min(dt, GRID_MAX_S)
        return window_s - math.ceil(lead_s / step) * step
    steps = np.minimum(dt, GRID_MAX_S)
    return window_s - np.ceil(lead_s / steps) * steps


def after_sign(alive: Alive | None, start: float) -> ev.AfterSign | None:
    """How the evidence names a quiet stretch's start when a sign of life from another device began it
    (None: water, or the register series, began it)."""
    if alive is None or start != alive[0]:
        return None
    return ev.AfterSign(signal=ev.SignKind.SMOKE if alive[1] == PresenceSignal.SMOKE.value else ev.SignKind.PRESS)


def sign_details(alive: Alive | None, start: float) -> dict[str, Any]:
    if alive is None or start != alive[0]:
        return {}
    return {"sign_of_life": {"signal": alive[1], "device_id": alive[2], "at": iso(start)}}


def water_presence(device: DeviceInfo, t: float, now: float, litres: float, view: HouseholdView) -> Finding:
    """Water used again after a raised quiet stretch: news that answers a check-in in progress."""
    text = view.evidence(now, ev.WaterAgain(at=to_dt(t), litres=litres))
    return presence(device, AlertKind.INACTIVITY, PresenceSignal.WATER, t, now, text)
