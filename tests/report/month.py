"""A simulated month of history for the monthly report's tests, made quickly without a broker.

Two districts of ten homes each, two neighbourhood committees per district (provisioned with
``carewatch.provision``). The simulator's fleets live from 14 h before November 2026 (Shanghai time) to
10 h after it, with incidents placed through the month. Their messages go through the real decoder
and ``storage.messages`` (COPY) as the ingest would store them; the detectors replay the stored
records (``detectors.backtest.replay``), and their findings go through the real alerting service at
their detection times, interleaved in time with what people do: deliveries (a few die), check-in
answers (ok, help, away, none), claims after delays from 20 s to never, resolutions with every outcome,
escalations when due, and home visits (some homes visited, some only before or after the month).
Edge cases the report must handle: a home registered mid-month, one registered after the month (left
out), a home with no devices, a device decommissioned mid-month, a second resident in one home, and
devices silent without a Last Will (across the month's start, mid-month, and at its end).

Every choice is a function of ids and the seed, so the history is the same on every run.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg

from alerting import checkins
from alerting.config import AlertingConfig
from alerting.service import AlertConflictError, apply_findings, claim_alert, escalate_in_order, resolve_alert
from alerting.visits import log_visit, raise_overdue_visits
from carewatch.provision import CareTeam, provision_fleet
from detectors.backtest import replay
from detectors.config import DetectorSuiteConfig, HouseholdSettings
from ingest.decode import DecodePolicy, decode
from schemas.intake import Accepted
from schemas.kinds import CheckinAnswer, Outcome
from schemas.records import DeviceInfo, Record
from simulator.fleet import Fleet
from simulator.scenarios import ScenarioKind, ScenarioRequest
from simulator.timefmt import from_ms
from storage import outbox
from storage.messages import prepare_connection, store_batch

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONTH = "2026-11"
MONTH_START = datetime(2026, 11, 1, tzinfo=SHANGHAI)
MONTH_END = datetime(2026, 12, 1, tzinfo=SHANGHAI)
SIM_START = MONTH_START - timedelta(hours=14)
SIM_END = MONTH_END + timedelta(hours=10)
# When the report is made: after everything that happens in the history.
GENERATED_AT = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
REGISTERED = SIM_START - timedelta(days=20)

DISTRICTS: dict[str, tuple[str, ...]] = {
    "长宁区": ("华阳路居委会", "江苏路居委会"),
    "普陀区": ("长风居委会", "曹杨居委会"),
}
HOMES = 10
SCENARIOS = (
    ScenarioKind.FALL,
    ScenarioKind.FALL,
    ScenarioKind.FIRE,
    ScenarioKind.EMERGENCY_PRESS,
    ScenarioKind.EMERGENCY_PRESS,
    ScenarioKind.DEVICE_OFFLINE,
    ScenarioKind.BATTERY_DEATH,
    ScenarioKind.HOME_OUTAGE,
    ScenarioKind.LEAK,
    ScenarioKind.TAP_LEFT_RUNNING,
)
# How long after being paged a person claims, by alert id (None: nobody claims; it escalates).
CLAIM_AFTER_S = (20, 45, 100, 150, 400, 700, 1500, None, 30, 3000, None)
OUTCOMES = (
    Outcome.RESIDENT_OK,
    Outcome.FALSE_ALARM_DEVICE,
    Outcome.NEEDED_HELP,
    Outcome.AWAY,
    Outcome.EMERGENCY,
    Outcome.TEST,
    Outcome.OTHER,
    None,  # claimed and still being dealt with
)
CHECKIN_ANSWERS = (CheckinAnswer.OK, CheckinAnswer.HELP, CheckinAnswer.AWAY, None)


@dataclass(frozen=True, slots=True)
class World:
    database_url: str
    households: dict[str, str]  # household id -> district
    late_household: str  # registered after the month: in no figure
    decommissioned: str  # a device taken out of service mid-month
    alerts: int = 0
    notifications: int = 0


@dataclass(order=True)
class _Event:
    at: datetime
    order: int
    action: Callable[[], None] = field(compare=False)


class _Timeline:
    """Actions in time order; alerting's due escalations run before each one, at their own times."""

    def __init__(self, conn: psycopg.Connection, config: AlertingConfig) -> None:
        self.conn = conn
        self.config = config
        self.events: list[_Event] = []
        self.counter = itertools.count()

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self.events, _Event(when, next(self.counter), action))

    def run(self, on_step: Callable[[datetime], None]) -> None:
        while self.events:
            event = heapq.heappop(self.events)
            self._escalate_until(event.at, on_step)
            with self.conn.transaction():
                event.action()
            on_step(event.at)

    def _escalate_until(self, until: datetime, on_step: Callable[[datetime], None]) -> None:
        escalate_in_order(self.conn, until, self.config, on_step)


