"""Faults: the bad data a real fleet sends, injected into a clean message stream.

``apply_faults`` wraps the stream of a simulation. With probability ``rate`` per message it applies
one fault kind that fits the message; separately, a fraction of devices have a skewed clock for the
whole run. Faults never remove a good message (an SOS must still arrive for its scenario to be
scored); they add bad ones or move good ones later. The one exception is opt-in (``--lossy-meters``): a
share of water meters loses transmissions in runs, as real NB-IoT meters do (``simulator/loss.py``).
The per-message faults:

- ``duplicate``: the same message again, 0.2-30 s later (a QoS 1 redelivery);
- ``reorder``: a telemetry/status message held back past the device's next one;
- ``late_batch``: an NB-IoT batch delivered 2-26 hours late;
- ``clock_skew``: every ``ts`` of a device shifted by 30 s to 2 h, either way;
- ``malformed``: an extra payload that is truncated JSON, not an object, not UTF-8, missing ``ts``,
  of the wrong type, non-finite, or out of range;
- ``wrong_device_topic``: the payload also sent on another device's topic (shape mismatch), an unknown
  device's topic, or an unknown channel;
- ``oversized``: an extra payload past the 16 KiB limit;
- ``burst``: the message repeated 50-300 times within seconds (firmware stuck retransmitting).

Each fault is written to the ground truth (category ``fault``) with the reject reason we expect
(``schemas.kinds.RejectReason`` values), so ingest can be scored as well as the detectors.
"""

from __future__ import annotations

import heapq
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from schemas.device import MAX_PAYLOAD_BYTES
from schemas.kinds import RejectReason
from simulator.devices import SimDevice
from simulator.loss import lose_transmissions
from simulator.payloads import SimMessage
from simulator.scenarios import TruthRecord
from simulator.timefmt import HOUR_MS, SECOND_MS


class FaultKind(StrEnum):
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    LATE_BATCH = "late_batch"
    CLOCK_SKEW = "clock_skew"
    MALFORMED = "malformed"
    WRONG_DEVICE_TOPIC = "wrong_device_topic"
    OVERSIZED = "oversized"
    BURST = "burst"


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """``rate``: share of messages given a fault; ``skew_fraction``: share of devices with a bad clock."""

    rate: float = 0.0
    kinds: frozenset[FaultKind] = frozenset(FaultKind)
    skew_fraction: float = 0.0
    # Share of water meters that lose transmissions in runs (simulator/loss.py); not a per-message fault.
    lossy_meters: float = 0.0

    @property
    def active(self) -> bool:
        return (
            (self.rate > 0 and bool(self.kinds - {FaultKind.CLOCK_SKEW}))
            or (self.skew_fraction > 0 and FaultKind.CLOCK_SKEW in self.kinds)
            or self.lossy_meters > 0
        )

    @classmethod
    def parse(cls, rate: float, kinds: str | None = None, lossy_meters: float = 0.0) -> FaultPlan:
        """From CLI values: ``--faults 0.01 --fault-kinds malformed,burst`` (default: all kinds),
        ``--lossy-meters 0.2``."""
        chosen = frozenset(FaultKind(k.strip()) for k in kinds.split(",")) if kinds else frozenset(FaultKind)
        skew = min(1.0, rate * 5) if FaultKind.CLOCK_SKEW in chosen else 0.0
        return cls(rate=rate, kinds=chosen, skew_fraction=skew, lossy_meters=lossy_meters)


_FOR_EVENTS = (
    FaultKind.DUPLICATE,
    FaultKind.MALFORMED,
    FaultKind.WRONG_DEVICE_TOPIC,
    FaultKind.OVERSIZED,
    FaultKind.BURST,
)


def apply_faults(
    messages: Iterator[SimMessage],
    plan: FaultPlan,
    *,
    seed: int,
    devices: Sequence[SimDevice],
    truth: list[TruthRecord],
    root: str,
) -> Iterator[SimMessage]:
    """Yield ``messages`` with faults injected, still ordered by publish time."""
    if plan.lossy_meters > 0:  # lost first: a message never sent cannot be duplicated or delayed
        messages = lose_transmissions(messages, plan.lossy_meters, seed=seed, devices=devices, truth=truth)
    injector = _Injector(plan, seed=seed, devices=devices, truth=truth, root=root)
    for original in messages:
        yield from injector.release(original.at_ms)
        yield from injector.inject(original)
    yield from injector.release(None)


