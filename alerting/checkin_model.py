"""What reaches a person: a household's findings through the check-in, with a modelled resident (pure).

The evaluation (``bench/detect_eval.py``) scores the whole chain, detectors plus check-in, without a
database: this module keeps a household's alerts the way alerting keeps them (one open alert per kind; a
finding of a kind already open is an occurrence of it) and decides each check-in with the issue's fixed
resident-response model (issue 15; not to be tuned):

- a resident who is fine answers an attempt within its wait with probability 0.8 (``ResponseModel.first``);
- after an unanswered attempt, a further attempt at least 10 minutes later is answered with probability
  0.5 (``further``, ``further_gap``);
- a fallen resident never answers;
- any sign of life during the check-in answers it (a PRESENCE finding whose signal fits the alert's kind:
  water, a press or a smoke alarm pressed for inactivity and routine alerts; a press, a smoke alarm or the
  flow stopping for continuous flow).

An answered check-in resolves its alert (``resident_ok``) at the answer; no answer after the last attempt
pages the care plan then (a *page*). A paged alert is resolved by the caregiver ``resolve_after`` later.
Every resolution is an :class:`~schemas.findings.AlertClosure` the caller passes to the detector engine
(``Engine.alert_closed``), in time order with the records, as the live runner does. Emergencies (sos,
smoke) page at once. Kinds without a check-in policy are not followed (they never page a volunteer for
inactivity).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerting.checkin_policy import CHECKIN_KINDS, CheckinConfig, CheckinPolicy
from alerting.checkins import ANSWERS as SIGNAL_ANSWERS
from schemas.findings import AlertClosure, Finding, FindingAction, PresenceSignal
from schemas.kinds import AlertKind

EMERGENCIES = frozenset({AlertKind.SOS, AlertKind.SMOKE})
# Which signs of life answer which check-ins: alerting's own rule (alerting.checkins.ANSWERS), by kind.
ANSWERS: dict[AlertKind, frozenset[PresenceSignal]] = {
    kind: frozenset(signal for signal, kinds in SIGNAL_ANSWERS.items() if kind in kinds) for kind in CHECKIN_KINDS
}


@dataclass(frozen=True, slots=True)
class ResponseModel:
    """The issue's fixed model of a resident answering check-ins."""

    first: float = 0.8
    further: float = 0.5
    further_gap: timedelta = timedelta(minutes=10)


@dataclass(slots=True)
class Alert:
    """One alert as the chain follows it. ``outcome``: "checkin" while the resident is asked, then
    "answered", "sign_of_life" or "paged" (a person was notified); ``resolved_at`` once it is over."""

    kind: AlertKind
    detector: str
    opened_at: datetime
    # When the situation began (the first finding's ``at``: for inactivity, the quiet's start).
    since: datetime
    # When the check-in is decided (the drawn answer, or the last attempt's end), or when the caregiver
    # resolves a paged alert.
    due: datetime
    outcome: str = "checkin"
    checked_in: bool = False
    # The modelled resident answers at ``due`` (False: nobody answers; the check-in pages at ``due``).
    answers: bool = False
    paged_at: datetime | None = None
    resolved_at: datetime | None = None
    occurrences: int = 1


@dataclass(slots=True)
class CheckinChain:
    """One household's alerts through the check-in. Feed findings with :meth:`finding` in processing-time
    order and call :meth:`settle` before each later instant; it returns the closures for the engine."""

    household_id: str
    rng: random.Random
    config: CheckinConfig = field(default_factory=CheckinConfig)
    # From this instant the resident is on the floor and answers nothing (None: fine throughout).
    fallen_at: datetime | None = None
    resolve_after: timedelta = timedelta(hours=2)
    response: ResponseModel = field(default_factory=ResponseModel)
    alerts: list[Alert] = field(default_factory=list)
    _open: dict[AlertKind, Alert] = field(default_factory=dict)
    _due: list[tuple[datetime, int, AlertKind]] = field(default_factory=list)

    def finding(self, f: Finding, now: datetime) -> None:
        if f.action is FindingAction.PRESENCE:
            self._presence(f, now)
        elif f.action is FindingAction.RAISE and (f.kind in CHECKIN_KINDS or f.kind in EMERGENCIES):
            self._raise(f, now)

    def next_due(self) -> datetime | None:
        while self._due and self._stale(self._due[0]):
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    def settle(self, until: datetime) -> list[AlertClosure]:
        """Decide every check-in and resolution due at or before ``until``, in time order."""
        out: list[AlertClosure] = []
        while (due := self.next_due()) is not None and due <= until:
            _, _, kind = heapq.heappop(self._due)
            alert = self._open[kind]
            if alert.outcome == "checkin" and not alert.answers:
                alert.outcome, alert.paged_at = "paged", due
                alert.due = due + self.resolve_after
                self._schedule(alert)
                continue
            if alert.outcome == "checkin":
                alert.outcome = "answered"
            alert.resolved_at = due
            del self._open[kind]
            out.append(AlertClosure(self.household_id, kind, None, due))
        return out

    # ---------------------------------------------------------------------------------------------
    def _raise(self, f: Finding, now: datetime) -> None:
        alert = self._open.get(f.kind)
        if alert is not None:
            alert.occurrences += 1
            return
        policy = self.config.policy(f.kind)
        if f.kind in EMERGENCIES or policy is None:
            alert = Alert(f.kind, f.detector, now, f.at, now + self.resolve_after, "paged", paged_at=now)
        else:
            answer = self._answer(now, policy)
            due = answer if answer is not None else now + policy.total
            alert = Alert(f.kind, f.detector, now, f.at, due, checked_in=True, answers=answer is not None)
        self.alerts.append(alert)
        self._open[f.kind] = alert
        self._schedule(alert)

    def _answer(self, start: datetime, policy: CheckinPolicy) -> datetime | None:
        """When the modelled resident answers a check-in starting at ``start`` (None: never)."""
        previous: datetime | None = None
        for attempt in range(1, policy.attempts + 1):
            at = start + policy.attempt_due(attempt)
            if previous is None:
                chance = self.response.first
            else:
                chance = self.response.further if at - previous >= self.response.further_gap else 0.0
            previous = at
            answered = self.rng.random() < chance
            when = at + policy.wait * self.rng.random()
            if answered and (self.fallen_at is None or when < self.fallen_at):
                return when
        return None

    def _presence(self, f: Finding, now: datetime) -> None:
        signal = PresenceSignal(f.details["signal"])
        for kind, alert in self._open.items():
            if alert.outcome == "checkin" and signal in ANSWERS.get(kind, frozenset()) and now < alert.due:
                alert.outcome, alert.answers, alert.due = "sign_of_life", True, now
                self._schedule(alert)

    def _schedule(self, alert: Alert) -> None:
        heapq.heappush(self._due, (alert.due, id(alert), alert.kind))

    def _stale(self, entry: tuple[datetime, int, AlertKind]) -> bool:
        due, ident, kind = entry
        alert = self._open.get(kind)
        return alert is None or id(alert) != ident or alert.due != due