def build(database_url: str) -> World:
    config = AlertingConfig()
    with psycopg.connect(database_url, autocommit=True) as conn:
        fleets, infos, households = _provision(conn)
        late, decommissioned = _edge_cases(conn, infos)
        records = _store_history(conn, fleets, infos, decommissioned)
        findings = replay(records, infos.values(), _settings(conn), DetectorSuiteConfig()).findings
        timeline = _Timeline(conn, config)
        for finding in findings:
            timeline.at(finding.detected_at, lambda f=finding: apply_findings(conn, [f], f.detected_at, config))
        day = SIM_START
        while day < SIM_END:
            timeline.at(day, lambda d=day: raise_overdue_visits(conn, d, config))
            day += timedelta(days=1)
        for number, household_id in enumerate(sorted(households)):
            for visited_at in _visits(number):
                timeline.at(visited_at, lambda h=household_id, v=visited_at: _visit(conn, h, v))
        people = _People(conn, config, timeline)
        timeline.run(people.step)
        alerts, notifications = conn.execute(
            "SELECT (SELECT count(*) FROM alerts), count(*) FROM notifications"
        ).fetchone() or (0, 0)
    return World(database_url, households, late, decommissioned, int(alerts), int(notifications))


def _provision(conn: psycopg.Connection) -> tuple[list[Fleet], dict[str, DeviceInfo], dict[str, str]]:
    fleets: list[Fleet] = []
    infos: dict[str, DeviceInfo] = {}
    households: dict[str, str] = {}
    for number, (district, committees) in enumerate(DISTRICTS.items()):
        fleet = Fleet.generate(HOMES, seed=40 + number, start=SIM_START, id_prefix=f"d{number}")
        team = CareTeam(webhook_url="http://127.0.0.1:9/hook", webhook_secret="s" * 32, id_prefix=f"d{number}cg")
        provision_fleet(conn, fleet, district=district, committees=committees, team=team)
        infos.update({info.device_id: info for info in fleet.device_infos()})
        households.update({home.household_id: district for home in fleet.homes})
        fleets.append(fleet)
    conn.execute("UPDATE households SET created_at = %s", (REGISTERED,))
    conn.execute("UPDATE residents SET created_at = %s", (REGISTERED,))
    conn.execute("UPDATE devices SET created_at = %s", (REGISTERED,))
    return fleets, infos, households


def _edge_cases(conn: psycopg.Connection, infos: dict[str, DeviceInfo]) -> tuple[str, str]:
    # The last home of the first district joined mid-month; its devices with it.
    joined = MONTH_START + timedelta(days=14, hours=3)
    conn.execute("UPDATE households SET created_at = %s WHERE household_id = 'd0-000009'", (joined,))
    conn.execute("UPDATE residents SET created_at = %s WHERE household_id = 'd0-000009'", (joined,))
    conn.execute("UPDATE devices SET created_at = %s WHERE household_id = 'd0-000009'", (joined,))
    # A second resident in one home, and one who moved in after the month.
    conn.execute(
        "INSERT INTO residents (resident_id, household_id, name, created_at) VALUES"
        " ('res-d1-000002-b', 'd1-000002', '王阿姨', %s), ('res-d1-000003-late', 'd1-000003', '后来者', %s)",
        (REGISTERED, MONTH_END + timedelta(hours=1)),
    )
    # A home with residents but no devices yet, and a home registered after the month.
    conn.execute(
        "INSERT INTO households (household_id, name, district, committee, created_at) VALUES"
        " ('d1-nodevice', 'No devices', '普陀区', '曹杨居委会', %s), ('d0-late', 'Late', '长宁区', '华阳路居委会', %s)",
        (REGISTERED, MONTH_END + timedelta(hours=2)),
    )
    conn.execute(
        "INSERT INTO residents (resident_id, household_id, name, created_at) VALUES"
        " ('res-d1-nodevice', 'd1-nodevice', '李大爷', %s), ('res-d0-late', 'd0-late', '张奶奶', %s)",
        (REGISTERED, MONTH_END + timedelta(hours=2)),
    )
    decommissioned = "d1-000004-sa1"
    conn.execute(
        "UPDATE devices SET decommissioned_at = %s WHERE device_id = %s",
        (MONTH_START + timedelta(days=19, hours=5), decommissioned),
    )
    assert decommissioned in infos
    return "d0-late", decommissioned


