"""Incidents injected into the fleet, and the ground truth that scores carewatch against them.

A scenario is requested by name, optionally with a home, a time and a duration, on the command line as
``KIND[:key=value,...]``:

    fall:home=3,at=6h,for=14h           home index 3, six hours after the start, for 14 hours
    tap_left_running:at=2026-01-05T07:00:00+08:00,rate=360
    device_offline:home=sim-000012,device=cb
    away_trip:announced=yes             announced through the API by the tester (expects no alert)
    all                                 one of each kind, at seeded homes and times
    demo                                the scripted demo set (see ``simulator.demo``)

Keys: ``home`` (index or household id), ``at`` (RFC 3339 with offset, or an offset from the start such
as ``90m``), ``for`` (duration), ``device`` (``wm``, ``sa1``, ``sa2``, ``cb``), ``rate`` (litres per
hour, for flows), ``announced`` (``yes``/``no``). Missing values are drawn from
``Random(f"{seed}/scenario/{n}")`` so the same command line always injects the same incidents.

Every incident becomes a ``TruthRecord`` with the alert carewatch is expected to raise (an
``AlertKind``) or ``None`` when the right answer is silence (a meter swap must not look like a leak or
a fall). The simulator also records "routine" truths it produces on its own (cooking false alarms,
service requests, accidental presses, days away) and the faults it injected, so that every alert and
every reject in a run can be accounted for.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from schemas.kinds import AlertKind
from simulator.timefmt import DAY_MS, HOUR_MS, MINUTE_MS, iso_utc, parse_duration, parse_time


class ScenarioKind(StrEnum):
    FALL = "fall"
    TAP_LEFT_RUNNING = "tap_left_running"
    LEAK = "leak"
    FIRE = "fire"
    EMERGENCY_PRESS = "emergency_press"
    DEVICE_OFFLINE = "device_offline"
    BATTERY_DEATH = "battery_death"
    HOME_OUTAGE = "home_outage"
    AWAY_TRIP = "away_trip"
    METER_SWAP = "meter_swap"


DEFAULT_DURATION_MS: dict[ScenarioKind, int] = {
    ScenarioKind.FALL: DAY_MS,
    ScenarioKind.TAP_LEFT_RUNNING: 3 * HOUR_MS,
    ScenarioKind.LEAK: 3 * DAY_MS,
    ScenarioKind.FIRE: 15 * MINUTE_MS,
    ScenarioKind.EMERGENCY_PRESS: 0,
    ScenarioKind.DEVICE_OFFLINE: 12 * HOUR_MS,
    ScenarioKind.BATTERY_DEATH: DAY_MS,
    ScenarioKind.HOME_OUTAGE: 6 * HOUR_MS,
    ScenarioKind.AWAY_TRIP: 3 * DAY_MS,
    # A technician's swap: short enough that even a live meter (30 min silence limit) is not missed.
    ScenarioKind.METER_SWAP: 10 * MINUTE_MS,
}
DEFAULT_DEVICE: dict[ScenarioKind, str] = {
    ScenarioKind.FIRE: "sa1",
    ScenarioKind.EMERGENCY_PRESS: "cb",
    ScenarioKind.DEVICE_OFFLINE: "wm",
    ScenarioKind.BATTERY_DEATH: "sa1",
    ScenarioKind.METER_SWAP: "wm",
}
# A tap left half open runs about 6 L/min; a leaking cistern or dripping pipe a few litres an hour.
DEFAULT_RATE_L_PER_H = {ScenarioKind.TAP_LEFT_RUNNING: 360.0, ScenarioKind.LEAK: 4.0}
DEVICE_SLOTS = ("wm", "sa1", "sa2", "cb")


class ScenarioError(ValueError):
    """A scenario request that cannot be understood or placed; ``spec`` is the offending text."""

    def __init__(self, spec: str, reason: str) -> None:
        super().__init__(f"scenario {spec!r}: {reason}")
        self.spec = spec
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Incident:
    """A placed incident: which home, when, and the parameters its kind needs."""

    kind: ScenarioKind
    home: int
    start_ms: int
    end_ms: int
    device: str | None = None
    announced: bool = False
    rate_l_per_h: float = 0.0

    @property
    def expected_alert(self) -> AlertKind | None:
        return expected_alert(self.kind, announced=self.announced)


_EXPECTED: dict[ScenarioKind, AlertKind | None] = {
    ScenarioKind.FALL: AlertKind.INACTIVITY,
    ScenarioKind.TAP_LEFT_RUNNING: AlertKind.CONTINUOUS_FLOW,
    ScenarioKind.LEAK: AlertKind.CONTINUOUS_FLOW,
    ScenarioKind.FIRE: AlertKind.SMOKE,
    ScenarioKind.EMERGENCY_PRESS: AlertKind.SOS,
    ScenarioKind.DEVICE_OFFLINE: AlertKind.DEVICE_OFFLINE,
    ScenarioKind.BATTERY_DEATH: AlertKind.DEVICE_OFFLINE,
    ScenarioKind.HOME_OUTAGE: AlertKind.DEVICE_OFFLINE,
    # Unannounced, a trip looks like a resident who stopped using water; announced, it must not alert.
    ScenarioKind.AWAY_TRIP: AlertKind.INACTIVITY,
    # A new meter's register starts near zero: not a leak, not a fall.
    ScenarioKind.METER_SWAP: None,
}


def expected_alert(kind: ScenarioKind, *, announced: bool = False) -> AlertKind | None:
    """The alert carewatch should raise for an incident of ``kind`` (None: it should stay quiet)."""
    if kind is ScenarioKind.AWAY_TRIP and announced:
        return None
    return _EXPECTED[kind]


@dataclass(frozen=True, slots=True)
class ScenarioRequest:
    """What the user asked for; ``None`` fields are drawn from the seed when placed."""

    kind: ScenarioKind
    home: int | str | None = None
    at: str | None = None
    duration_ms: int | None = None
    device: str | None = None
    announced: bool | None = None
    rate_l_per_h: float | None = None


def parse_scenarios(spec: str) -> list[ScenarioRequest]:
    """Parse one ``--scenario`` value (``all`` expands to one request per kind)."""
    name, _, params = spec.strip().partition(":")
    if name == "all":
        return [ScenarioRequest(kind) for kind in ScenarioKind]
    try:
        kind = ScenarioKind(name)
    except ValueError:
        known = ", ".join(k.value for k in ScenarioKind)
        raise ScenarioError(spec, f"unknown kind {name!r} (known: {known}, all, demo)") from None
    values: dict[str, str] = {}
    for part in filter(None, params.split(",")):
        key, sep, value = part.partition("=")
        if not sep or key not in {"home", "at", "for", "device", "announced", "rate"}:
            raise ScenarioError(spec, f"bad parameter {part!r}")
        values[key] = value
    home: int | str | None = values.get("home")
    if isinstance(home, str) and home.isdigit():
        home = int(home)
    device = values.get("device")
    if device is not None and device not in DEVICE_SLOTS:
        raise ScenarioError(spec, f"device must be one of {', '.join(DEVICE_SLOTS)}")
    try:
        duration = parse_duration(values["for"]) if "for" in values else None
        rate = float(values["rate"]) if "rate" in values else None
    except ValueError as exc:
        raise ScenarioError(spec, str(exc)) from exc
    announced = values["announced"].lower() in {"yes", "true", "1"} if "announced" in values else None
    return [ScenarioRequest(kind, home, values.get("at"), duration, device, announced, rate)]


def place(
    requests: Sequence[ScenarioRequest],
    *,
    seed: int,
    household_ids: Sequence[str],
    start_ms: int,
    end_ms: int,
) -> list[Incident]:
    """Give every request a home and a time, deterministically from the seed."""
    index_of = {hid: i for i, hid in enumerate(household_ids)}
    incidents = []
    for n, req in enumerate(requests):
        rng = random.Random(f"{seed}/scenario/{n}/{req.kind.value}")
        duration = req.duration_ms if req.duration_ms is not None else DEFAULT_DURATION_MS[req.kind]
        if req.home is None:
            home = rng.randrange(len(household_ids))
        elif isinstance(req.home, int):
            home = req.home
        else:
            home = index_of.get(req.home, -1)
        if not 0 <= home < len(household_ids):
            raise ScenarioError(req.kind.value, f"no such home {req.home!r}")
        if req.at is not None:
            try:
                at = parse_time(req.at, origin_ms=start_ms)
            except ValueError as exc:
                raise ScenarioError(req.kind.value, str(exc)) from exc
        else:
            # Leave an hour of normal life first, and let the incident finish inside the run if it can.
            span = end_ms - start_ms
            latest = max(end_ms - min(duration, span // 2), start_ms + span // 10)
            at = rng.randint(min(start_ms + HOUR_MS, latest), latest)
        incidents.append(
            Incident(
                kind=req.kind,
                home=home,
                start_ms=at,
                end_ms=at + duration,
                device=req.device or DEFAULT_DEVICE.get(req.kind),
                announced=bool(req.announced),
                rate_l_per_h=req.rate_l_per_h or DEFAULT_RATE_L_PER_H.get(req.kind, 0.0),
            )
        )
    return incidents


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """One line of the ground-truth file."""

    category: str  # "incident" (injected), "routine" (normal life), or "fault" (injected bad data)
    kind: str
    household_id: str
    start_ms: int
    end_ms: int
    expected_alert: AlertKind | None
    device_id: str | None = None
    detail: dict[str, object] = field(default_factory=dict)

    def sort_key(self) -> tuple[int, str, str, str]:
        return (self.start_ms, self.household_id, self.kind, self.device_id or "")

    def to_json(self) -> str:
        return json.dumps(
            {
                "home": self.household_id,
                "kind": self.kind,
                "category": self.category,
                "start": iso_utc(self.start_ms),
                "end": iso_utc(self.end_ms),
                "expected_alert": self.expected_alert.value if self.expected_alert else None,
                "device_id": self.device_id,
                "detail": self.detail,
            },
            ensure_ascii=False,
            sort_keys=False,
        )


def incident_truth(incident: Incident, household_id: str, device_id: str | None) -> TruthRecord:
    detail: dict[str, object] = {}
    if incident.kind is ScenarioKind.AWAY_TRIP:
        detail["announced"] = incident.announced
    if incident.rate_l_per_h:
        detail["rate_l_per_h"] = incident.rate_l_per_h
    return TruthRecord(
        category="incident",
        kind=incident.kind.value,
        household_id=household_id,
        start_ms=incident.start_ms,
        end_ms=incident.end_ms,
        expected_alert=incident.expected_alert,
        device_id=device_id,
        detail=detail,
    )
