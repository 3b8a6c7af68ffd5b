"""The demo's history: a month of a simulated district, written fast, before the demo goes live.

A demo that starts empty shows an empty chart and one or two alerts; people judge carewatch by a board
and a household page that look like a real week. ``seed_history`` makes that week (and the month before
it) from the simulator's fleet, through the same code a real month would go through, only faster:

1. **Messages**: the fleet's simulation up to ``end`` (the live moment) is decoded by the ingest's
   decoder (``ingest.decode``) with its publish time as the receive time, and stored with the ingest's
   ``COPY`` writer (``storage.messages.store_batch``) in large transactions. Messages published after
   ``end`` are returned (``SeedResult.later``): the demo publishes those over MQTT, live.
2. **Detectors**: the stored records are replayed through one detector engine (the backtest's
   ``detectors.backtest.replay``, in receive-time order with timers at their instants), whose learned
   state is then stored as the detector runner's partition snapshots, positioned at the feed's current
   end: the live runner resumes with a month of baselines instead of learning from nothing, and does
   not replay the seeded rows.
3. **People and alerting**: the findings go through the real alerting service at their detection
   times, interleaved with what people do: notifications delivered (a few die: a phone was off),
   residents answering check-ins (``simulator.answers``: 80 % of first attempts, 50 % of second),
   caregivers claiming after believable delays and resolving with an outcome that fits the kind
   (smoke alarms while cooking are device false alarms, most missed routines end "resident fine"),
   escalations when due, and monthly home visits by the volunteers (most homes, not all). Alerts of
   the last hours are left as people would have left them: some unclaimed (escalating), some claimed
   and being dealt with; a check-in still waiting stays waiting. The live alerting service carries on
   from there (its escalation times are stored with the alerts).

Every choice is a function of ids and ``seed``, so a seed gives the same history every run. I/O lives
here, in the composition root; the simulator and detectors stay pure. The connection must be in
autocommit mode (each step is its own transaction, as the live services' are).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from alerting import checkins
from alerting.config import AlertingConfig
from alerting.service import AlertConflictError, apply_findings, claim_alert, escalate_in_order, resolve_alert
from alerting.visits import log_visit, raise_overdue_visits
from carewatch.detector_runner import CURSORS, household_view_settings
from carewatch.partition_state import runner_key
from carewatch.partitions import partition_of
from detectors import DetectorSuiteConfig, Engine
from detectors.backtest import replay
from detectors.config import HouseholdSettings
from ingest.decode import DecodePolicy, decode
from schemas.findings import Finding
from schemas.intake import Accepted
from schemas.kinds import AlertKind, CheckinAnswer, Outcome
from schemas.records import DeviceInfo, Record, StatusReport
from simulator.answers import ResidentAnswers
from simulator.payloads import SimMessage
from simulator.timefmt import from_ms, to_ms
from storage import detector_state, feed, history, outbox
from storage.devices import record_last_seen, record_status
from storage.messages import prepare_connection, store_batch

log = logging.getLogger(__name__)

STORE_BATCH = 20_000
# Alerts paged this close to the live moment are left as people would have left them (not all done).
RECENT = timedelta(hours=36)
# What people did with those, in turn: claimed and still being dealt with, not claimed yet, done.
RECENT_FATES = ("claimed", "unclaimed", "done")
# Someone claims an alert once a notification reached them; until then they look again this often.
CLAIM_RETRY = timedelta(minutes=30)
VISITED_SHARE = 0.85  # homes visited in a month: most, not all (the report lists the others)

# What an alert of each kind usually turned out to be, with weights (an informed guess, not data).
OUTCOMES: dict[AlertKind, tuple[tuple[Outcome, int], ...]] = {
    AlertKind.SOS: ((Outcome.NEEDED_HELP, 4), (Outcome.RESIDENT_OK, 3), (Outcome.FALSE_ALARM_DEVICE, 2),
                    (Outcome.EMERGENCY, 1)),
    AlertKind.SMOKE: ((Outcome.FALSE_ALARM_DEVICE, 6), (Outcome.RESIDENT_OK, 3), (Outcome.EMERGENCY, 1)),
    AlertKind.INACTIVITY: ((Outcome.RESIDENT_OK, 5), (Outcome.AWAY, 3), (Outcome.NEEDED_HELP, 2)),
    AlertKind.ROUTINE_MISSED: ((Outcome.RESIDENT_OK, 6), (Outcome.AWAY, 3), (Outcome.NEEDED_HELP, 1)),
    AlertKind.CONTINUOUS_FLOW: ((Outcome.NEEDED_HELP, 4), (Outcome.RESIDENT_OK, 3), (Outcome.FALSE_ALARM_DEVICE, 1)),
    AlertKind.EXCESSIVE_USE: ((Outcome.RESIDENT_OK, 3), (Outcome.NEEDED_HELP, 1)),
    AlertKind.SERVICE_REQUEST: ((Outcome.NEEDED_HELP, 3), (Outcome.OTHER, 1)),
}  # fmt: skip
DEFAULT_OUTCOMES = ((Outcome.OTHER, 3), (Outcome.FALSE_ALARM_DEVICE, 1))
# How long after being paged someone claims, by severity: (low, high) seconds.
CLAIM_DELAY_S = {"critical": (10, 75), "high": (60, 1200), "normal": (600, 4 * 3600), "low": (1800, 8 * 3600)}


@dataclass(frozen=True, slots=True)
class SeedResult:
    """What was seeded, and how long each step took (seconds)."""

    messages: int
    records: int
    findings: int
    alerts: dict[str, int]  # by status
    visits: int
    later: list[SimMessage]
    timings: dict[str, float] = field(default_factory=dict)


def seed_history(
    conn: psycopg.Connection,
    simulation: Iterable[SimMessage],
    devices: Mapping[str, DeviceInfo],
    *,
    end: datetime,
    answers: ResidentAnswers,
    seed: int,
    alerting: AlertingConfig | None = None,
    detectors: DetectorSuiteConfig | None = None,
) -> SeedResult:
    """Seed the history of ``simulation`` up to ``end`` (see the module docstring); ``devices`` must be
    provisioned, with households registered before the simulation starts."""
    alerting = alerting or AlertingConfig()
    detectors = detectors or DetectorSuiteConfig()
    timings: dict[str, float] = {}
    started = time.monotonic()
    records, later, messages = _store(conn, simulation, devices, to_ms(end))
    timings["store"] = time.monotonic() - started

    mark = time.monotonic()
    settings = {
        household_id: _view(data, timezone, alerting)
        for household_id, (timezone, data) in history.load_household_settings(conn, None).items()
    }
    engine = Engine(detectors)
    result = replay(records, devices.values(), settings, detectors, engine=engine)
    findings = [f for f in result.findings if f.detected_at <= end]
    timings["detect"] = time.monotonic() - mark

    mark = time.monotonic()
    start = min((r.received_at for r in records), default=end)
    timeline = _Timeline(conn, alerting, end)
    for finding in findings:
        timeline.at(finding.detected_at, partial(_apply, conn, finding, alerting))
    day = start
    while day < end:
        timeline.at(day, partial(_overdue_visits, conn, day, alerting))
        day += timedelta(days=1)
    visits = _plan_visits(conn, timeline, start, end, seed)
    people = _People(conn, alerting, timeline, answers, seed, end)
    timeline.run(people.step)
    timings["alerting"] = time.monotonic() - mark

    mark = time.monotonic()
    _store_detector_state(conn, engine, start, end)
    timings["snapshots"] = time.monotonic() - mark
    by_status: dict[str, int] = dict(conn.execute("SELECT status, count(*) FROM alerts GROUP BY status").fetchall())
    log.info(
        "demo history seeded: %d messages, %d alerts, %.1fs", messages, sum(by_status.values()), sum(timings.values())
    )
    return SeedResult(messages, len(records), len(findings), by_status, visits, later, timings)


def _view(data: dict[str, Any], timezone: str, alerting: AlertingConfig) -> HouseholdSettings:
    try:
        return household_view_settings(data, timezone, alerting)
    except (ValueError, KeyError):
        return HouseholdSettings(timezone=timezone)


def _store(
    conn: psycopg.Connection, simulation: Iterable[SimMessage], devices: Mapping[str, DeviceInfo], end_ms: int
) -> tuple[list[Record], list[SimMessage], int]:
    """Decode and store every message published before ``end_ms`` as the ingest would; return the
    stored records, the messages published later, and how many messages were stored."""
    policy = DecodePolicy()
    accepted: list[Accepted] = []
    later: list[SimMessage] = []
    for message in simulation:
        if message.at_ms >= end_ms:
            later.append(message)
            continue
        outcome = decode(message.topic, message.payload, from_ms(message.at_ms), devices.get, policy)
        if isinstance(outcome, Accepted):
            accepted.append(outcome)
    prepare_connection(conn)
    records: list[Record] = []
    for i in range(0, len(accepted), STORE_BATCH):
        with conn.transaction():
            result = store_batch(conn, accepted[i : i + STORE_BATCH], [])
        records.extend(record for item in result.new for record in item.records)
    # Device health for the API, as the detector runner keeps it live.
    seen: dict[str, datetime] = {}
    for record in records:
        if record.received_at > seen.get(record.device_id, record.received_at - timedelta(seconds=1)):
            seen[record.device_id] = record.received_at
    with conn.transaction():
        record_last_seen(conn, seen.items())
        record_status(conn, [record for record in records if isinstance(record, StatusReport)])
    return records, later, len(accepted)


def _apply(conn: psycopg.Connection, finding: Finding, config: AlertingConfig) -> None:
    apply_findings(conn, [finding], finding.detected_at, config)


def _overdue_visits(conn: psycopg.Connection, now: datetime, config: AlertingConfig) -> None:
    raise_overdue_visits(conn, now, config)


def _store_detector_state(conn: psycopg.Connection, engine: Engine, start: datetime, end: datetime) -> None:
    """The engine's state as the detector runner's partition snapshots, at the feed's current end (so
    the live runner restores it and reads only what is committed from now on). Closures are read from
    ``start``: the seeded resolutions re-arm the detectors' latches as they would have live."""
    position = feed.current_position(conn)
    parts: dict[int, dict[str, dict[str, Any]]] = {}
    for key, state in engine.all_snapshots().items():
        kind, _, ident = key.partition(":")
        household_id = state["info"][2] if kind == "dev" else ident
        parts.setdefault(partition_of(household_id), {})[key] = state
    runner = {"feed": {cursor: position.to_json() for cursor in CURSORS}, "closures_from": start.isoformat()}
    with conn.transaction():
        for number, snapshots in parts.items():
            detector_state.save_partition_snapshots(conn, number, {**snapshots, runner_key(number): runner}, end)