def _store_history(
    conn: psycopg.Connection, fleets: list[Fleet], infos: dict[str, DeviceInfo], decommissioned: str
) -> list[Record]:
    """Store every message as the ingest would (decoded, COPY), skipping what a real ingest would refuse:
    devices before their registration and after their decommissioning."""
    registered = dict(conn.execute("SELECT device_id, created_at FROM devices").fetchall())
    retired = MONTH_START + timedelta(days=19, hours=5)
    policy = DecodePolicy()
    lost = _silences()
    accepted: list[Accepted] = []
    for fleet in fleets:
        for message in fleet.simulate(SIM_END - SIM_START, scenarios=[ScenarioRequest(k) for k in SCENARIOS]):
            received = from_ms(message.at_ms)
            device_id = message.device_id
            if received < registered[device_id] or (device_id == decommissioned and received >= retired):
                continue
            if any(start <= received < end for start, end in lost.get(device_id, ())):
                continue  # a silent outage: nothing arrives, not even a Last Will
            outcome = decode(message.topic, message.payload, received, infos.get, policy)
            if isinstance(outcome, Accepted):
                accepted.append(outcome)
    prepare_connection(conn)
    records: list[Record] = []
    for i in range(0, len(accepted), 5000):
        with conn.transaction():
            result = store_batch(conn, accepted[i : i + 5000], [])
        records.extend(record for item in result.new for record in item.records)
    return records


def _silences() -> dict[str, list[tuple[datetime, datetime]]]:
    """Devices that go quiet without a Last Will (a gateway losing power): one for two days mid-month,
    one from late November on (offline at the month's end, and into December)."""
    return {
        "d1-000005-cb": [(MONTH_START + timedelta(days=9), MONTH_START + timedelta(days=11, hours=6))],
        "d0-000003-wm": [(MONTH_END - timedelta(days=2, hours=5), SIM_END)],
        "d0-000004-sa1": [(SIM_START, MONTH_START + timedelta(days=1, hours=2))],  # silent as the month begins
    }


def _settings(conn: psycopg.Connection) -> dict[str, HouseholdSettings]:
    rows = conn.execute("SELECT household_id, timezone, settings FROM households").fetchall()
    return {row[0]: HouseholdSettings.from_json(dict(row[2] or {}), timezone=row[1]) for row in rows}


def _visits(number: int) -> list[datetime]:
    """Most homes are visited in the month (some twice); some only before it, after it, or never."""
    in_month = MONTH_START + timedelta(days=1 + number % 27, hours=10)
    plan = number % 6
    if plan == 0:
        return [MONTH_START - timedelta(days=3)]  # last month only
    if plan == 1:
        return [MONTH_END + timedelta(hours=3)]  # just after the month (local time)
    if plan == 2:
        return [in_month, in_month + timedelta(days=2)]
    if plan == 3:
        return [MONTH_START + timedelta(minutes=30)]  # right at the start (still October in UTC)
    return [in_month]


def _visit(conn: psycopg.Connection, household_id: str, at: datetime) -> None:
    caregiver = conn.execute(
        "SELECT caregiver_id FROM care_plan_contacts WHERE household_id = %s ORDER BY tier, caregiver_id LIMIT 1",
        (household_id,),
    ).fetchone()
    assert caregiver is not None
    log_visit(conn, household_id, caregiver[0], at, "monthly visit", at)


