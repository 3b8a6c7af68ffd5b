"""The public face of the pure simulator: a ``Fleet`` of homes, and a ``Simulation`` over a time span.

    fleet = Fleet.generate(homes=30, seed=7, start=datetime(2026, 1, 5, tzinfo=UTC))
    infos = fleet.device_infos()                       # provision these in carewatch's registry
    sim = fleet.simulate(timedelta(days=1), scenarios=[ScenarioRequest(ScenarioKind.FALL, home=3)])
    for msg in sim:                                    # SimMessage(topic, payload, at_ms, kind, retain)
        ...
    sim.ground_truth()                                 # incidents, routine events, faults

A simulation walks simulated time in hour-aligned windows; in each window every home's devices
contribute their due messages (``engine.HomeRun``), homes in index order and each device's messages in
its own time order, and a stable sort by time then gives the publish order: by time, then device
ordinal, then the device's own sequence. Nothing here reads the wall
clock or does I/O: pacing and publishing live in ``simulator.publisher`` and the CLI.

``shard=(k, n)`` keeps only homes whose index is ``k`` modulo ``n``: each home's messages depend only on
the seed and its index, so ``n`` processes can publish one fleet between them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter

from schemas.records import DeviceInfo
from simulator.devices import Home, SimDevice, build_home, check_prefix
from simulator.engine import HomeRun
from simulator.faults import FaultPlan, apply_faults
from simulator.payloads import SimMessage
from simulator.scenarios import Incident, ScenarioRequest, TruthRecord, incident_truth, place
from simulator.timefmt import HOUR_MS, floor_hour, from_ms, to_ms


@dataclass(frozen=True, slots=True)
class Fleet:
    """Homes and their devices, drawn from a seed; ``start`` is the default origin of simulations."""

    seed: int
    start_ms: int
    homes: tuple[Home, ...]
    id_prefix: str = "sim"

    @classmethod
    def generate(cls, homes: int, seed: int, start: datetime, *, id_prefix: str = "sim") -> Fleet:
        """Draw ``homes`` homes. Ids are ``{id_prefix}-{index:06d}[-{slot}]`` (see ``simulator.devices``)."""
        if homes < 1:
            raise ValueError("a fleet needs at least one home")
        check_prefix(id_prefix)
        return cls(seed, to_ms(start), tuple(build_home(seed, i, id_prefix) for i in range(homes)), id_prefix)

    @property
    def start(self) -> datetime:
        return from_ms(self.start_ms)

    @property
    def devices(self) -> Iterator[SimDevice]:
        for home in self.homes:
            yield from home.devices

    def device_infos(self) -> list[DeviceInfo]:
        """Registry entries (id, type, household, expected interval) for every device."""
        return [device.info() for device in self.devices]

    def home(self, key: int | str) -> Home:
        """A home by index or household id."""
        if isinstance(key, int):
            return self.homes[key]
        for home in self.homes:
            if home.household_id == key:
                return home
        raise KeyError(key)

    def place(self, requests: Sequence[ScenarioRequest], duration: timedelta) -> list[Incident]:
        """Give each scenario request a home and time inside ``[start, start + duration)``."""
        return place(
            requests,
            seed=self.seed,
            household_ids=[h.household_id for h in self.homes],
            start_ms=self.start_ms,
            end_ms=self.start_ms + int(duration.total_seconds() * 1000),
        )

    def simulate(
        self,
        duration: timedelta,
        *,
        scenarios: Iterable[Incident | ScenarioRequest] = (),
        faults: FaultPlan | None = None,
        topic_root: str = "care/v1",
        shard: tuple[int, int] | None = None,
    ) -> Simulation:
        """A simulation of ``duration`` from ``self.start`` with incidents and faults injected."""
        items = list(scenarios)
        requests = [s for s in items if isinstance(s, ScenarioRequest)]
        incidents = [s for s in items if isinstance(s, Incident)] + self.place(requests, duration)
        return Simulation(self, duration, incidents, faults, topic_root.rstrip("/"), shard)


class Simulation:
    """An iterable of ``SimMessage`` in publish order, with the ground truth of what was injected.

    Iterate it once. ``counts`` (messages by kind) and the routine/fault part of ``ground_truth()``
    fill in as messages are produced; incidents are known from the start.
    """

    def __init__(
        self,
        fleet: Fleet,
        duration: timedelta,
        incidents: list[Incident],
        faults: FaultPlan | None,
        topic_root: str,
        shard: tuple[int, int] | None,
    ) -> None:
        self.fleet = fleet
        self.start_ms = fleet.start_ms
        self.end_ms = fleet.start_ms + int(duration.total_seconds() * 1000)
        self.incidents = sorted(incidents, key=lambda i: (i.start_ms, i.home, i.kind.value))
        self.faults = faults
        self.topic_root = topic_root
        self.counts: Counter[str] = Counter()
        self.position_ms = self.start_ms
        k, n = shard or (0, 1)
        self.homes = [h for h in fleet.homes if h.index % n == k]
        self._truth: list[TruthRecord] = []
        for incident in self.incidents:
            home = fleet.homes[incident.home]
            if home.index % n == k:
                device = home.device(incident.device) if incident.device else None
                self._truth.append(incident_truth(incident, home.household_id, device.device_id if device else None))

    @property
    def devices(self) -> list[SimDevice]:
        return [d for h in self.homes for d in h.devices]

    def progress(self) -> float:
        """Fraction of simulated time produced so far (0..1)."""
        span = max(1, self.end_ms - self.start_ms)
        return min(1.0, max(0.0, (self.position_ms - self.start_ms) / span))

    def ground_truth(self) -> list[TruthRecord]:
        return sorted(self._truth, key=TruthRecord.sort_key)

    def write_ground_truth(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            for record in self.ground_truth():
                fh.write(record.to_json() + "\n")

    def __iter__(self) -> Iterator[SimMessage]:
        messages = self._generate()
        if self.faults is not None and self.faults.active:
            messages = apply_faults(
                messages,
                self.faults,
                seed=self.fleet.seed,
                devices=self.devices,
                truth=self._truth,
                root=self.topic_root,
            )
        counts = self.counts
        for message in messages:
            counts[message.kind] += 1
            yield message

    def _generate(self) -> Iterator[SimMessage]:
        by_home: dict[int, list[Incident]] = {}
        for incident in self.incidents:
            by_home.setdefault(incident.home, []).append(incident)
        runs = [
            HomeRun(
                home,
                seed=self.fleet.seed,
                start_ms=self.start_ms,
                end_ms=self.end_ms,
                root=self.topic_root,
                incidents=by_home.get(home.index, []),
                truth=self._truth,
            )
            for home in self.homes
        ]
        w0 = self.start_ms
        while w0 < self.end_ms:
            w1 = min(floor_hour(w0) + HOUR_MS, self.end_ms)
            out: list[SimMessage] = []
            for run in runs:
                run.emit(w0, w1, out)
            out.sort(key=_at)  # stable: equal times keep home, device and sequence order
            for message in out:
                self.position_ms = message.at_ms
                yield message
            self.position_ms = w0 = w1


_at = attrgetter("at_ms")