def _plan_visits(conn: psycopg.Connection, timeline: _Timeline, start: datetime, end: datetime, seed: int) -> int:
    """Each local month, most homes get a visit from their volunteer, in the daytime, around the same
    day of the month each time (so most intervals stay within the 30 days the programs ask for)."""
    rows = conn.execute(
        "SELECT h.household_id, h.timezone, (SELECT caregiver_id FROM care_plan_contacts c"
        "  WHERE c.household_id = h.household_id ORDER BY tier, caregiver_id LIMIT 1)"
        " FROM households h ORDER BY h.household_id"
    ).fetchall()
    planned = 0
    for household_id, timezone, caregiver in rows:
        if caregiver is None:
            continue
        zone = ZoneInfo(timezone)
        local = start.astimezone(zone)
        month = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        usual = random.Random(f"{seed}:visit-day:{household_id}").randint(4, 22)
        while month < end:
            rng = random.Random(f"{seed}:visit:{household_id}:{month:%Y-%m}")
            if rng.random() < VISITED_SHARE:
                day = usual + rng.randint(-3, 3)
                at = month.replace(day=day, hour=rng.randint(9, 16), minute=rng.randrange(0, 60, 5))
                if start <= at < end:
                    timeline.at(at, partial(_visit, conn, household_id, caregiver, at))
                    planned += 1
            month = (month + timedelta(days=32)).replace(day=1)
    return planned


