"""Backtest: replay stored history through the very same :class:`Engine` and count the findings.

Pure: records, devices and settings go in, a :class:`BacktestResult` comes out; loading them from the
database is ``storage.history``'s job and printing is ``carewatch.backtest_cli``'s (the composition root).

Replay reproduces processing time, not just device time: records are applied in ``received_at``
order (so a meter's late daily batch arrives late, exactly as it did live), and between records the
engine's timers are run at the instant they fall due (so device-offline findings get the detection
time they would have had). Ticking stops at the last record: silence after the end of the data is not
the devices' fault.

A warm-up period before ``count_from`` lets the routine detector learn its 28-day baseline without
its findings being counted; an operator compares per detector and household how many alerts a
setting would have raised before enabling it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from detectors.config import DetectorSuiteConfig, HouseholdSettings
from detectors.engine import Engine
from schemas.findings import Finding, FindingAction, PresenceSignal
from schemas.kinds import AlertKind
from schemas.records import DeviceInfo, Record


@dataclass(frozen=True, slots=True)
class CheckinModel:
    """Which findings would ask the resident first, how long that takes, and which signs of life
    answer which kinds (alerting's policy, passed in by the caller: detectors do not import alerting)."""

    kinds: frozenset[AlertKind]
    window: timedelta
    answers: Mapping[PresenceSignal, frozenset[AlertKind]]


@dataclass(frozen=True, slots=True)
class CheckinTally:
    """Per household: alerts that would check in, those a sign of life in the data answered within
    the check-in, and the rest, which page unless the resident presses or answers the phone."""

    checkins: int = 0
    answered_by_presence: int = 0
    pages_if_unanswered: int = 0
    paged_directly: int = 0


@dataclass(slots=True)
class BacktestResult:
    """Raised findings counted per (household, detector, kind), and every finding in order."""

    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    records: int = 0
    households: set[str] = field(default_factory=set)

    def checkins(self, model: CheckinModel, count_from: datetime | None = None) -> dict[str, CheckinTally]:
        """What the counted raises would do with check-ins on: per household (see :class:`CheckinTally`)."""
        signs: dict[str, list[tuple[datetime, PresenceSignal]]] = {}
        for f in self.findings:
            if f.action is FindingAction.PRESENCE:
                signs.setdefault(f.household_id, []).append((f.at, PresenceSignal(f.details["signal"])))
        tally: dict[str, CheckinTally] = {}
        for f in self.findings:
            if f.action is not FindingAction.RAISE or (count_from is not None and f.detected_at < count_from):
                continue
            was = tally.get(f.household_id, CheckinTally())
            if f.kind not in model.kinds:
                tally[f.household_id] = _add(was, paged_directly=1)
                continue
            answered = any(
                f.detected_at <= at < f.detected_at + model.window and f.kind in model.answers[signal]
                for at, signal in signs.get(f.household_id, ())
            )
            tally[f.household_id] = _add(
                was, checkins=1, answered_by_presence=int(answered), pages_if_unanswered=int(not answered)
            )
        return tally

    def per_detector(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (_, detector, _), n in self.counts.items():
            out[detector] += n
        return out

    def quiet_households(self) -> list[str]:
        """Households without any counted alert."""
        return sorted(self.households - {h for h, _, _ in self.counts})


def replay(
    records: Iterable[Record],
    devices: Iterable[DeviceInfo],
    settings: Mapping[str, HouseholdSettings],
    config: DetectorSuiteConfig,
    *,
    count_from: datetime | None = None,
    engine: Engine | None = None,
) -> BacktestResult:
    """Replay ``records`` through a fresh engine; count RAISE findings detected at/after ``count_from``.

    ``engine``: replay through this one instead (built from ``config`` by the caller), to keep what it
    learned: the demo stores its snapshots so the live detectors resume from a seeded month.
    """
    engine = engine if engine is not None else Engine(config)
    result = BacktestResult()
    for device in devices:
        engine.upsert_device(device)
        result.households.add(device.household_id)
    for household_id, household in settings.items():
        engine.set_household(household_id, household)
    ordered = sorted(records, key=lambda r: (r.received_at, r.ts))
    result.records = len(ordered)
    i = 0
    while i < len(ordered):
        now = ordered[i].received_at
        timer = engine.next_timer()
        if timer is not None and timer < now:
            _count(result, engine.tick(timer), count_from)
            continue
        j = i
        while j < len(ordered) and ordered[j].received_at == now:
            j += 1
        _count(result, engine.process(ordered[i:j]), count_from)
        i = j
    return result


def _count(result: BacktestResult, findings: list[Finding], count_from: datetime | None) -> None:
    for f in findings:
        result.findings.append(f)
        if f.action is FindingAction.RAISE and (count_from is None or f.detected_at >= count_from):
            result.counts[(f.household_id, f.detector, f.kind.value)] += 1
            result.households.add(f.household_id)


def _add(tally: CheckinTally, **more: int) -> CheckinTally:
    return CheckinTally(**{name: getattr(tally, name) + more.get(name, 0) for name in CheckinTally.__slots__})
