"""Water meter logic: one object per meter, fed committed register readings in device time.

Design
------
A meter reports a cumulative register, so the difference between two readings is *exactly* the water
used between them, however far apart they are. That gives the key property "no data is not no
water": a silent meter proves nothing (the health detector reports it offline), while the first
reading after a gap settles the whole gap at once. Late batches (NB-IoT meters upload a day of stored
readings at once) are therefore evaluated for the device time they cover, and a finding raised from
them carries the device-time start (``at``) and the processing time (``detected_at``).

Series. A register that goes backwards by more than ``reset_tolerance_l`` (battery or meter swap), or
jumps faster than ``max_plausible_lpm`` (a glitch), starts a new *series*: the boundary interval's
consumption is unknown and is never counted (no negative or huge use), and quiet stretches restart at
the boundary (conservative: no inactivity alert is built on an interval we cannot measure). A single
glitch reading followed by a return to the old register resumes the old series.

Order. Readings of one meter are applied in device-time order (the engine sorts each call's records
per device). A reading older than the newest one already applied lies inside an interval whose total
is already known exactly; it is counted (``late_inside``) but not re-evaluated, because any quiet
stretch it could reveal has, by construction, already ended with water use.

Flat program rule (``personal=False``). For each such :class:`FlatRuleConfig`, the longest window
ending at the newest reading with less than ``min_litres`` is found from a short list of *step points*
(time the register first reached a value), kept only within ``min_litres`` of the current register and
thinned to steps of at least 1/16 of the threshold. Thinning can only make a window look shorter, never
longer, so it may delay an alert by one interval but can never invent one. A fired rule stays fired
until at least ``resume_l`` more litres are used, and the next window starts after that.

Backstop (``personal=True``, the default suite's 12 h rule). No single use for ``window_h`` hours,
counted from the *start* of the interval whose reading last showed use: the use may have ended anywhere
in that interval, so the backstop fires no later than 12 h after the real last use on any reading grid
(15-minute or hourly), which is what "within 12 h of the incident" needs. "Use" is an interval adding at
least ``use_min_l`` above the home's standing flow (``FlowLogic.standing_lph``): drips and a leaking
cistern are not a resident. It clears at the next use and is never held back, for any resident.

Presence. A sign of life ends a quiet stretch: a call-button press or a smoke alarm hushed or tested in
the household (the engine passes it on, :meth:`MeterLogic.sign_of_life`) counts like water use for the
backstop, the program rule and the routine (their quiet starts there at the latest, and the evidence
names it). The first use after an inactivity-type finding of the current stretch emits a PRESENCE finding
(``signal: water``) that answers a check-in in progress; later uses emit nothing.

The routine, flow and excess detectors live in their own modules and are driven from here.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from detectors.config import DetectorSuiteConfig
from detectors.context import HouseholdView, Returned, epoch, iso, to_dt
from detectors.daily import DayLedger
from detectors.events import finding
from detectors.flow import FlowLogic
from detectors.presence import after_sign, backstop_window_s, sign_details, water_presence
from detectors.routine import RoutineLogic
from schemas import evidence as ev
from schemas.findings import Finding, PresenceSignal
from schemas.kinds import AlertKind
from schemas.records import DeviceInfo, MeterSample

# Inactivity findings are suppressed inside away/hospital periods; these kinds are.
INACTIVITY_KINDS = frozenset({AlertKind.INACTIVITY, AlertKind.ROUTINE_MISSED})


class RuleLatch(NamedTuple):
    """A flat rule's latch. Fired: ``reg`` is the register it fired at and ``at`` the start of the quiet
    stretch it raised. Cleared (``reg`` None): the next window starts after ``at`` (the floor)."""

    name: str
    reg: float | None
    at: float


class MeterLogic:
    """State and rules for one water meter. ``snapshot()`` is JSON; see module docstring."""

    __slots__ = (
        "alive",
        "cfg",
        "device",
        "fired",
        "flow",
        "last_r",
        "last_t",
        "last_use",
        "late_inside",
        "ledger",
        "presence_due",
        "prev",
        "resets",
        "returned",
        "routine",
        "series_n",
        "series_start",
        "silence_q",
        "steps",
        "use_r",
        "use_t0",
    )

    def __init__(self, device: DeviceInfo, cfg: DetectorSuiteConfig, state: dict[str, Any] | None = None) -> None:
        self.device = device
        self.cfg = cfg
        s = state or {}
        self.last_t: float | None = s.get("t")
        self.last_r: float = s.get("r", 0.0)
        self.series_start: float = s.get("ss", -math.inf) if s.get("ss") is not None else -math.inf
        self.series_n: int = s.get("sn", 0)
        self.last_use: float | None = s.get("use")
        self.use_r: float = s.get("use_r", 0.0)
        # Start of the interval that last showed use: the use may have ended anywhere inside it, so
        # the backstop counts its 12 h from here and never fires later than 12 h after the last use.
        self.use_t0: float | None = s.get("use_t0", self.last_use)
        # (time, register) of the series before a reset, to recognise a one-reading glitch.
        prev = s.get("prev")
        self.prev: tuple[float, float] | None = None if prev is None else (prev[0], prev[1])
        # Tuples, not lists or dicts, throughout: the empty tuple is shared, and these change rarely
        # (steps only under a program rule, latches when a rule fires or clears).
        self.steps: tuple[tuple[float, float], ...] = tuple((p[0], p[1]) for p in s.get("steps", []))
        # One latch per flat rule that has fired (snapshot: {name: {"reg", "start"} or {"floor"}}).
        self.fired: tuple[RuleLatch, ...] = tuple(
            RuleLatch(k, v["reg"], v["start"]) if "reg" in v else RuleLatch(k, None, v["floor"])
            for k, v in s.get("fired", {}).items()
            if "reg" in v or "floor" in v
        )
        self.resets: int = s.get("resets", 0)
        self.late_inside: int = s.get("late", 0)
        # The household's latest sign of life from another device: (time, PresenceSignal, device id).
        alive = s.get("alive")
        self.alive: tuple[float, str, str] | None = None if alive is None else (alive[0], alive[1], alive[2])
        # An inactivity-type finding was raised for the current quiet stretch: the next use is news
        # (a PRESENCE finding). Snapshots before this field: a fired latch waits for water.
        self.presence_due: bool = s.get("pres", any(latch.reg is not None for latch in self.fired))
        # The silence rule raised the stretch quiet since this (detectors/silence.py); None: not raised.
        self.silence_q: float | None = s.get("sil")
        # ``until_use`` away periods this meter saw end early: (period start, first sign of life inside).
        self.returned: Returned = tuple((p[0], p[1]) for p in s.get("ret", ()))
        self.ledger = DayLedger(device, cfg, s.get("days"))
        self.routine = RoutineLogic(device, cfg, s.get("routine"))
        self.flow = FlowLogic(device, cfg, s.get("flow"))

    # ------------------------------------------------------------------------------------------
    def on_reading(self, sample: MeterSample, view: HouseholdView) -> list[Finding]:
        t, now, r = epoch(sample.ts), epoch(sample.received_at), float(sample.register_l)
        if self.last_t is None:
            self._new_series(t, r)
            self.ledger.roll_to(view.day_index(t), view)
            return []
        if t <= self.last_t:
            if t < self.last_t:
                self.late_inside += 1
            return []
        litres = self._interval_litres(t, r)
        t0 = self.last_t
        self.last_t, self.last_r = t, r
        if litres is None:
            self.ledger.roll_to(view.day_index(t), view)
            self.flow.boundary()
            return []
        self.series_n += 1
        day = view.day_index(t)
        self.flow.note_interval(t0, t, day, litres)
        # A standing leak is not a resident: only use above the home's own minimum flow counts.
        used = litres - self.flow.standing_lph * (t - t0) / 3600 >= self.cfg.use_min_l
        out: list[Finding] = []
        if used:
            if view.has_away:
                self._note_sign(t0, view)
            self.last_use, self.use_r, self.use_t0 = t, r, t0
            self.silence_q = None
            if self.presence_due:
                self.presence_due = False
                out.append(water_presence(self.device, t, now, litres, view))
        if litres > 0:
            self._add_step(t, r, view)
        self.ledger.add(t0, t, day, litres, used, view)
        self._clear_fired(t, r, used)
        suppressed = view.away_reason(t, self.returned)
        floor = self.quiet_floor(t, view)
        raised_now = self._flat_rules(t, t - t0, now, r, floor, suppressed, view)
        q = self._quiet_start(floor)
        since = max(r - self.use_r, 0.0) if self.last_use is not None and q == self.last_use else 0.0
        # Once the backstop or program rule has raised this stretch, a later routine finding adds nothing.
        raised = suppressed or ("inactivity" if any(latch.reg is not None for latch in self.fired) else None)
        sign = after_sign(self.alive, q) if self.alive is not None else None
        raised_now += self.routine.check(self.ledger, t, now, q, since, raised, view, sign)
        if raised_now:
            self.presence_due = True
            out.extend(raised_now)
        out.extend(self.flow.on_interval(t0, t, litres, now, view))
        out.extend(self.ledger.check_excess(t, now, view))
        return out

    # Register series ----------------------------------------------------------------------------
    def _interval_litres(self, t: float, r: float) -> float | None:
        """Litres used since the previous reading, or None at a series boundary."""
        last_t = self.last_t if self.last_t is not None else t
        dt = t - last_t
        d = r - self.last_r
        plausible = self.cfg.max_plausible_lpm * max(dt, 60.0) / 60.0
        if -self.cfg.reset_tolerance_l <= d <= plausible:
            return max(d, 0.0)
        if self.prev is not None and self.series_n <= 2:
            prev_t, prev_r = self.prev
            back = r - prev_r
            if -self.cfg.reset_tolerance_l <= back <= self.cfg.max_plausible_lpm * max(t - prev_t, 60) / 60:
                # The low reading was a glitch: the register is back on its old series.
                self.prev = None
                self.steps = ((t, r),) if self._program else ()
                return max(back, 0.0)
        self.prev = (last_t, self.last_r)
        self.resets += 1
        self._new_series(t, r)
        return None

    def _new_series(self, t: float, r: float) -> None:
        self.last_t, self.last_r = t, r
        self.series_start = t
        self.series_n = 0
        # Step points serve the program rule only (memory: the default suite runs the backstop).
        self.steps = ((t, r),) if self._program else ()

    def _add_step(self, t: float, r: float, view: HouseholdView) -> None:
        widest, narrowest = -math.inf, math.inf
        for base in self.cfg.flat_rules:
            if base.enabled and not base.personal:
                litres = view.settings.flat_rule(base).min_litres
                widest, narrowest = max(widest, litres), min(narrowest, litres)
        if widest == -math.inf:
            return
        steps = self.steps
        if not steps or r - steps[-1][1] >= narrowest / 16:
            steps = (*steps, (t, r))
        drop = 0
        while len(steps) - drop > 1 and steps[drop][1] <= r - widest:
            drop += 1
        self.steps = steps[drop:]

    @property
    def _program(self) -> bool:
        return any(rule.enabled and not rule.personal for rule in self.cfg.flat_rules)

    def quiet_floor(self, t: float, view: HouseholdView) -> float:
        """The earliest a quiet stretch judged at ``t`` may start: the register series, the household's
        last sign of life from another device, the end of an away period (the three paths read this)."""
        floor, alive = self.series_start, self.alive
        if alive is not None and alive[0] > floor:
            floor = alive[0]
        if view.has_away:
            return max(floor, view.away_floor(t, self.returned))
        return floor

    def _quiet_start(self, floor: float) -> float:
        """Start of the current stretch without water use, for the routine detector."""
        start = self.last_use if self.last_use is not None else self.series_start
        return max(start, floor)

    # Flat program rule ----------------------------------------------------------------------------
    def _flat_rules(
        self, t: float, dt: float, now: float, r: float, floor: float, suppressed: str | None, view: HouseholdView
    ) -> list[Finding]:
        out: list[Finding] = []
        for base in self.cfg.flat_rules:
            if not base.enabled:
                continue
            rule = view.settings.flat_rule(base)
            latch = self._latch(rule.name)
            if latch is not None and latch.reg is not None:
                continue  # fired and not yet cleared
            rule_floor = max(floor, latch.at) if latch is not None else floor
            if rule.personal:
                # The suite's backstop: the stretch without a single use, however small the drips.
                last = self.use_t0 if self.use_t0 is not None else self.series_start
                start = max(last, floor, rule_floor)
            else:
                start = next((p[0] for p in self.steps if p[1] > r - rule.min_litres), t)
                start = max(start, rule_floor)
            window = rule.window_h * 3600
            lead = view.settings.checkin_lead_s
            due = backstop_window_s(window, lead, dt) if lead and rule.personal else window
            # A reading that shows use is news, never the backstop's: when its interval is a long gap the
            # use may lie anywhere in it, and the quiet after it is the next reading's (a silent gap is
            # the silence rule's).
            if t - start < due or suppressed or (rule.personal and self.last_use == t):
                continue
            if rule.personal:
                used = max(r - self.use_r, 0.0) if self.last_use is not None else 0.0
            else:
                used = max(r - next((p[1] for p in self.steps if p[0] >= start), r), 0.0)
            self._set_latch(RuleLatch(rule.name, r, start))
            sign = after_sign(self.alive, start)
            out.append(
                finding(
                    self.device,
                    AlertKind.INACTIVITY,
                    at=start,
                    detected_at=now,
                    detector=f"backstop:{rule.name}" if rule.personal else f"flat_rule:{rule.name}",
                    # Raised early by the check-in's lead: quiet_s says how much of the window has passed.
                    evidence=view.evidence(
                        t,
                        ev.NoWater(
                            window_h=rule.window_h,
                            since=to_dt(start),
                            litres=used,
                            quiet_s=t - start,
                            reading_at=to_dt(t),
                            after_sign=sign,
                        )
                        if rule.personal
                        else ev.LittleWater(
                            min_litres=rule.min_litres,
                            window_h=rule.window_h,
                            litres=used,
                            since=to_dt(start),
                            quiet_s=t - start,
                            reading_at=to_dt(t),
                            after_sign=sign,
                        ),
                    ),
                    details={
                        "rule": rule.name,
                        "window_h": rule.window_h,
                        "min_litres": rule.min_litres,
                        "litres": round(used, 2),
                        "quiet_since": iso(start),
                        "due_at": iso(start + window),
                        "last_reading_at": iso(t),
                    }
                    | sign_details(self.alive, start),
                )
            )
        return out

    def _clear_fired(self, t: float, r: float, used: bool) -> None:
        for latch in self.fired:
            if latch.reg is None:
                continue
            # The backstop clears at the next real use (a standing leak keeps moving the register);
            # the program rule once ``resume_l`` more litres went through the meter.
            if self._personal(latch.name):
                if used and self.use_t0 is not None:
                    self._set_latch(RuleLatch(latch.name, None, self.use_t0))
            elif r - latch.reg >= self.cfg.resume_l:
                self._set_latch(RuleLatch(latch.name, None, t))

    # Presence -------------------------------------------------------------------------------------
    def sign_of_life(self, t: float, signal: PresenceSignal, device_id: str, view: HouseholdView) -> None:
        """Another device of the household showed the resident up at ``t`` (a call-button press, a smoke
        alarm hushed or tested): a new quiet stretch starts there, so the fired latches re-arm from it,
        the silence rule's latch ends, and the next use is not news any more."""
        if self.alive is not None and t <= self.alive[0]:
            return
        if view.has_away:
            self._note_sign(t, view)
        self.alive = (t, signal.value, device_id)
        for latch in self.fired:
            if latch.reg is not None and latch.at < t:
                self._set_latch(RuleLatch(latch.name, None, t))
        if self.silence_q is not None and self.silence_q < t:
            self.silence_q = None
        # Nothing raised is left open for a stretch begun before the sign: the next use is not news.
        fired_q = self.routine.fired_q
        if not self.awaiting_use and self.silence_q is None and (fired_q is None or fired_q < t):
            self.presence_due = False

    def _note_sign(self, t: float, view: HouseholdView) -> None:
        """A sign of life at ``t`` ends an ``until_use`` away period it falls in (the first one does)."""
        start = view.until_use_start(t)
        if start is None or any(begun == start for begun, _ in self.returned):
            return
        # Records of periods no longer set are dropped here (the only place they grow).
        current = view.until_use_starts()
        self.returned = (*((b, x) for b, x in self.returned if b in current), (start, t))

    def _latch(self, name: str) -> RuleLatch | None:
        for latch in self.fired:
            if latch.name == name:
                return latch
        return None

    def _set_latch(self, latch: RuleLatch) -> None:
        """Replace the latch of the same rule in place (snapshot order is first-fired order) or add it."""
        names = [old.name for old in self.fired]
        if latch.name in names:
            i = names.index(latch.name)
            self.fired = (*self.fired[:i], latch, *self.fired[i + 1 :])
        else:
            self.fired = (*self.fired, latch)

    def _personal(self, name: str) -> bool:
        return any(rule.personal for rule in self.cfg.flat_rules if rule.name == name)

    # For the bulk paths (meter_batch, meter_fleet) ------------------------------------------------
    @property
    def awaiting_use(self) -> bool:
        """A flat rule has fired and waits for water to resume; until then the routine says nothing."""
        return any(latch.reg is not None for latch in self.fired)

    @property
    def stops_at_use(self) -> bool:
        """The next use changes what the bulk paths do not follow: it is news (a PRESENCE finding), or it
        ends the silence rule's latch. They end their prefix there; the per-reading path takes it."""
        return self.presence_due or self.silence_q is not None

    def bulk_blocked(self) -> bool:
        """A fired latch the bulk paths do not follow: a program rule's (it clears on litres, not on a
        use; left from a configuration that had the program rule on)."""
        return any(latch.reg is not None and not self._personal(latch.name) for latch in self.fired)

    def clear_fired(self, use_t0: float) -> None:
        """What the first use (from ``use_t0``) does to the fired personal rules' latches."""
        for latch in self.fired:
            if latch.reg is not None:
                self._set_latch(RuleLatch(latch.name, None, use_t0))

    def rearm(self, closed_at: float) -> None:
        """An inactivity-type alert of this home was resolved at ``closed_at`` (a person saw the resident,
        or the resident answered): every flat rule counts its window afresh from then (from the next use
        if that is later), so twelve more hours without water raise again, and the silence rule's latch
        ends (its window restarts there too); the routine stays silent for the stretch the alert was
        about (the backstop's new window bounds that)."""
        if self.silence_q is not None and self.silence_q < closed_at:
            self.silence_q = None
        for rule in self.cfg.flat_rules:
            if not rule.enabled:
                continue
            latch = self._latch(rule.name)
            # A latch that fired for a stretch begun after this closure belongs to a later alert.
            if latch is None or latch.at < closed_at:
                self._set_latch(RuleLatch(rule.name, None, closed_at))
        routine = self.routine
        routine.fired_q = closed_at if routine.fired_q is None else max(routine.fired_q, closed_at)

    # Timers and snapshot -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "t": self.last_t,
            "r": self.last_r,
            "ss": None if self.series_start == -math.inf else self.series_start,
            "sn": self.series_n,
            "use": self.last_use,
            "use_r": self.use_r,
            "use_t0": self.use_t0,
            "prev": None if self.prev is None else list(self.prev),
            "steps": [list(p) for p in self.steps],
            "fired": {
                latch.name: {"floor": latch.at} if latch.reg is None else {"reg": latch.reg, "start": latch.at}
                for latch in self.fired
            },
            "resets": self.resets,
            "late": self.late_inside,
            "alive": None if self.alive is None else list(self.alive),
            "pres": self.presence_due,
            "sil": self.silence_q,
            "ret": [list(p) for p in self.returned],
            "days": self.ledger.snapshot(),
            "routine": self.routine.snapshot(),
            "flow": self.flow.snapshot(),
        }