def _visit(conn: psycopg.Connection, household_id: str, caregiver: str, at: datetime) -> None:
    log_visit(conn, household_id, caregiver, at, "上门探访：身体状况良好", at)


@dataclass(order=True)
class _Event:
    at: datetime
    order: int
    action: Callable[[], None] = field(compare=False)


class _Timeline:
    """Actions in time order up to ``end``; alerting's due escalations run before each, at their times."""

    def __init__(self, conn: psycopg.Connection, config: AlertingConfig, end: datetime) -> None:
        self.conn = conn
        self.config = config
        self.end = end
        self.events: list[_Event] = []
        self.counter = itertools.count()

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        if when < self.end:  # what would happen after the live moment is left to the live demo
            heapq.heappush(self.events, _Event(when, next(self.counter), action))

    def run(self, on_step: Callable[[datetime], None]) -> None:
        while True:
            while self.events:
                event = heapq.heappop(self.events)
                self._escalate_until(event.at, on_step)
                with self.conn.transaction():
                    event.action()
                on_step(event.at)
            # The last escalations before the live moment may plan deliveries before it, too.
            self._escalate_until(self.end, on_step)
            if not self.events:
                return

    def _escalate_until(self, until: datetime, on_step: Callable[[datetime], None]) -> None:
        escalate_in_order(self.conn, until, self.config, on_step)


