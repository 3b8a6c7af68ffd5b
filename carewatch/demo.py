"""``carewatch demo``: the whole system with a simulated fleet and scripted incidents.

1. Services: the broker and database from ``CAREWATCH_MQTT_URL`` / ``CAREWATCH_DATABASE_URL``, or
   embedded ones (Mosquitto if installed, else amqtt; pgserver) in a temporary directory.
2. Migrate, then provision the simulator's homes and devices in one district (长宁区) and three
   neighbourhood committees, with Chinese names and addresses (``simulator.names``), and a care plan
   per home: a volunteer partner (tier 1), neighbourhood-committee staff (tier 2) and a supervisor
   (tier 3), who read their notifications in zh-CN. Their webhooks point at a local receiver that
   stands in for the caregivers' phones, so deliveries can be seen.
3. Seed the history (``carewatch.demo_history``): from the first of last month (Shanghai time; at
   least 30 days) to the live moment, the fleet's messages are stored, the detectors replayed over
   them and their state handed to the live detectors, and the alerts go through alerting with people
   answering, claiming, resolving and visiting, so the board, the household chart (a week with its
   learned normal band) and last month's report look like a real district. ``--no-history`` skips it
   (13 hours of backfill are then published over MQTT instead, as before).
4. Start the pipeline (ingest, detectors, alerting, API; the page opens in zh-CN) and publish the fleet
   live at ``speed`` simulated seconds per real second. Scripted incidents: a resident who stopped
   using water 12 h 20 min before the live moment (in the history: already paged), an emergency press
   and a kitchen smoke alarm within the first real minute.
5. Inactivity, routine and continuous-flow alerts ask the resident first (check-ins): every home's call
   button answers through a simulated responder and every resident's phone through a fake voice/SMS
   gateway, with the evaluation's response model (a resident who is fine answers 80 % of first
   attempts, 50 % of second ones; the fallen resident never answers). Waits are 15 s here (10 min in
   production), so an unanswered check-in pages within the demo's first minute.
6. Print each alert as it reaches a caregiver; stop on Ctrl-C or after ``--for`` seconds and print a
   summary whose last line is ``demo: alerts=<n> delivered=<n>``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from api.auth import create_token
from carewatch import embedded
from carewatch.demo_history import seed_history
from carewatch.provision import CareTeam, provision_fleet, resident_phone
from carewatch.runtime import Pipeline
from carewatch.settings import Settings
from carewatch.webhook_receiver import ReceivedDelivery, WebhookReceiver
from i18n import N_, Messages, cli_language, messages
from schemas.language import Language
from simulator.answers import ResidentAnswers
from simulator.demo import DEMO_BACKFILL, demo_scenarios, history_scenarios
from simulator.devices import SimDevice
from simulator.fleet import Fleet
from simulator.names import ChineseNames
from simulator.pacing import Pacer, drive
from simulator.payloads import SimMessage
from simulator.phone_gateway import FakePhoneGateway
from simulator.publisher import DevicePublisher, MqttTarget
from simulator.responder import CheckinResponder
from simulator.scenarios import Incident, ScenarioKind
from simulator.timefmt import to_ms
from storage import household_settings, migrate, registry

log = logging.getLogger(__name__)

DEMO_SEED = 2026
DEMO_DISTRICT = "长宁区"
DEMO_COMMITTEES = ("华阳路居委会", "江苏路居委会", "愚园路居委会")
DEMO_TIMEZONE = ZoneInfo("Asia/Shanghai")
HOMES_PER_VOLUNTEER = 5
DEMO_CHECKIN_WAIT_S = 15
HISTORY_MIN_DAYS = 30
# Simulated time published live after the live moment (far more than a demo runs at speed 10).
LIVE_SPAN = timedelta(days=2)


def history_start(live_start: datetime) -> datetime:
    """Where the seeded history begins: local midnight of the first of last month (so last month's
    report is complete), or 30 days back if that is earlier (so the routine baselines have a month)."""
    local = live_start.astimezone(DEMO_TIMEZONE)
    last_month = (local.replace(day=1) - timedelta(days=1)).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    back = (local - timedelta(days=HISTORY_MIN_DAYS)).replace(hour=0, minute=0, second=0, microsecond=0)
    return min(last_month, back).astimezone(UTC)


def run_demo(settings: Settings, *, duration_s: float | None, homes: int, speed: float, history: bool = True) -> int:
    if "CAREWATCH_LOG_LEVEL" not in os.environ:
        logging.getLogger().setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="carewatch-demo-")))
        mqtt_url = settings.mqtt_url or stack.enter_context(embedded.start_broker(workdir / "broker")).url
        database_url = settings.database_url or stack.enter_context(embedded.start_postgres(workdir / "pg")).url
        mode = migrate(database_url)
        say = messages(cli_language())
        print(
            say(
                N_("demo: broker {broker}, database {database} ({mode})"),
                broker=mqtt_url,
                database=_redact(database_url),
                mode=mode.value,
            ),
            flush=True,
        )

        receiver = stack.enter_context(_receiver())
        live_start = datetime.now(UTC).replace(microsecond=0)
        start = history_start(live_start) if history else live_start - DEMO_BACKFILL
        fleet = Fleet.generate(homes=homes, seed=DEMO_SEED, start=start)
        _provision(database_url, fleet, receiver, registered=start - timedelta(days=1))
        incidents = demo_scenarios(fleet, live_start, speed=speed)
        asking = history_scenarios(fleet, live_start) if history else []
        if not settings.mqtt_url and not settings.database_url and settings.api_port == 8080:
            settings = settings.model_copy(update={"api_port": _port_or_free(settings.api_port)})
        settings = settings.model_copy(update={"mqtt_client_id": f"carewatch-demo-{secrets.token_hex(3)}"})
        answers = ResidentAnswers(
            down=frozenset(fleet.homes[i.home].household_id for i in incidents if i.kind is ScenarioKind.FALL),
            seed=DEMO_SEED,
        )
        gateway = stack.enter_context(_gateway(fleet, answers))
        simulation = fleet.simulate(
            live_start - start + LIVE_SPAN, scenarios=[*incidents, *asking], topic_root=settings.topic_root
        )
        live: Iterable[SimMessage] = simulation
        if history:
            live = _seed(database_url, fleet, simulation, start, live_start, answers, asking, say)
        if settings.page_language is None:
            settings = settings.model_copy(update={"page_language": Language.ZH_CN.value})
        settings = settings.model_copy(update=_checkin_settings(settings, gateway))
        pipeline = Pipeline(settings=settings, mqtt_url=mqtt_url, database_url=database_url)
        pipeline.start()
        token = _operator_token(database_url)
        print(f"api: {pipeline.api_url}", flush=True)
        print(f"token: {token}", flush=True)
        print(
            say(N_("web: {url}/ (paste the token to log in); openapi: {url}/openapi.json"), url=pipeline.api_url),
            flush=True,
        )
        print(
            say(
                N_("demo: {homes} homes; incidents: inactivity (backfilled), sos at ~10 s, smoke alarm at ~20 s"),
                homes=homes,
            ),
            flush=True,
        )
        responder = CheckinResponder(
            target=MqttTarget.from_url(mqtt_url.split("?", maxsplit=1)[0]),
            topic_root=settings.topic_root,
            households={
                d.device_id: home.household_id
                for home in fleet.homes
                for d in home.devices
                if d.device_type == "call_button"
            },
            answers=answers,
        ).start()
        stack.callback(responder.stop)

        stop = threading.Event()
        publisher = threading.Thread(
            target=_publish,
            args=(simulation.devices, live, mqtt_url, settings.topic_root, live_start, speed, stop),
            name="demo-fleet",
            daemon=True,
        )
        publisher.start()
        try:
            _watch(receiver, stop, duration_s, say)
        finally:
            stop.set()
            publisher.join(timeout=10)
            pipeline.stop()
        return _summary(database_url, receiver, say)


@contextlib.contextmanager
def _receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret=secrets.token_hex(16)).start()
    try:
        yield receiver
    finally:
        receiver.stop()


def _provision(database_url: str, fleet: Fleet, receiver: WebhookReceiver, *, registered: datetime) -> None:
    """Households, devices and care plans for the fleet, straight through the registry, registered
    before the history begins (so last month's report counts them)."""
    team = CareTeam(receiver.url, receiver.secret, homes_per_volunteer=HOMES_PER_VOLUNTEER, locale=Language.ZH_CN)
    with psycopg.connect(database_url, autocommit=True) as conn:
        provision_fleet(
            conn, fleet, district=DEMO_DISTRICT, committees=DEMO_COMMITTEES, team=team, names=ChineseNames(DEMO_SEED)
        )
        with conn.transaction():
            registry.backdate_registration(conn, [home.household_id for home in fleet.homes], registered)


# A resident who takes long to reach the button: their household waits longer at each check-in
# attempt (a per-household override, docs/alerting.md), so the demo opens with that check-in asking.
SLOW_CHECKIN = {"wait_s": 1800, "attempts": 2, "channels": ["button", "voice"]}


def _slow_to_answer(database_url: str, households: Iterable[str]) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        for household_id in households:
            current = household_settings.get(conn, household_id, for_update=True)
            if current is not None:
                settings = current[1]
                settings["checkin"] = {**settings.get("checkin", {}), "continuous_flow": SLOW_CHECKIN}
                household_settings.put(conn, household_id, settings)


def _seed(
    database_url: str,
    fleet: Fleet,
    simulation: Iterable[SimMessage],
    start: datetime,
    live_start: datetime,
    answers: ResidentAnswers,
    asking: list[Incident],
    say: Messages,
) -> list[SimMessage]:
    """Seed the history up to ``live_start``; returns the messages to publish live."""
    # In the history the tap's resident has not answered yet: the check-in is still asking.
    quiet = frozenset(fleet.homes[i.home].household_id for i in asking)
    _slow_to_answer(database_url, quiet)
    devices = {info.device_id: info for info in fleet.device_infos()}
    with psycopg.connect(database_url, autocommit=True) as conn:
        seeded = seed_history(
            conn,
            simulation,
            devices,
            end=live_start,
            answers=replace(answers, down=answers.down | quiet),
            seed=DEMO_SEED,
        )
    print(
        say(
            N_(
                "demo: seeded {days} days of history in {seconds} s: {messages} messages, {alerts} alerts,"
                " {visits} home visits"
            ),
            days=(live_start - start).days,
            seconds=f"{sum(seeded.timings.values()):.1f}",
            messages=seeded.messages,
            alerts=sum(seeded.alerts.values()),
            visits=seeded.visits,
        ),
        flush=True,
    )
    return seeded.later


@contextlib.contextmanager
def _gateway(fleet: Fleet, answers: ResidentAnswers) -> Iterator[FakePhoneGateway]:
    """The residents' phones: a fake voice/SMS gateway that answers check-ins as the residents would."""
    phones = {resident_phone(home.index): home.household_id for home in fleet.homes}
    gateway = FakePhoneGateway(secret=secrets.token_hex(16), answers=answers, households=phones).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def _checkin_settings(settings: Settings, gateway: FakePhoneGateway) -> dict[str, Any]:
    wait = {"wait_s": DEMO_CHECKIN_WAIT_S}
    return {
        "checkins": {"inactivity": wait, "routine_missed": wait, "continuous_flow": wait},
        "checkin_gateway_url": gateway.url,
        "checkin_secret": gateway.secret,
        "checkin_callback_base_url": f"http://{settings.api_host}:{settings.api_port}",
    }


def _operator_token(database_url: str) -> str:
    """A token for the demo district's operator, so a newcomer can log in and call the API at once."""
    with psycopg.connect(database_url) as conn:  # the with-block commits
        return create_token(conn, "operator", "demo-operator", district=DEMO_DISTRICT)


def _publish(
    devices: Iterable[SimDevice],
    messages: Iterable[SimMessage],
    mqtt_url: str,
    topic_root: str,
    live_start: datetime,
    speed: float,
    stop: threading.Event,
) -> None:
    publisher = DevicePublisher(MqttTarget.from_url(mqtt_url.split("?", maxsplit=1)[0]), devices, topic_root=topic_root)
    try:
        publisher.open()
        drive(messages, publisher, Pacer(speed, live_from_ms=to_ms(live_start)), should_stop=stop.is_set)
    except Exception:
        log.exception("demo fleet publisher stopped")
    finally:
        with contextlib.suppress(Exception):
            publisher.close()


def _watch(receiver: WebhookReceiver, stop: threading.Event, duration_s: float | None, say: Messages) -> None:
    interrupted = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: interrupted.set())
    deadline = None if duration_s is None else time.monotonic() + duration_s
    shown = 0
    while not interrupted.is_set() and (deadline is None or time.monotonic() < deadline):
        interrupted.wait(0.5)
        deliveries = list(receiver.deliveries)
        for delivery in deliveries[shown:]:
            print(_describe(delivery, say), flush=True)
        shown = len(deliveries)