class _Injector:
    """Per-run fault state: the seeded generator, skewed clocks, and messages held for later."""

    def __init__(
        self, plan: FaultPlan, *, seed: int, devices: Sequence[SimDevice], truth: list[TruthRecord], root: str
    ) -> None:
        self.plan = plan
        self.rng = random.Random(f"{seed}/faults")
        self.devices = devices
        self.by_id = {d.device_id: d for d in devices}
        self.skews = _skews(plan, seed, devices)
        self.skew_seen: set[str] = set()
        self.truth = truth
        self.root = root
        self.pending: list[tuple[int, int, SimMessage]] = []
        self.counter = 0

    def release(self, until_ms: int | None) -> Iterator[SimMessage]:
        """Held messages due by ``until_ms`` (all of them for ``None``)."""
        while self.pending and (until_ms is None or self.pending[0][0] <= until_ms):
            yield heapq.heappop(self.pending)[2]

    def later(self, message: SimMessage, at_ms: int, kind: FaultKind) -> None:
        self.counter += 1
        copy = SimMessage(message.topic, message.payload, at_ms, f"fault_{kind}", message.retain)
        heapq.heappush(self.pending, (at_ms, self.counter, copy))

    def record(self, kind: FaultKind, message: SimMessage, device: SimDevice, **detail: object) -> None:
        self.truth.append(
            TruthRecord(
                "fault", kind.value, device.household_id, message.at_ms, message.at_ms, None, device.device_id, detail
            )
        )

    def inject(self, message: SimMessage) -> Iterator[SimMessage]:
        device = self.by_id.get(message.device_id)
        if device is None:
            yield message
            return
        skew = self.skews.get(device.device_id)
        if skew is not None:
            message = message._replace(payload=_shift_ts(message.payload, skew))
            if device.device_id not in self.skew_seen:
                self.skew_seen.add(device.device_id)
                self.record(FaultKind.CLOCK_SKEW, message, device, skew_s=skew // SECOND_MS)
        fitting = _fitting(message, self.plan.kinds) if self.plan.rate > 0 else []
        if not fitting or self.rng.random() >= self.plan.rate:
            yield message
            return
        # Bursts are rarer than other faults: one burst is hundreds of messages.
        kind = self.rng.choices(fitting, weights=[0.25 if k is FaultKind.BURST else 1.0 for k in fitting])[0]
        if kind in (FaultKind.REORDER, FaultKind.LATE_BATCH):
            self._delay(kind, message, device)
            return
        yield message
        yield from self._extra(kind, message, device)

    def _delay(self, kind: FaultKind, message: SimMessage, device: SimDevice) -> None:
        if kind is FaultKind.REORDER:
            delay = int(min(device.expected_interval_s * self.rng.uniform(1.05, 2.5), 6 * 3600) * SECOND_MS)
        else:
            delay = int(self.rng.uniform(2, 26) * HOUR_MS)
        self.later(message, message.at_ms + delay, kind)
        self.record(kind, message, device, delay_s=delay // SECOND_MS)

    def _extra(self, kind: FaultKind, message: SimMessage, device: SimDevice) -> Iterator[SimMessage]:
        t, label = message.at_ms, f"fault_{kind}"
        if kind is FaultKind.DUPLICATE:
            self.later(message, t + int(self.rng.uniform(0.2, 30) * SECOND_MS), kind)
            self.record(kind, message, device)
        elif kind is FaultKind.BURST:
            copies = self.rng.randint(50, 300)
            for i in range(copies):
                self.later(message, t + 1 + i * 10, kind)
            self.record(kind, message, device, copies=copies, expected_reject=RejectReason.RATE_LIMITED.value)
        elif kind is FaultKind.MALFORMED:
            payload, reason = malformed(message.payload, self.rng)
            yield SimMessage(message.topic, payload, t, label)
            self.record(kind, message, device, expected_reject=reason.value)
        elif kind is FaultKind.WRONG_DEVICE_TOPIC:
            topic, reason = _wrong_topic(message, device, self.devices, self.rng, self.root)
            yield SimMessage(topic, message.payload, t, label)
            self.record(kind, message, device, topic=topic, expected_reject=reason.value)
        elif kind is FaultKind.OVERSIZED:
            yield SimMessage(message.topic, oversized(message.payload), t, label)
            self.record(kind, message, device, expected_reject=RejectReason.OVERSIZED.value)


def _fitting(message: SimMessage, kinds: frozenset[FaultKind]) -> list[FaultKind]:
    if message.kind == "will":
        return []
    if message.topic.endswith("/event"):
        options: Sequence[FaultKind] = _FOR_EVENTS
    elif message.kind == "meter_batch":
        options = [k for k in FaultKind if k is not FaultKind.CLOCK_SKEW]
    else:
        options = [k for k in FaultKind if k not in (FaultKind.CLOCK_SKEW, FaultKind.LATE_BATCH)]
    return [k for k in options if k in kinds]


def _skews(plan: FaultPlan, seed: int, devices: Sequence[SimDevice]) -> dict[str, int]:
    if FaultKind.CLOCK_SKEW not in plan.kinds or plan.skew_fraction <= 0:
        return {}
    skews = {}
    for device in devices:
        rng = random.Random(f"{seed}/skew/{device.device_id}")
        if rng.random() < plan.skew_fraction:
            skews[device.device_id] = int(rng.choice([-1, 1]) * rng.uniform(30, 7200) * SECOND_MS)
    return skews


def _shift(value: Any, skew_ms: int) -> Any:
    if isinstance(value, int):
        return value + skew_ms
    moment = datetime.fromisoformat(value) + timedelta(milliseconds=skew_ms)
    return moment.isoformat(timespec="milliseconds")


def _shift_ts(payload: bytes, skew_ms: int) -> bytes:
    body = json.loads(payload)
    body["ts"] = _shift(body["ts"], skew_ms)
    for reading in body.get("readings", ()):
        reading["ts"] = _shift(reading["ts"], skew_ms)
    return _dumps(body)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def malformed(payload: bytes, rng: random.Random) -> tuple[bytes, RejectReason]:
    """A broken variant of a valid payload, with the reject reason ingest should give it."""
    body = json.loads(payload)
    variant = rng.randrange(7)
    if variant < 3:
        raw = (payload[: max(1, len(payload) // 2)], _dumps([body]), b"\xff\xfe" + payload)[variant]
        return raw, (RejectReason.INVALID_JSON, RejectReason.NOT_OBJECT, RejectReason.NOT_UTF8)[variant]
    if variant == 3:
        del body["ts"]
        return _dumps(body), RejectReason.MISSING_FIELD
    if variant == 4:
        body["seq"] = str(body["seq"])
        return _dumps(body), RejectReason.WRONG_TYPE
    if variant == 5:
        return _dumps(body).replace(b'"seq":', b'"seq":NaN,"_seq":', 1), RejectReason.NON_FINITE
    body["seq"] = -1
    return _dumps(body), RejectReason.INVALID_VALUE


def oversized(payload: bytes) -> bytes:
    """The payload with a padding field that takes it past ``MAX_PAYLOAD_BYTES``."""
    body = json.loads(payload)
    body["pad"] = "x" * (MAX_PAYLOAD_BYTES + 512)
    return _dumps(body)


def _wrong_topic(
    message: SimMessage, device: SimDevice, devices: Sequence[SimDevice], rng: random.Random, root: str
) -> tuple[str, RejectReason]:
    channel = message.topic.rsplit("/", 1)[-1]
    variant = rng.randrange(3)
    if variant == 0:
        others = [d for d in devices if d.household_id == device.household_id and d.device_type != device.device_type]
        if others:
            other = rng.choice(others)
            # Another type's topic: its payloads have another shape. Status is shared by every type,
            # so a misrouted status goes to the other device's telemetry channel instead.
            wrong = "telemetry" if channel == "status" else channel
            return f"{root}/dev/{other.device_id}/{wrong}", RejectReason.SHAPE_MISMATCH
    if variant == 1:
        return f"{root}/dev/ghost-{rng.randrange(16**8):08x}/{channel}", RejectReason.UNKNOWN_DEVICE
    return f"{root}/dev/{device.device_id}/diagnostics", RejectReason.BAD_TOPIC