class _People:
    """Deliveries, check-in answers, claims and resolutions, planned when an alert first needs them."""

    def __init__(self, conn: psycopg.Connection, config: AlertingConfig, timeline: _Timeline) -> None:
        self.conn = conn
        self.config = config
        self.timeline = timeline
        self.delivered: set[int] = set()
        self.planned: set[tuple[str, int]] = set()

    def step(self, now: datetime) -> None:
        """After any change: deliver new notifications, plan answers to new check-ins and new pages."""
        for notification_id, alert_id, caregiver, at in self.conn.execute(
            "SELECT notification_id, alert_id, caregiver_id, next_attempt_at FROM notifications"
            " WHERE status = 'pending' ORDER BY notification_id"
        ).fetchall():
            if notification_id not in self.delivered:
                self.delivered.add(notification_id)
                due = max(at, now)
                self.timeline.at(
                    due + timedelta(seconds=4),
                    lambda n=notification_id, a=alert_id, c=caregiver, t=due: self._deliver(n, a, c, t),
                )
        for checkin_id, alert_id, started in self.conn.execute(
            "SELECT checkin_id, alert_id, started_at FROM checkins WHERE status = 'waiting'"
        ).fetchall():
            if ("checkin", alert_id) not in self.planned:
                self.planned.add(("checkin", alert_id))
                given = CHECKIN_ANSWERS[alert_id % len(CHECKIN_ANSWERS)]
                if given is not None:
                    at = started + timedelta(minutes=2 + alert_id % 5)
                    self.timeline.at(at, lambda c=checkin_id, g=given, t=at: self._answer(c, g, t))
        for alert_id, paged_at in self.conn.execute(
            "SELECT alert_id, paged_at FROM alerts WHERE paged_at IS NOT NULL AND status IN ('open', 'notified')"
        ).fetchall():
            if ("claim", alert_id) not in self.planned:
                self.planned.add(("claim", alert_id))
                self._plan_claim(alert_id, paged_at)

    def _deliver(self, notification_id: int, alert_id: int, caregiver: str | None, at: datetime) -> None:
        if notification_id % 13 == 5:
            outbox.mark_dead(self.conn, notification_id, 5, "simulated: the phone was off")
            return
        outbox.mark_sent(self.conn, notification_id, 1, at + timedelta(seconds=4))
        if caregiver is not None:
            outbox.mark_alert_notified(self.conn, alert_id, at + timedelta(seconds=4))

    def _answer(self, checkin_id: str, given: CheckinAnswer, at: datetime) -> None:
        checkins.answer(self.conn, checkin_id, given, "button", at, at, self.config)

    def _plan_claim(self, alert_id: int, paged_at: datetime) -> None:
        delay = CLAIM_AFTER_S[alert_id % len(CLAIM_AFTER_S)]
        outcome = OUTCOMES[alert_id % len(OUTCOMES)]
        if delay is None:
            if alert_id % 2 == 0:  # nobody claims, but someone closes it from the board later
                done = paged_at + timedelta(hours=3)
                self.timeline.at(
                    done, lambda: self._resolve(alert_id, "d0cg-supervisor", outcome or Outcome.OTHER, done)
                )
            return
        at = paged_at + timedelta(seconds=delay)
        self.timeline.at(at, lambda: self._claim(alert_id, at, outcome))

    def _claim(self, alert_id: int, at: datetime, outcome: Outcome | None) -> None:
        row = self.conn.execute(
            "SELECT caregiver_id FROM notifications WHERE alert_id = %s AND caregiver_id IS NOT NULL"
            " ORDER BY notification_id LIMIT 1",
            (alert_id,),
        ).fetchone()
        if row is None:
            return
        try:
            claim_alert(self.conn, alert_id, row[0], at, self.config)
        except AlertConflictError:
            return  # resolved meanwhile
        if outcome is not None:
            done = at + timedelta(minutes=40)
            self.timeline.at(done, lambda: self._resolve(alert_id, row[0], outcome, done))

    def _resolve(self, alert_id: int, actor: str, outcome: Outcome, at: datetime) -> None:
        try:
            resolve_alert(self.conn, alert_id, actor, outcome, "simulated", at)
        except AlertConflictError:
            return