class _People:
    """Deliveries, residents' answers, claims and resolutions, planned when an alert first needs them."""

    def __init__(
        self,
        conn: psycopg.Connection,
        config: AlertingConfig,
        timeline: _Timeline,
        answers: ResidentAnswers,
        seed: int,
        end: datetime,
    ) -> None:
        self.conn = conn
        self.config = config
        self.timeline = timeline
        self.answers = answers
        self.seed = seed
        self.end = end
        self.seen: set[tuple[str, int]] = set()
        self.recent = 0  # recent alerts paged so far (RECENT_FATES in turn)

    def _rng(self, what: str, ident: object) -> random.Random:
        return random.Random(f"{self.seed}:{what}:{ident}")

    def step(self, now: datetime) -> None:
        """After any change: deliver new notifications, plan answers to new check-ins and new pages."""
        for notification_id, alert_id, caregiver, due in self.conn.execute(
            "SELECT notification_id, alert_id, caregiver_id, next_attempt_at FROM notifications"
            " WHERE status = 'pending' ORDER BY notification_id"
        ).fetchall():
            if ("notification", notification_id) not in self.seen:
                self.seen.add(("notification", notification_id))
                at = max(due, now) + timedelta(seconds=self._rng("deliver", notification_id).uniform(1.5, 6))
                self.timeline.at(at, partial(self._deliver, notification_id, alert_id, caregiver, at))
        for checkin_id, alert_id, household_id, started, kind in self.conn.execute(
            "SELECT c.checkin_id, c.alert_id, a.household_id, c.started_at, a.kind FROM checkins c"
            " JOIN alerts a USING (alert_id) WHERE c.status = 'waiting'"
        ).fetchall():
            if ("checkin", alert_id) not in self.seen:
                self.seen.add(("checkin", alert_id))
                self._plan_answer(checkin_id, alert_id, household_id, started, AlertKind(kind))
        for alert_id, household_id, kind, severity, paged_at in self.conn.execute(
            "SELECT alert_id, household_id, kind, severity, paged_at FROM alerts"
            " WHERE paged_at IS NOT NULL AND status IN ('open', 'notified') AND kind <> 'visit_overdue'"
        ).fetchall():
            if ("claim", alert_id) not in self.seen:
                self.seen.add(("claim", alert_id))
                self._plan_claim(alert_id, household_id, AlertKind(kind), severity, paged_at)

    def _deliver(self, notification_id: int, alert_id: int, caregiver: str | None, at: datetime) -> None:
        if self._rng("dead", notification_id).random() < 0.02:
            outbox.mark_dead(self.conn, notification_id, 5, "simulated: the phone was off")
            return
        outbox.mark_sent(self.conn, notification_id, 1, at)
        if caregiver is not None:
            outbox.mark_alert_notified(self.conn, alert_id, at)

    def _plan_answer(
        self, checkin_id: str, alert_id: int, household_id: str, started: datetime, kind: AlertKind
    ) -> None:
        policy = self.config.checkins.policies.get(kind)
        wait = policy.wait if policy is not None else timedelta(minutes=10)
        attempts = policy.attempts if policy is not None else 1
        for attempt in range(1, attempts + 1):
            # Keyed by the alert, not the (random) check-in id: the same seed gives the same history.
            delay = self.answers.decide(household_id, f"alert-{alert_id}", attempt)
            if delay is not None:
                at = started + wait * (attempt - 1) + timedelta(seconds=delay)
                self.timeline.at(at, partial(self._answer, checkin_id, at))
                return

    def _answer(self, checkin_id: str, at: datetime) -> None:
        checkins.answer(self.conn, checkin_id, CheckinAnswer.OK, "button", at, at, self.config)

    def _plan_claim(self, alert_id: int, household_id: str, kind: AlertKind, severity: str, paged_at: datetime) -> None:
        rng = self._rng("claim", alert_id)
        outcomes, weights = zip(*OUTCOMES.get(kind, DEFAULT_OUTCOMES), strict=True)
        outcome = rng.choices(outcomes, weights)[0]
        low, high = CLAIM_DELAY_S.get(severity, CLAIM_DELAY_S["normal"])
        claim_at = paged_at + timedelta(seconds=rng.uniform(low, high))
        done_at = claim_at + timedelta(minutes=rng.uniform(15, 90))
        recent = self.end - paged_at < RECENT
        fate = rng.random()
        if recent:
            # A resident who is down (the demo's fall) has not been reached yet: that alert escalates, live.
            turn = "unclaimed" if household_id in self.answers.down else RECENT_FATES[self.recent % len(RECENT_FATES)]
            self.recent += household_id not in self.answers.down
            if severity == "critical" and turn != "unclaimed":
                turn = "done"  # nobody leaves a smoke alarm or an emergency press open for a day
            if turn == "unclaimed":
                return  # nobody has claimed it yet: it escalates, live
            keep = None if turn == "claimed" else (outcome, done_at)
            soon = paged_at + timedelta(seconds=low)  # so that it is claimed before the live moment
            self.timeline.at(soon, partial(self._claim, alert_id, soon, keep))
            return
        if fate < 0.05:
            # Nobody claimed; the duty desk closed it from the board later in the day.
            later = paged_at + timedelta(hours=rng.uniform(2, 6))
            self.timeline.at(later, lambda: self._resolve(alert_id, None, outcome, later))
            return
        self.timeline.at(claim_at, partial(self._claim, alert_id, claim_at, (outcome, done_at)))

    def _claim(self, alert_id: int, at: datetime, then: tuple[Outcome, datetime] | None) -> None:
        row = self.conn.execute(
            "SELECT caregiver_id FROM notifications WHERE alert_id = %s AND caregiver_id IS NOT NULL"
            " AND status = 'sent' ORDER BY notification_id LIMIT 1",
            (alert_id,),
        ).fetchone()
        if row is None:
            # Nobody reached yet (quiet hours hold low-severity news until morning): look again later.
            later = at + CLAIM_RETRY
            shifted = None if then is None else (then[0], then[1] + CLAIM_RETRY)
            self.timeline.at(later, partial(self._claim, alert_id, later, shifted))
            return
        try:
            claim_alert(self.conn, alert_id, row[0], at, self.config)
        except AlertConflictError:
            return  # resolved meanwhile (a sign of life, a check-in answer)
        if then is not None:
            outcome, done = then
            self.timeline.at(done, lambda: self._resolve(alert_id, row[0], outcome, done))

    def _resolve(self, alert_id: int, actor: str | None, outcome: Outcome, at: datetime) -> None:
        if actor is None:
            row = self.conn.execute(
                "SELECT c.caregiver_id FROM alerts a JOIN care_plan_contacts c USING (household_id)"
                " WHERE a.alert_id = %s ORDER BY c.tier DESC LIMIT 1",
                (alert_id,),
            ).fetchone()
            actor = row[0] if row else "duty-desk"
        try:
            resolve_alert(self.conn, alert_id, actor, outcome, "", at)
        except AlertConflictError:
            return
