"""``carewatch demo``: the whole system with a simulated fleet and scripted incidents.

1. Services: the broker and database from ``CAREWATCH_MQTT_URL`` / ``CAREWATCH_DATABASE_URL``, or
   embedded ones (Mosquitto if installed, else amqtt; pgserver) in a temporary directory.
2. Migrate, then provision the simulator's homes and devices, and a care plan per home: a volunteer
   partner (tier 1), neighbourhood-committee staff (tier 2) and a supervisor (tier 3). Their webhooks
   point at a local receiver that stands in for the caregivers' phones, so deliveries can be seen.
3. Start the pipeline (ingest, detectors, alerting, API) and publish the fleet: 13 hours of backfill at
   once, then live at ``speed`` simulated seconds per real second. Scripted incidents: a resident who
   stopped using water 12 h 20 min before the live moment, an emergency press and a kitchen smoke alarm
   within the first real minute.
4. Inactivity, routine and continuous-flow alerts ask the resident first (check-ins): every home's call
   button answers through a simulated responder and every resident's phone through a fake voice/SMS
   gateway, with the evaluation's response model (a resident who is fine answers 80 % of first
   attempts, 50 % of second ones; the fallen resident never answers). Waits are 15 s here (10 min in
   production), so an unanswered check-in pages within the demo's first minute.
5. Print each alert as it reaches a caregiver; stop on Ctrl-C or after ``--for`` seconds and print a
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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from api.auth import create_token
from carewatch import embedded
from carewatch.provision import CareTeam, provision_fleet, resident_phone
from carewatch.runtime import Pipeline
from carewatch.settings import Settings
from carewatch.webhook_receiver import ReceivedDelivery, WebhookReceiver
from i18n import N_, Messages, cli_language, messages
from simulator.answers import ResidentAnswers
from simulator.demo import demo_fleet, demo_scenarios
from simulator.fleet import Fleet
from simulator.pacing import Pacer, drive
from simulator.phone_gateway import FakePhoneGateway
from simulator.publisher import DevicePublisher, MqttTarget
from simulator.responder import CheckinResponder
from simulator.scenarios import ScenarioKind
from simulator.timefmt import to_ms
from storage import migrate

log = logging.getLogger(__name__)

DEMO_SEED = 2026
DEMO_DISTRICT = "Changning"
HOMES_PER_VOLUNTEER = 5
DEMO_CHECKIN_WAIT_S = 15


def run_demo(settings: Settings, *, duration_s: float | None, homes: int, speed: float) -> int:
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
        fleet = demo_fleet(homes, DEMO_SEED, live_start)
        _provision(database_url, fleet, receiver)
        incidents = demo_scenarios(fleet, live_start, speed=speed)

        if not settings.mqtt_url and not settings.database_url and settings.api_port == 8080:
            settings = settings.model_copy(update={"api_port": _port_or_free(settings.api_port)})
        settings = settings.model_copy(update={"mqtt_client_id": f"carewatch-demo-{secrets.token_hex(3)}"})
        answers = ResidentAnswers(
            down=frozenset(fleet.homes[i.home].household_id for i in incidents if i.kind is ScenarioKind.FALL),
            seed=DEMO_SEED,
        )
        gateway = stack.enter_context(_gateway(fleet, answers))
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
            args=(fleet, mqtt_url, settings.topic_root, live_start, speed, stop),
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


def _provision(database_url: str, fleet: Fleet, receiver: WebhookReceiver) -> None:
    """Households, devices and care plans for the fleet, straight through the registry."""
    team = CareTeam(receiver.url, receiver.secret, homes_per_volunteer=HOMES_PER_VOLUNTEER)
    with psycopg.connect(database_url, autocommit=True) as conn:
        provision_fleet(conn, fleet, district=DEMO_DISTRICT, team=team)


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
    fleet: Fleet, mqtt_url: str, topic_root: str, live_start: datetime, speed: float, stop: threading.Event
) -> None:
    incidents = demo_scenarios(fleet, live_start, speed=speed)  # the same, pure: the publisher's copy
    simulation = fleet.simulate(timedelta(days=2), scenarios=incidents, topic_root=topic_root)
    publisher = DevicePublisher(
        MqttTarget.from_url(mqtt_url.split("?", maxsplit=1)[0]), simulation.devices, topic_root=topic_root
    )
    try:
        publisher.open()
        drive(simulation, publisher, Pacer(speed, live_from_ms=to_ms(live_start)), should_stop=stop.is_set)
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
