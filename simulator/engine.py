"""One home's devices turned into messages, window by window of simulated time.

Design: every device owns a heap of scheduled items ``(t_ms, order, kind, data)``. When simulated time
first enters a local day, ``HomeRun`` plans that day (resident routine, water, register samples,
heartbeats, alarm and button events; see ``simulator.schedule``) and pushes its items; incident items
(a fire, an SOS, a Last Will, a reconnect) are pushed once, up front. ``emit(w0, w1)`` pops every item
due before ``w1`` and encodes it with the device's next ``seq``. Because items only depend on the seed
and the day, the output does not depend on the window size, and a home can be generated alone (which
is how the load benchmark shards a fleet across processes).

Silences (device offline, battery death, whole-home outage, meter swap) are applied at emission: while
a device is silent it publishes nothing; a meter that still has power keeps storing its interval
readings and uploads them as one late batch when it comes back, which is exactly the "no data is not
no water" case carewatch must handle. The broker would publish a device's Last Will about 1.5 keep-alive
periods after it falls silent; in connection-sharing mode the simulator publishes that message itself.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Any

from schemas.kinds import AlertKind
from simulator import payloads
from simulator.devices import Home, SimDevice
from simulator.payloads import SimMessage
from simulator.scenarios import Incident, ScenarioKind, TruthRecord
from simulator.schedule import DayContext, schedule_day
from simulator.timefmt import MINUTE_MS, SECOND_MS, local_day

WILL_DELAY_MS = 90 * SECOND_MS
# carewatch's maintenance notice levels (``detectors.config.HealthConfig`` defaults, docs/detectors.md).
WEAK_SIGNAL_DBM = -110
LOW_BATTERY_NOTICE_PCT = 20
MAX_BATCH = 1440


@dataclass(slots=True)
class Silence:
    start_ms: int
    end_ms: int
    # Whether a meter keeps storing readings (network gone) or not (no power).
    stores: bool


@dataclass(slots=True)
class DeviceRun:
    """Mutable per-device state during a run."""

    device: SimDevice
    telemetry_topic: str
    event_topic: str
    status_topic: str
    seq: int
    battery: float
    # Items before the run's start are never published, so they are not even queued.
    start_ms: int
    silences: list[Silence] = field(default_factory=list)
    heap: list[tuple[int, int, str, Any]] = field(default_factory=list)
    pushed: int = 0
    store: list[tuple[int, float]] = field(default_factory=list)
    # A meter's register samples for the planned days, fed to the heap a window at a time (a whole
    # day of samples for 100,000 meters would not fit in the heaps comfortably).
    readings: list[tuple[int, float]] = field(default_factory=list)
    cursor: int = 0
    # Heartbeat payload tail, rebuilt only when the battery percentage changes.
    tail: str = ""
    tail_battery: int = -1

    def push(self, t_ms: int, kind: str, data: Any = None) -> None:
        if t_ms < self.start_ms:
            return
        self.pushed += 1
        heapq.heappush(self.heap, (t_ms, self.pushed, kind, data))

    def silent_at(self, t_ms: int) -> Silence | None:
        for silence in self.silences:
            if silence.start_ms <= t_ms < silence.end_ms:
                return silence
        return None


class HomeRun:
    """Generates one home's messages in time order; see the module docstring."""

    def __init__(
        self,
        home: Home,
        *,
        seed: int,
        start_ms: int,
        end_ms: int,
        root: str,
        incidents: list[Incident],
        truth: list[TruthRecord],
    ) -> None:
        self.home = home
        self.seed = seed
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.truth = truth
        rng = random.Random(f"{seed}/run/{home.index}")
        self.devices = {
            d.slot: DeviceRun(
                device=d,
                telemetry_topic=d.topic(root, "telemetry"),
                event_topic=d.topic(root, "event"),
                status_topic=d.topic(root, "status"),
                seq=rng.randrange(2**32),
                battery=d.battery_pct,
                start_ms=start_ms,
            )
            for d in home.devices
        }
        self.context = DayContext(
            seed=seed,
            home=home,
            devices=self.devices,
            register_l=rng.uniform(20_000.0, 900_000.0),
            suppressed=[(i.start_ms, i.end_ms) for i in incidents if i.kind in _STILL],
            flows=[
                (i.start_ms, i.end_ms, i.rate_l_per_h / 3_600_000)
                for i in incidents
                if i.kind in (ScenarioKind.TAP_LEFT_RUNNING, ScenarioKind.LEAK)
            ],
            resets=[],
            truth=truth,
            start_ms=start_ms,
            end_ms=end_ms,
        )
        self.day = local_day(start_ms) - 1
        for incident in incidents:
            self._inject(incident)
        for run in self.devices.values():
            # Devices come online at the start, staggered over a minute: a retained status each.
            run.push(start_ms + (run.device.ordinal * 7919) % MINUTE_MS, "status")
            self._notice_truth(run)

    def _inject(self, incident: Incident) -> None:
        kind, s, e = incident.kind, incident.start_ms, incident.end_ms
        target = self.devices.get(incident.device or "")
        if kind is ScenarioKind.FIRE:
            smoke = target if target is not None and target.device.slot.startswith("sa") else self.devices["sa1"]
            smoke.push(s, "smoke_alarm")
            smoke.push(max(e, s + 1), "smoke_alarm_cleared")
        elif kind is ScenarioKind.EMERGENCY_PRESS:
            self.devices["cb"].push(s, "call_sos", (None, None))
        elif kind is ScenarioKind.DEVICE_OFFLINE and target is not None:
            self._silence(target, s, e, stores=True)
        elif kind is ScenarioKind.HOME_OUTAGE:
            for run in self.devices.values():
                self._silence(run, s, e, stores=True)
        elif kind is ScenarioKind.BATTERY_DEATH and target is not None:
            target.push(s, "battery_dying")
            # The 2 % status (and an alarm's chirp) is a maintenance notice before the device goes silent.
            self.truth.append(
                TruthRecord(
                    "routine",
                    "low_battery",
                    self.home.household_id,
                    s,
                    s,
                    AlertKind.MAINTENANCE,
                    target.device.device_id,
                    {"battery_pct": 2, "incident": kind.value},
                )
            )
            if target.device.slot.startswith("sa"):
                target.push(s + 1, "smoke_low_battery")
            self._silence(target, s + 2 * 3600 * SECOND_MS, e, stores=False, battery_swap=True)
            if target.device.slot == "wm":
                self.context.resets.append(e)
        elif kind is ScenarioKind.METER_SWAP:
            meter = self.devices["wm"]
            # A technician's planned swap: the old meter signs off cleanly (DISCONNECT), so no Last Will.
            self._silence(meter, s, e, stores=False, will=False)
            self.context.resets.append(s)

    def _notice_truth(self, run: DeviceRun) -> None:
        """Routine truth for what the very first status already shows: a weak signal or a low battery.

        carewatch raises a low-severity MAINTENANCE notice for either (``docs/detectors.md``), so the
        ground truth must account for it even in a run too short for a ``low_battery`` chirp.
        """
        device, at, notice = run.device, self.start_ms, AlertKind.MAINTENANCE
        household = self.home.household_id
        if device.rssi_dbm <= WEAK_SIGNAL_DBM:
            detail: dict[str, object] = {"rssi_dbm": device.rssi_dbm}
            self.truth.append(
                TruthRecord("routine", "weak_signal", household, at, at, notice, device.device_id, detail)
            )
        if int(run.battery) <= LOW_BATTERY_NOTICE_PCT:
            detail = {"battery_pct": int(run.battery)}
            self.truth.append(
                TruthRecord("routine", "low_battery_status", household, at, at, notice, device.device_id, detail)
            )

    def _silence(
        self, run: DeviceRun, s: int, e: int, *, stores: bool, battery_swap: bool = False, will: bool = True
    ) -> None:
        run.silences.append(Silence(s, e, stores))
        if will:
            run.push(s + WILL_DELAY_MS, "will")
        run.push(e, "status_back", battery_swap)
        if run.device.slot == "wm":
            run.push(e + 70 * SECOND_MS, "upload_backlog")

    def emit(self, w0: int, w1: int, out: list[SimMessage]) -> None:
        """Append every message due in ``[w0, w1)`` to ``out`` (the caller sorts across homes)."""
        while local_day(w1 - 1) > self.day:
            self.day += 1
            schedule_day(self.context, self.day)
        for run in self.devices.values():
            heap = run.heap
            if run.readings:
                self._feed_readings(run, w1)
            while heap and heap[0][0] < w1:
                t, _, kind, data = heapq.heappop(heap)
                if t < self.end_ms:
                    self._emit_item(run, t, kind, data, out)

    @staticmethod
    def _feed_readings(run: DeviceRun, w1: int) -> None:
        readings, i = run.readings, run.cursor
        stores = run.device.meter_mode != "live"
        while i < len(readings) and readings[i][0] < w1:
            if readings[i][0] >= run.start_ms:
                run.push(readings[i][0], "reading", readings[i])
            elif stores:
                # Readings before the start still fill a batched meter's store: its first upload is full.
                run.store.append(readings[i])
            i += 1
        if i == len(readings):
            run.readings, run.cursor = [], 0
        else:
            run.cursor = i

    def _emit_item(self, run: DeviceRun, t: int, kind: str, data: Any, out: list[SimMessage]) -> None:
        device = run.device
        silence = run.silent_at(t) if run.silences else None
        if silence is not None and kind not in ("will", "status_back"):
            if kind == "reading" and silence.stores:
                run.store.append(data)
            return
        if kind == "reading":
            if device.meter_mode == "live":
                self._out(run, t, payloads.meter_reading(t, run.seq, data[1]), "meter_reading", out)
            else:
                run.store.append(data)
        elif kind in ("upload", "upload_backlog"):
            while run.store:
                chunk, run.store = run.store[:MAX_BATCH], run.store[MAX_BATCH:]
                self._out(run, t, payloads.meter_batch(t, run.seq, chunk), "meter_batch", out)
        elif kind in ("status", "status_back", "battery_dying", "will"):
            self._status(run, t, kind, data, out)
        elif kind.startswith(("smoke_", "call_")):
            note, truth = data if data is not None else (None, None)
            event = kind.partition("_")[2]
            self._out(run, t, payloads.event(t, run.seq, event, note), kind, out, channel="event")
            if truth is not None:
                self.truth.append(truth)

    def _status(self, run: DeviceRun, t: int, kind: str, data: Any, out: list[SimMessage]) -> None:
        device = run.device
        epoch = device.meter_mode is not None
        if kind == "will":
            payload = payloads.status(t, run.seq, online=False, epoch=epoch)
            self._out(run, t, payload, "will", out, channel="status")
            return
        if kind == "battery_dying":
            run.battery = 2.0
        elif kind == "status_back" and data:
            # A battery swap (after a battery death, or routine maintenance).
            run.battery = 100.0
            if isinstance(data, TruthRecord):
                self.truth.append(data)
        battery = max(0, min(100, int(run.battery)))
        if battery != run.tail_battery:
            run.tail = payloads.status_tail(battery_pct=battery, rssi_dbm=device.rssi_dbm, fw=device.fw)
            run.tail_battery = battery
        self._out(run, t, payloads.heartbeat(t, run.seq, epoch=epoch, tail=run.tail), "status", out, channel="status")

    @staticmethod
    def _out(
        run: DeviceRun, t: int, payload: bytes, kind: str, out: list[SimMessage], channel: str = "telemetry"
    ) -> None:
        if channel == "telemetry":
            topic = run.telemetry_topic
        elif channel == "event":
            topic = run.event_topic
        else:
            topic = run.status_topic
        out.append(SimMessage(topic, payload, t, kind, channel == "status"))
        run.seq = (run.seq + 1) & 0xFFFFFFFF


# Incidents during which the resident does nothing at all: no water, no presses, no cooking.
_STILL = (ScenarioKind.FALL, ScenarioKind.AWAY_TRIP)
