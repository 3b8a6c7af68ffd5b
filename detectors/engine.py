"""The detector engine: routes committed records to per-device logic and runs the timers.

Contract (what the runner, the backtest and the tests call)::

    engine = Engine(config, snapshots=None)
    engine.upsert_device(device_info)                  # registry changes
    engine.set_household(household_id, settings)       # thresholds, away periods, quiet windows
    findings = engine.process(records)                 # committed records, commit order
    findings = engine.tick(now)                        # processing-time ticker
    engine.alert_closed(closure)                       # an alert was resolved: its latches end
    engine.next_timer() -> datetime | None             # when tick() next has something to do (or to check)
    engine.snapshots() -> {key: JSON state}            # keys changed since the previous call

Design. The engine owns no rules. Per device it keeps a :class:`DeviceHealth` (silence, battery,
signal) and one type-specific logic object (:class:`MeterLogic`, :class:`SmokeLogic`,
:class:`CallLogic`); per household a :class:`HouseholdHealth` (outage grouping) and any low-severity
findings held back by a quiet window. All of them are built from the frozen
:class:`DetectorSuiteConfig` plus their own snapshot, take time as a parameter and never do I/O, so
the same engine runs live, in backtests and in tests, deterministically.

Time. Water and event detectors work in device time (``record.ts``); a finding's ``detected_at`` is
the processing time at which the evidence arrived (``record.received_at``, or ``now`` for a tick).
Within one ``process`` call each device's records are applied in device-time order, so a batch
committed out of order is still evaluated correctly. A meter's run of at least ``BATCH_MIN`` readings
(a daily upload) goes through the bulk path of :mod:`detectors.meter_batch` wherever no rule can fire:
the same state, bit for bit, at a fraction of the cost; ``batch_path=False`` keeps every reading on
the per-reading path (the reference the tests compare it with).

Timers. Per device: its silence deadline (device health) and, for a meter, the silence rule's gate (the
moment the meter is silent; the household's "cannot confirm" deadline is worked out there, since it
depends on the household's other meters and would cost a few microseconds after every call). A gate may
find nothing to do but keep the deadline: ``next_timer`` is never late, sometimes early.

Snapshots. ``snapshots()`` returns only the keys (``dev:<device_id>``, ``hh:<household_id>``) whose
state changed since the previous call: the runner upserts them into ``detector_state``. Passing all
stored snapshots back to the constructor restores the engine exactly: open conditions stay open (no
re-raise), and pending timers (silence deadlines, held notices) are re-armed from the stored times.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import groupby
from operator import attrgetter
from typing import Any

from detectors.config import DetectorSuiteConfig, HouseholdSettings
from detectors.context import HouseholdView, epoch, to_dt
from detectors.events import CallLogic, SmokeLogic
from detectors.health import DeviceHealth, HouseholdHealth
from detectors.held import HeldFindings
from detectors.meter import MeterLogic
from detectors.meter_batch import BATCH_MIN, apply_prefix
from detectors.meter_fleet import apply_fleet
from detectors.silence import due as silence_due
from detectors.silence import gate as silence_gate
from detectors.silence import raise_silence
from schemas.findings import AlertClosure, Finding, FindingAction, PresenceSignal
from schemas.kinds import AlertKind, DeviceType
from schemas.records import DeviceEvent, DeviceInfo, MeterSample, Record, StatusReport

SNAPSHOT_VERSION = 1
Logic = MeterLogic | SmokeLogic | CallLogic
# Kinds of state and timer, keyed by the plain id: the ``dev:<id>``/``hh:<id>`` strings exist only in
# snapshots (a key string per device in every set and timer would cost ~100 B of memory per device,
# and formatting them on every record was measurable).
DEV, HH = "dev", "hh"
log = logging.getLogger(__name__)
_BAD_SNAPSHOT = (KeyError, TypeError, ValueError, IndexError, AttributeError)


_device_time = attrgetter("ts")
# Resolved alerts after which the inactivity windows count afresh (MeterLogic.rearm).
_REARMING = frozenset({AlertKind.INACTIVITY, AlertKind.ROUTINE_MISSED})
_device_id = attrgetter("device_id")
# Bulk attempts per meter and call: after each, the reading that ended it is applied on its own.
BATCH_TRIES = 4


def _latest(records: list[Record]) -> datetime:
    """The newest receive time (a comprehension: attrgetter through map costs twice as much)."""
    return max([record.received_at for record in records])


def _checked(state: Any) -> dict[str, Any]:
    """The snapshot if its version is one this code reads (fields added later default on restore)."""
    if not isinstance(state, dict) or state.get("v") != SNAPSHOT_VERSION:
        raise ValueError(f"snapshot version {state.get('v') if isinstance(state, dict) else type(state)!r}")
    return state


# Stale timer entries the heap may carry beyond twice the live ones before it is rebuilt.
_HEAP_SLACK = 1024


class _Household:
    __slots__ = ("devices", "health", "held", "view")

    def __init__(
        self, household_id: str, cfg: DetectorSuiteConfig, view: HouseholdView, state: dict[str, Any] | None = None
    ) -> None:
        s = state or {}
        # Households without settings share the engine's default view (memory: one per fleet).
        self.view = view
        self.health = HouseholdHealth(household_id, cfg.health, s.get("health"))
        self.held = HeldFindings(s.get("held"))
        # A tuple, not a set or list: a home has a handful of devices, rarely changed, and a set costs
        # 216 B even for one (a list 88 B with its spare room, a tuple of one 48 B).
        self.devices: tuple[str, ...] = ()

    def add(self, device_id: str) -> None:
        if device_id not in self.devices:
            self.devices = (*self.devices, device_id)

    def discard(self, device_id: str) -> None:
        self.devices = tuple(d for d in self.devices if d != device_id)


class Engine:
    """All detectors for a fleet. Not thread-safe: one engine per worker (shard by household)."""

    def __init__(
        self,
        config: DetectorSuiteConfig,
        snapshots: Mapping[str, dict[str, Any]] | None = None,
        *,
        batch_path: bool = True,
    ) -> None:
        self._cfg = config
        # The silence rule needs the personal backstop's window (detectors/silence.py).
        self._silence_on = config.silence.enabled and any(r.enabled and r.personal for r in config.flat_rules)
        # A meter's run of readings in one call goes through the bulk path (detectors/meter_batch.py)
        # where nothing fires; False keeps every reading on the per-reading path (the reference).
        self._batch_path = batch_path
        # Readings applied in bulk so far (for tests and benchmarks: proof that the path ran).
        self.batch_readings = 0
        # Of those, applied by the fleet path (detectors/meter_fleet.py), many meters at once.
        self.fleet_readings = 0
        self._devices: dict[str, DeviceInfo] = {}
        self._health: dict[str, DeviceHealth] = {}
        self._logic: dict[str, Logic] = {}
        self._households: dict[str, _Household] = {}
        self._default_view = HouseholdView(HouseholdSettings())
        # Timers: (due, kind, id) entries; an entry is live while ``_due[kind][id]`` still equals its due.
        self._heap: list[tuple[float, str, str]] = []
        self._due: dict[str, dict[str, float]] = {DEV: {}, HH: {}}
        self._dirty: dict[str, set[str]] = {DEV: set(), HH: set()}
        # Registered devices not heard from yet and not watched yet: the next tick starts their clock.
        self._unwatched: set[str] = set()
        # A snapshot another version wrote in a shape this one cannot read starts that key fresh
        # (logged): the device is re-registered by the runner and relearns; detection never stops.
        for key, state in (snapshots or {}).items():
            if key.startswith("hh:"):
                try:
                    self._households[key[3:]] = _Household(key[3:], config, self._default_view, _checked(state))
                except _BAD_SNAPSHOT as exc:
                    log.warning("snapshot %s unreadable (%r); starting that household fresh", key, exc)
        for key, state in (snapshots or {}).items():
            if key.startswith("dev:"):
                try:
                    self._restore_device(_checked(state))
                except _BAD_SNAPSHOT as exc:
                    self._forget(key[4:])
                    log.warning("snapshot %s unreadable (%r); starting that device fresh", key, exc)

    # Registry and settings --------------------------------------------------------------------
    def upsert_device(self, device: DeviceInfo) -> None:
        old = self._devices.get(device.device_id)
        if old == device:
            return
        if old is None or old.device_type != device.device_type:
            self._health[device.device_id] = DeviceHealth(device, self._cfg.health)
            self._logic[device.device_id] = self._build(device, None)
        else:
            self._health[device.device_id].device = device
            self._logic[device.device_id].device = device
            if old.household_id != device.household_id:
                self._household(old.household_id).discard(device.device_id)
        self._devices[device.device_id] = device
        self._household(device.household_id).add(device.device_id)
        self._dirty[DEV].add(device.device_id)
        self._watch_if_silent(device.device_id)
        self._schedule_device(device.device_id)

    def _watch_if_silent(self, device_id: str) -> None:
        health = self._health[device_id]
        if health.last_heard is None and health.watch_from is None:
            self._unwatched.add(device_id)

    def remove_device(self, device_id: str) -> None:
        """Forget a decommissioned device (its snapshot key should be deleted by the caller)."""
        self._forget(device_id)

    def _forget(self, device_id: str) -> None:
        device = self._devices.pop(device_id, None)
        self._health.pop(device_id, None)
        self._logic.pop(device_id, None)
        self._due[DEV].pop(device_id, None)
        if device is not None:
            self._household(device.household_id).discard(device_id)

    def set_household(self, household_id: str, settings: HouseholdSettings) -> None:
        household = self._household(household_id)
        household.view = HouseholdView(settings)
        # The silence rule's deadline follows the settings (the check-in lead, away periods).
        for device_id in household.devices:
            self._schedule_device(device_id)

    def alert_closed(self, closure: AlertClosure) -> None:
        """An alert of the household was resolved: drop the latches that raised it, so they cannot hide
        the next incident (docs/detectors.md lists every latch and what ends it). Idempotent: applying a
        closure again changes nothing, so the runner may re-read closures after a restart."""
        household = self._households.get(closure.household_id)
        if household is None:
            return
        t = epoch(closure.closed_at)
        for device_id in household.devices:
            logic = self._logic.get(device_id)
            # An inactivity (backstop, program rule, "cannot confirm") or routine alert resolved: the
            # resident was confirmed fine then, so every inactivity window counts afresh from there.
            if closure.kind in _REARMING and isinstance(logic, MeterLogic):
                logic.rearm(t)
                self._schedule_device(device_id)
            elif closure.kind is AlertKind.MAINTENANCE and isinstance(logic, SmokeLogic):
                logic.close_maintenance()
            else:
                continue
            self._dirty[DEV].add(device_id)

    # Records -------------------------------------------------------------------------------------
    def process(self, records: Sequence[Record]) -> list[Finding]:
        """Apply committed records; return the findings they reveal (device-time evaluated)."""
        by_device: dict[str, list[Record]] = {}
        # Uploads arrive device by device (a daily batch is one meter's run): grouped runs, not records.
        for device_id, run in groupby(records, _device_id):
            found = by_device.get(device_id)
            if found is None:
                by_device[device_id] = list(run)
            else:
                found.extend(run)
        # Sorted by device time only where needed: the fleet path takes uploads already in order and
        # leaves the others (and whatever it did not apply) to be sorted here.
        applied = self._apply_fleet(by_device) if self._batch_path else {}
        out: list[Finding] = []
        for device_id, recs in by_device.items():
            start = applied.get(device_id, 0)
            if start == len(recs):
                continue  # done by _apply_fleet
            recs.sort(key=_device_time)
            # Looked up once per device and call, not per record (this is the per-reading path).
            device = self._devices.get(device_id) or self._infer_device(recs[0])
            household = self._household(device.household_id)
            health, logic = self._health[device_id], self._logic[device_id]
            self._dirty[DEV].add(device_id)
            self._dirty[HH].add(device.household_id)
            if self._batch_path and isinstance(logic, MeterLogic) and len(recs) - start >= BATCH_MIN:
                start = self._apply_bulk(recs, start, household, health, logic, out)
            for record in recs[start:] if start else recs:
                out.extend(self._apply(record, household, health, logic))
            self._schedule_device(device_id)
        return self._hold_quiet(out)

    def _apply_fleet(self, by_device: dict[str, list[Record]]) -> dict[str, int]:
        """Apply the uneventful local days of every meter's upload in this call at once
        (:mod:`detectors.meter_fleet`); how many readings of each were applied. A meter whose upload was
        applied whole is done here (state marked changed, silence timer moved)."""
        meters: list[tuple[str, MeterLogic, list[Record], HouseholdView, DeviceHealth]] = []
        # A household with other records in this call is left to the device-by-device order: a Last
        # Will names the household's devices heard lately, so the order of hearing them matters there
        # (apply_fleet adds the households of meters with a status report in the call).
        others: set[str] = set()
        for device_id, recs in by_device.items():
            device = self._devices.get(device_id)
            if device is None:
                continue
            logic, health = self._logic[device_id], self._health[device_id]
            if isinstance(logic, MeterLogic) and len(recs) >= BATCH_MIN and health.offline_since is None:
                meters.append((device_id, logic, recs, self._household(device.household_id).view, health))
            elif not isinstance(logic, MeterLogic) or set(map(type, recs)) != {MeterSample}:
                others.add(device.household_id)
        if not meters:
            return {}
        applied: dict[str, int] = {}
        dirty_devices, dirty_households = self._dirty[DEV], self._dirty[HH]
        results = apply_fleet([(logic, recs, view) for _, logic, recs, view, _ in meters], others)
        for (device_id, logic, recs, _, health), (done, latest) in zip(meters, results, strict=True):
            if done:
                self._heard_in_bulk(health, latest if latest is not None else _latest(recs[:done]), done)
                self.fleet_readings += done
                applied[device_id] = done
                if done == len(recs):
                    dirty_devices.add(device_id)
                    dirty_households.add(logic.device.household_id)
                    self._schedule_device(device_id)
        return applied

    def _apply_bulk(
        self,
        recs: list[Record],
        i: int,
        household: _Household,
        health: DeviceHealth,
        logic: MeterLogic,
        out: list[Finding],
    ) -> int:
        """Apply a meter's readings from ``recs[i]`` on in bulk where nothing fires, and each reading
        where something may fire one by one; return how many were applied (the caller applies the rest
        one by one)."""
        n = len(recs)
        for _ in range(BATCH_TRIES):
            if n - i < BATCH_MIN:
                break
            # An offline device's first reading brings it back (a finding): that one goes one by one.
            done = (
                0 if health.offline_since is not None else apply_prefix(logic, recs[i:] if i else recs, household.view)
            )
            if done:
                self._heard_in_bulk(health, _latest(recs[i : i + done]), done)
                i += done
            if i < n:
                out.extend(self._apply(recs[i], household, health, logic))
                i += 1
        return i

    def _heard_in_bulk(self, health: DeviceHealth, latest: datetime, count: int) -> None:
        # What DeviceHealth.heard for each of ``count`` readings received by ``latest`` amounts to for a
        # device that is online.
        health.heard(epoch(latest))
        self.batch_readings += count

    def _apply(self, record: Record, household: _Household, health: DeviceHealth, logic: Logic) -> list[Finding]:
        view = household.view
        now = epoch(record.received_at)
        out: list[Finding] = []
        if isinstance(record, StatusReport) and not record.online:
            if health.offline_since is None:
                last = health.last_heard
                since = min(now, max(epoch(record.ts), last if last is not None else epoch(record.ts)))
                out.extend(
                    household.health.device_offline(health, since, now, "last_will", self._peers(household), view)
                )
            return out
        if health.heard(now):
            out.extend(household.health.device_back(health, now, view))
        if isinstance(record, StatusReport):
            out.extend(health.on_status(record, view))
        elif isinstance(record, MeterSample) and isinstance(logic, MeterLogic):
            out.extend(logic.on_reading(record, view))
        elif isinstance(record, DeviceEvent) and isinstance(logic, SmokeLogic | CallLogic):
            found = logic.on_event(record, view)
            for f in found:
                if f.action is FindingAction.PRESENCE:
                    self._sign_of_life(household, f)
            out.extend(found)
        return out

    def _sign_of_life(self, household: _Household, sign: Finding) -> None:
        """A press or a smoke alarm pressed: a sign of life for every meter of the household."""
        t, signal = epoch(sign.at), PresenceSignal(sign.details["signal"])
        for device_id in household.devices:
            logic = self._logic.get(device_id)
            if isinstance(logic, MeterLogic):
                logic.sign_of_life(t, signal, sign.device_id or "", household.view)
                self._dirty[DEV].add(device_id)
                self._schedule_device(device_id)

    # Timers ----------------------------------------------------------------------------------------
    def tick(self, now: datetime) -> list[Finding]:
        """Run every timer due at or before ``now`` (processing time)."""
        t_now = epoch(now)
        out: list[Finding] = []
        released: list[Finding] = []  # already held once: never held again
        for device_id in sorted(self._unwatched):
            health = self._health.get(device_id)
            if health is not None and health.last_heard is None and health.watch_from is None:
                health.watch_from = t_now
                self._dirty[DEV].add(device_id)
                self._schedule_device(device_id)
        self._unwatched.clear()
        while self._heap and self._heap[0][0] <= t_now:
            due, kind, ident = heapq.heappop(self._heap)
            if self._due[kind].get(ident) != due:
                continue  # superseded by a later schedule
            del self._due[kind][ident]
            self._dirty[kind].add(ident)
            if kind == DEV:
                out.extend(self._device_timer(ident, t_now))
            else:
                released.extend(self._household(ident).held.release(t_now))
                self._schedule_household(ident)
        return self._hold_quiet(out) + released

    def next_timer(self) -> datetime | None:
        while self._heap and self._due[self._heap[0][1]].get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return to_dt(self._heap[0][0]) if self._heap else None

    def _device_timer(self, device_id: str, now: float) -> list[Finding]:
        health = self._health.get(device_id)
        if health is None:
            return []
        household = self._household(health.device.household_id)
        out: list[Finding] = []
        due = health.next_timer()
        if due is not None and due <= now:
            self._dirty[HH].add(health.device.household_id)
            if health.last_heard is None:
                since, reason = health.watch_from if health.watch_from is not None else now, "never_heard"
            else:
                since, reason = health.last_heard, "silent"
            view = household.view
            out = household.health.device_offline(health, since, now, reason, self._peers(household), view)
        deadline = None
        if self._silence_on and isinstance(self._logic.get(device_id), MeterLogic):
            # The meter's gate passed (it is silent): the household's own deadline, raised or kept.
            deadline = self._silence(household, now, out)
        due = health.next_timer()
        self._schedule(DEV, device_id, deadline if due is None else due if deadline is None else min(due, deadline))
        return out

    def _meters(self, household: _Household) -> list[tuple[MeterLogic, DeviceHealth]]:
        out = []
        for device_id in household.devices:
            logic = self._logic.get(device_id)
            if isinstance(logic, MeterLogic):
                out.append((logic, self._health[device_id]))
        return out

    def _silence(self, household: _Household, now: float, out: list[Finding]) -> float | None:
        """The silence rule (detectors/silence.py): raised into ``out`` when due (then None), else its
        deadline (None: it cannot raise now)."""
        meters = self._meters(household)
        due = silence_due(meters, household.view, self._cfg)
        if due is None or due > now:
            return due
        out.extend(raise_silence(meters, self._peers(household), now, household.view, self._cfg))
        for logic, _ in meters:
            self._dirty[DEV].add(logic.device.device_id)
            self._schedule_device(logic.device.device_id)
        return None

    def _schedule(self, kind: str, ident: str, due: float | None) -> None:
        scheduled = self._due[kind]
        if due is None:
            scheduled.pop(ident, None)
        elif scheduled.get(ident) != due:
            scheduled[ident] = due
            heapq.heappush(self._heap, (due, kind, ident))
            self._compact_heap()

    def _compact_heap(self) -> None:
        """Drop the heap's stale entries once they outnumber the live ones.

        Rescheduling pushes a new entry and leaves the old one to be skipped when it comes due, which
        for a timer hours ahead is hours later: every reading moves its meter's timer, so without this the
        heap grew by every reading (measured in bench/soak.py: ~140 entries a second at 3,000
        messages/s). Rebuilding from ``_due`` keeps exactly the live timers, so what pops, and when, is
        unchanged."""
        live = sum(len(scheduled) for scheduled in self._due.values())
        if len(self._heap) > 2 * live + _HEAP_SLACK:
            self._heap = [
                (due, kind, ident) for kind, scheduled in self._due.items() for ident, due in scheduled.items()
            ]
            heapq.heapify(self._heap)

    def _schedule_device(self, device_id: str) -> None:
        """A device's timer: its silence deadline, and for a meter also the silence rule's *gate*, the
        moment it is silent (a lower bound of the rule's deadline, which depends on the household and is
        worked out only then: this runs after every call)."""
        health = self._health.get(device_id)
        if health is None:
            self._schedule(DEV, device_id, None)
            return
        due = health.next_timer()
        if self._silence_on:
            logic = self._logic.get(device_id)
            if isinstance(logic, MeterLogic):
                gate = silence_gate(logic, health, self._cfg.silence)
                if gate is not None and (due is None or gate < due):
                    due = gate
        self._schedule(DEV, device_id, due)

    def _schedule_household(self, household_id: str) -> None:
        self._schedule(HH, household_id, self._household(household_id).held.next_timer())

    def _hold_quiet(self, findings: list[Finding]) -> list[Finding]:
        """Hold low-severity findings raised inside a household's quiet window until it ends."""
        out: list[Finding] = []
        for f in findings:
            household = self._households.get(f.household_id)
            if household is not None and household.held.hold(f, household.view):
                self._dirty[HH].add(f.household_id)
                self._schedule_household(f.household_id)
            else:
                out.append(f)
        return out

    # Snapshots ---------------------------------------------------------------------------------------
    def snapshots(self) -> dict[str, dict[str, Any]]:
        """JSON-serialisable state of every key changed since the previous call."""
        out: dict[str, dict[str, Any]] = {}
        for ident in sorted(self._dirty[DEV]):
            if ident in self._devices:
                d = self._devices[ident]
                out[f"{DEV}:{ident}"] = {
                    "v": SNAPSHOT_VERSION,
                    "info": [d.device_id, d.device_type.value, d.household_id, d.expected_interval_s],
                    "health": self._health[ident].snapshot(),
                    "logic": self._logic[ident].snapshot(),
                }
        for ident in sorted(self._dirty[HH]):
            if ident in self._households:
                h = self._households[ident]
                out[f"{HH}:{ident}"] = {"v": SNAPSHOT_VERSION, "health": h.health.snapshot(), "held": h.held.snapshot()}
        for dirty in self._dirty.values():
            dirty.clear()
        return out

    def all_snapshots(self) -> dict[str, dict[str, Any]]:
        """Every key's state (for measurement and for a full checkpoint)."""
        self._dirty[DEV].update(self._devices)
        self._dirty[HH].update(self._households)
        return self.snapshots()

    def _restore_device(self, state: dict[str, Any]) -> None:
        device_id, device_type, household_id, interval = state["info"]
        device = DeviceInfo(device_id, DeviceType(device_type), household_id, int(interval))
        self._devices[device_id] = device
        self._health[device_id] = DeviceHealth(device, self._cfg.health, state.get("health"))
        self._logic[device_id] = self._build(device, state.get("logic"))
        self._household(household_id).add(device_id)
        self._watch_if_silent(device_id)
        self._schedule_device(device_id)
        self._schedule_household(household_id)

    # Helpers ---------------------------------------------------------------------------------------------
    def _build(self, device: DeviceInfo, state: dict[str, Any] | None) -> Logic:
        if device.device_type is DeviceType.WATER_METER:
            return MeterLogic(device, self._cfg, state)
        if device.device_type is DeviceType.SMOKE_ALARM:
            return SmokeLogic(device, self._cfg.events, state)
        return CallLogic(device, self._cfg.events, state)

    def _infer_device(self, record: Record) -> DeviceInfo:
        # Ingest only commits records of registered devices; if the registry update has not reached
        # us yet, infer the type and leave silence unmonitored (interval 0) until upsert_device.
        device_type = DeviceType.WATER_METER if isinstance(record, MeterSample) else record.device_type
        device = DeviceInfo(record.device_id, device_type, record.household_id, 0)
        self.upsert_device(device)
        return device

    def _household(self, household_id: str) -> _Household:
        found = self._households.get(household_id)
        if found is None:
            found = self._households[household_id] = _Household(household_id, self._cfg, self._default_view)
        return found

    def _peers(self, household: _Household) -> list[DeviceHealth]:
        return [self._health[d] for d in sorted(household.devices) if d in self._health]
