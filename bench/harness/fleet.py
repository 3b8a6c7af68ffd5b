"""A device fleet over MQTT QoS 1 that remembers every PUBACK, with incidents from the simulator's ground truth.

Meters publish readings round-robin at ``rate`` per second (changeable while running: a burst); each
reading has its meter's next ``seq``, so ``(device, seq)`` names one message. Incidents (an ``sos``
press, a smoke alarm) are placed with ``simulator.scenarios`` and published with the simulator's payload
encoders; each becomes a ``TruthRecord`` carrying the alert carewatch must raise. Every client uses a
persistent session (``clean_session=False``) and an unbounded outgoing queue, so what the broker has
not acknowledged is resent after a reconnect, as a device's firmware does; ``acked`` is exactly the set
of messages the broker took responsibility for, which is what "nothing is lost" is measured against.
"""

from __future__ import annotations

import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simulator import payloads
from simulator.scenarios import Incident, ScenarioKind, TruthRecord, incident_truth

# The incidents that must page at once, by the device slot that reports them and its event.
INCIDENT_DEVICES: dict[ScenarioKind, tuple[str, str]] = {
    ScenarioKind.EMERGENCY_PRESS: ("b", "sos"),
    ScenarioKind.FIRE: ("s", "alarm"),
}


class Fleet:
    """Meters at a steady (or bursting) rate and incidents, QoS 1 with persistent sessions."""

    def __init__(self, *, port: int, topic_root: str, meters: int, rate: float) -> None:
        self._port, self._root = port, topic_root
        self._meters = meters
        self.rate = rate
        self.acked: set[tuple[str, int]] = set()
        self.published = 0
        self.truths: list[TruthRecord] = []
        self.pressed: dict[str, float] = {}  # household → sos publish time (unix), for latency
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, int], tuple[str, int]] = {}
        self._early: set[tuple[int, int]] = set()
        self._stop = threading.Event()
        tag = uuid.uuid4().hex[:6]
        self._load = self._client(f"bench-load-{tag}", 0)
        self._events = self._client(f"bench-events-{tag}", 1)
        self._thread = threading.Thread(target=self._run_load, name="fleet-load", daemon=True)

    def _client(self, client_id: str, index: int) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]  # paho's stub says int; it sleeps a float
        client.on_publish = lambda c, u, mid, rc, props: self._on_publish(index, mid)
        client.connect("127.0.0.1", self._port)
        client.loop_start()
        return client

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _on_publish(self, index: int, mid: int) -> None:
        with self._lock:
            key = self._pending.pop((index, mid), None)
            if key is not None:
                self.acked.add(key)
            else:  # acknowledged before publish() returned its mid
                self._early.add((index, mid))

    def _publish(self, index: int, client: mqtt.Client, topic: str, payload: bytes, key: tuple[str, int]) -> None:
        # Never hold our lock inside paho: its network thread calls _on_publish under paho's own locks.
        info = client.publish(topic, payload, qos=1)
        with self._lock:
            self.published += 1
            if (index, info.mid) in self._early:
                self._early.discard((index, info.mid))
                self.acked.add(key)
            else:
                self._pending[(index, info.mid)] = key

    def start(self) -> None:
        self._thread.start()

    def _run_load(self) -> None:
        registers, seqs = [1000.0] * self._meters, [0] * self._meters
        sent, last, due = 0, time.monotonic(), 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            due += (now - last) * self.rate  # the rate may change while we run (a burst)
            last = now
            while sent < int(due):
                meter = sent % self._meters
                seqs[meter] += 1
                registers[meter] += 0.1
                body = payloads.meter_reading(int(time.time() * 1000), seqs[meter], registers[meter])
                topic = f"{self._root}/dev/m-{meter}/telemetry"
                self._publish(0, self._load, topic, body, (f"m-{meter}", seqs[meter]))
                sent += 1
            time.sleep(0.01)

    def incident(self, index: int, kind: ScenarioKind) -> TruthRecord:
        """Publish incident number ``index`` (home ``hh-{index}``) now; returns its ground truth."""
        slot, event = INCIDENT_DEVICES[kind]
        now_ms = int(time.time() * 1000)
        placed = Incident(kind=kind, home=index, start_ms=now_ms, end_ms=now_ms, device=slot)
        truth = incident_truth(placed, f"hh-{index}", f"{slot}-{index}")
        with self._lock:
            self.truths.append(truth)
        body = payloads.event(now_ms, 1, event)
        self._publish(1, self._events, f"{self._root}/dev/{slot}-{index}/event", body, (f"{slot}-{index}", 1))
        return truth

    def press(self, home: int) -> None:
        """An ``sos`` press in household ``hh-{home}`` now (bench/failover.py measures its latency)."""
        self.pressed[f"hh-{home}"] = time.time()
        self.incident(home, ScenarioKind.EMERGENCY_PRESS)

    def stop_load(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def close(self, timeout_s: float = 60.0) -> None:
        """Stop publishing, wait until the broker acknowledged everything (paho resends), disconnect."""
        self.stop_load()
        deadline = time.monotonic() + timeout_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.2)
        for client in (self._load, self._events):
            client.disconnect()
            client.loop_stop()

    stop = close