def _describe(delivery: ReceivedDelivery, say: Messages) -> str:
    """One delivery as the demo shows it (the evidence is in the caregiver's language already)."""
    body = delivery.body
    return say(
        N_(
            "delivered: alert {alert_id} {severity} {kind} household {household_id} → {caregiver_id} ({reason}): "
            "{evidence}"
        ),
        **{
            key: body.get(key, "")
            for key in ("alert_id", "severity", "kind", "household_id", "caregiver_id", "reason", "evidence")
        },
    )


def _summary(database_url: str, receiver: WebhookReceiver, say: Messages) -> int:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT kind, count(*), count(first_notified_at) FROM alerts GROUP BY kind ORDER BY kind"
        ).fetchall()
        rejects = conn.execute("SELECT count(*) FROM rejects").fetchone()
        stored = conn.execute("SELECT count(*) FROM message_receipts").fetchone()
        checkins = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'answered'),"
            " count(*) FILTER (WHERE status = 'unanswered') FROM checkins"
        ).fetchone()
    alerts = sum(row[1] for row in rows)
    delivered = sum(row[2] for row in rows)
    if checkins:
        print(f"demo: check-ins={checkins[0]} answered={checkins[1]} unanswered (paged)={checkins[2]}")
    print(
        f"demo: messages stored={stored[0] if stored else 0} rejected={rejects[0] if rejects else 0}"
        f" notifications received={len(receiver.deliveries)}"
    )
    for kind, count, notified in rows:
        print(
            say(N_("demo: {kind}: {count} alert(s), {notified} delivered"), kind=kind, count=count, notified=notified)
        )
    # The summary line scripts read: the same in every language.
    print(f"demo: alerts={alerts} delivered={delivered}", flush=True)
    return 0


def _port_or_free(port: int) -> int:
    return port if not embedded.port_answers("127.0.0.1", port) else embedded.free_port()


def _redact(url: str) -> str:
    return url.rsplit("@", maxsplit=1)[-1]
