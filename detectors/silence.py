"""Silence is not safety: a meter gone silent after a long quiet raises an urgent "cannot confirm".

A water meter proves a quiet stretch only with readings, so the backstop waits for them ("no data is not
no water"). When a meter goes silent while the home's last known use is already long ago, that wait is
the risk: the fall may lie in the gap (real NB-IoT meters lose runs of 4-25 h of transmissions, never
back-filled). So once the backstop's window, less the check-in lead, has passed since the household's
last known use or sign of life with no reading to prove use, the household gets an urgent INACTIVITY
finding (``detector: silence``, severity high) that checks in and pages as inactivity does.

Judged in processing time on the engine's timers, like device health. :func:`due` is the first instant at
which every meter of the household is *silent* (nothing heard for its expected interval plus a slack,
:class:`~detectors.config.SilenceConfig`: a daily-upload meter between two uploads is not silent), the
window less the lead has passed since the quiet start the backstop itself would count from (the last
use's interval, a sign of life, an away period's end, a resolved alert), and no away or hospital period
holds. Once per quiet stretch: the latch (``MeterLogic.silence_q``) ends at a reading that shows use, a
sign of life, or the alert's resolution (``Engine.alert_closed``). A silent meter whose home used water
recently stays a DEVICE_OFFLINE notice (device health). A whole-home outage is one finding naming the
household's silent devices. Readings that resume without use raise the backstop, which alerting attaches
to the same open alert; a reading that shows use emits presence, which answers the check-in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from detectors.config import DetectorSuiteConfig, FlatRuleConfig, SilenceConfig
from detectors.context import HouseholdView, Returned, iso, to_dt
from detectors.events import finding
from detectors.health import DeviceHealth, describe
from detectors.meter import MeterLogic
from detectors.presence import after_sign, sign_details
from schemas import evidence as ev
from schemas.findings import Finding
from schemas.kinds import AlertKind, Severity
from schemas.records import DeviceInfo

Meter = tuple[MeterLogic, DeviceHealth]


def silent_after_s(device: DeviceInfo, cfg: SilenceConfig) -> float:
    """How long after the last message a device is silent: its expected interval plus the slack."""
    interval = float(device.expected_interval_s)
    return interval + max(cfg.slack_min_s, cfg.slack_factor * interval)


def gate(logic: MeterLogic, health: DeviceHealth, cfg: SilenceConfig) -> float | None:
    """When this meter is silent, if the rule could raise for it then: a lower bound of :func:`due`, cheap
    enough to schedule after every call (the engine works out the household's deadline at the gate)."""
    heard, interval = health.last_heard, float(health.device.expected_interval_s)
    if logic.silence_q is not None or logic.last_t is None or heard is None or interval <= 0:
        return None
    return heard + interval + max(cfg.slack_min_s, cfg.slack_factor * interval)


def backstop_rule(cfg: DetectorSuiteConfig, view: HouseholdView) -> FlatRuleConfig | None:
    """The household's personal backstop (the silence rule counts its window), None without one."""
    for base in cfg.flat_rules:
        if base.enabled and base.personal:
            return view.settings.flat_rule(base)
    return None


def quiet_start(logic: MeterLogic, rule: FlatRuleConfig, t: float, view: HouseholdView) -> float:
    """Where the backstop would count the current quiet stretch from at ``t`` (MeterLogic._flat_rules)."""
    last = logic.use_t0 if logic.use_t0 is not None else logic.series_start
    start = max(last, logic.quiet_floor(t, view))
    for latch in logic.fired:
        if latch.name == rule.name:
            start = max(start, latch.at)
    return start


def _usable(meters: Sequence[Meter], rule: FlatRuleConfig) -> list[Meter] | None:
    """The meters that can judge (read and heard at least once, silence watched); None when the stretch
    is already raised (a silence latch, or the backstop fired and waits for water)."""
    out = []
    for logic, health in meters:
        if logic.silence_q is not None:
            return None
        if any(latch.name == rule.name and latch.reg is not None for latch in logic.fired):
            return None
        if logic.last_t is not None and health.last_heard is not None and health.device.expected_interval_s > 0:
            out.append((logic, health))
    return out


def due(meters: Sequence[Meter], view: HouseholdView, cfg: DetectorSuiteConfig) -> float | None:
    """When the silence rule raises for the household whose meters these are (None: it cannot now).
    (Scheduled after every call for every meter: written for speed, loops rather than generators.)"""
    sc = cfg.silence
    rule = backstop_rule(cfg, view) if sc.enabled else None
    if rule is None:
        return None
    usable: list[MeterLogic] = []
    silent_at = -math.inf
    for logic, health in meters:
        if logic.silence_q is not None or (
            logic.fired and any(x.reg is not None and x.name == rule.name for x in logic.fired)
        ):
            return None  # raised already (or the backstop did, and waits for water)
        heard, interval = health.last_heard, float(health.device.expected_interval_s)
        if logic.last_t is not None and heard is not None and interval > 0:
            usable.append(logic)
            silent_at = max(silent_at, heard + interval + max(sc.slack_min_s, sc.slack_factor * interval))
    if not usable:
        return None
    window = rule.window_h * 3600 - view.settings.checkin_lead_s
    if not view.has_away:  # the common case: no period to step over
        start = quiet_start(usable[0], rule, silent_at, view)
        for logic in usable[1:]:
            start = max(start, quiet_start(logic, rule, silent_at, view))
        return max(silent_at, start + window)
    returned: Returned = tuple(p for logic in usable for p in logic.returned)
    # The first instant x >= silent_at with x >= start(x) + window outside any away period; start(x) only
    # grows where an away period ends, so each pass settles a period or returns.
    x = silent_at
    for _ in range(2 * len(view.settings.away) + 4):
        need = max(quiet_start(logic, rule, x, view) for logic in usable) + window
        if x < need:
            x = need
            continue
        end = view.away_end(x, returned)
        if end is None:
            return x
        x = end
    return None


def raise_silence(
    meters: Sequence[Meter], devices: Sequence[DeviceHealth], now: float, view: HouseholdView, cfg: DetectorSuiteConfig
) -> list[Finding]:
    """Raise the household's "cannot confirm" finding at ``now`` (the caller checked :func:`due`) and latch
    every meter for its stretch. ``devices``: all the household's devices, to name the silent ones."""
    rule = backstop_rule(cfg, view)
    usable = _usable(meters, rule) if rule is not None else None
    if not usable or rule is None:
        return []
    starts = [quiet_start(logic, rule, now, view) for logic, _ in usable]
    start = max(starts)
    for (logic, _), own in zip(usable, starts, strict=True):
        logic.silence_q = own
        logic.presence_due = True
        # The stretch is raised: the routine has nothing to add to it (as after the backstop).
        routine = logic.routine
        floor = logic.quiet_floor(now, view)
        q = max(logic.last_use if logic.last_use is not None else logic.series_start, floor)
        routine.fired_q = q if routine.fired_q is None else max(routine.fired_q, q)
    meter, health = usable[starts.index(start)]
    heard = max(_heard(h) for _, h in usable)
    silent = [
        d.device.device_id
        for d in devices
        if d.offline_since is not None
        or d.last_heard is None
        or now - d.last_heard > silent_after_s(d.device, cfg.silence)
    ]
    others = [
        ev.SilentPeer(device=describe(d.device), last_heard=to_dt(_heard(d) if d.last_heard is not None else heard))
        for d in devices
        if d.device.device_id in silent and d is not health
    ]
    lead = view.settings.checkin_lead_s
    evidence = view.evidence(
        now,
        ev.CannotConfirm(
            device=describe(health.device),
            heard=to_dt(heard),
            expected_every_s=float(health.device.expected_interval_s),
            since=to_dt(start),
            after_sign=after_sign(meter.alive, start),
            quiet_s=now - start,
            also_silent=ev.AlsoSilent(devices=others) if others else None,
        ),
    )
    details = {
        "cannot_confirm": True,
        "silent_since": iso(heard),
        "quiet_since": iso(start),
        "window_h": rule.window_h,
        "lead_s": lead,
        "devices": silent,
    }
    return [
        finding(
            health.device,
            AlertKind.INACTIVITY,
            at=start,
            detected_at=now,
            detector="silence",
            severity=Severity.HIGH,
            evidence=evidence,
            details=details | sign_details(meter.alive, start),
        )
    ]


def _heard(health: DeviceHealth) -> float:
    return health.last_heard if health.last_heard is not None else float("-inf")
