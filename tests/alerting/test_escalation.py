"""Escalation on the real database and a real webhook receiver, with an injected clock (no sleeping).

Critical: tiers 1 and 2 at once, tier 3 after 3 minutes unclaimed; a claim stops it; a decline by all
moves on at once; a failing channel retries with the same key, dies at its deadline and escalates; a
restart mid-send neither loses nor repeats a step (at most one resend with the same key).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from alerting.channels import Channel, Delivery, DeliveryResult, WebhookChannel
from alerting.dispatcher import Dispatcher
from alerting.policy import policy_from_config
from alerting.service import AlertingConfig, claim_alert, decline_alert
from carewatch.webhook_receiver import WebhookReceiver
from schemas.kinds import AlertKind
from storage import outbox
from tests.alerting.helpers import Clock, Member, finding, keys_for, open_alert, provision, timeline_actions

CONFIG = AlertingConfig(delivery_deadline=timedelta(seconds=5))


@pytest.fixture(scope="module")
def failing() -> Iterator[WebhookReceiver]:
    hook = WebhookReceiver(secret=secrets.token_hex(16), fail_first=1_000_000).start()
    yield hook
    hook.stop()


def team(prefix: str, hook: WebhookReceiver, *, tier1: WebhookReceiver | None = None) -> list[Member]:
    first = tier1 or hook
    return [
        Member(f"{prefix}-family", "family", 1, f"{first.url}?{prefix}", first.secret),
        Member(f"{prefix}-staff", "committee_staff", 2, hook.url, hook.secret),
        Member(f"{prefix}-super", "supervisor", 3, hook.url, hook.secret),
    ]


_OPEN: list[Dispatcher] = []


@pytest.fixture(autouse=True)
def _close_dispatchers() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def dispatcher(
    database_url: str, clock: Clock, config: AlertingConfig = CONFIG, webhook: Channel | None = None
) -> Dispatcher:
    channels: dict[str, Channel] = {"webhook": webhook or WebhookChannel(timeout_s=5)}
    worker = Dispatcher(conninfo=database_url, channels=channels, config=config, clock=clock, visit_check_every_s=None)
    _OPEN.append(worker)
    return worker


def told(hook: WebhookReceiver, alert_id: int) -> list[tuple[str, str]]:
    return sorted((d.body["caregiver_id"], d.body["reason"]) for d in hook.deliveries if d.body["alert_id"] == alert_id)


def test_unclaimed_critical_escalates_after_three_minutes(
    conn: psycopg.Connection, database_url: str, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    provision(conn, "hh-esc", team("esc", receiver))
    alert_id = open_alert(conn, finding("hh-esc"), clock(), CONFIG)
    worker = dispatcher(database_url, clock)
    worker.run_once()
    assert told(receiver, alert_id) == [("esc-family", "new"), ("esc-staff", "new")]
    clock.advance(seconds=179)
    assert worker.run_once() == 0
    clock.advance(seconds=2)
    assert worker.run_once() == 1
    assert ("esc-super", "escalated") in told(receiver, alert_id)
    row = conn.execute(
        "SELECT status, escalation_level, next_escalation_at FROM alerts WHERE alert_id = %s", (alert_id,)
    )
    assert row.fetchone() == ("notified", 1, None)
    clock.advance(minutes=30)
    assert worker.run_once() == 0  # the last step: nothing further
    assert timeline_actions(conn, alert_id).count("escalated") == 1


def test_claim_stops_escalation_and_tells_the_others(
    conn: psycopg.Connection, database_url: str, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    provision(conn, "hh-claim", team("clm", receiver))
    alert_id = open_alert(conn, finding("hh-claim"), clock(), CONFIG)
    worker = dispatcher(database_url, clock)
    worker.run_once()
    clock.advance(seconds=40)
    with conn.transaction():
        claim_alert(conn, alert_id, "clm-family", clock(), CONFIG)
    worker.run_once()
    clock.advance(minutes=10)
    worker.run_once()
    assert told(receiver, alert_id) == [("clm-family", "new"), ("clm-staff", "claimed_by_other"), ("clm-staff", "new")]
    actions = timeline_actions(conn, alert_id)
    assert "escalated" not in actions
    assert actions[:2] == ["opened", "notify"]
    assert "claimed" in actions


def test_high_climbs_the_chain_with_a_configured_policy(
    conn: psycopg.Connection, database_url: str, receiver: WebhookReceiver
) -> None:
    config = AlertingConfig(
        policy=policy_from_config(
            {"high": [{"tiers": [1], "wait_s": 60}, {"tiers": [2], "wait_s": 60}, {"tiers": [3]}]}
        ),
        delivery_deadline=timedelta(seconds=5),
    )
    clock = Clock()
    provision(conn, "hh-high", team("hi", receiver))
    alert_id = open_alert(conn, finding("hh-high", AlertKind.INACTIVITY), clock(), config)
    worker = dispatcher(database_url, clock, config)
    worker.run_once()
    assert [c for c, _ in told(receiver, alert_id)] == ["hi-family"]
    clock.advance(seconds=61)
    worker.run_once()
    assert [c for c, _ in told(receiver, alert_id)] == ["hi-family", "hi-staff"]
    clock.advance(seconds=61)
    worker.run_once()
    assert [c for c, _ in told(receiver, alert_id)] == ["hi-family", "hi-staff", "hi-super"]


def test_everyone_declining_escalates_at_once(
    conn: psycopg.Connection, database_url: str, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    provision(conn, "hh-dec", team("dec", receiver))
    alert_id = open_alert(conn, finding("hh-dec"), clock(), CONFIG)
    worker = dispatcher(database_url, clock)
    worker.run_once()
    with conn.transaction():
        assert not decline_alert(conn, alert_id, "dec-family", "in Hangzhou today", clock(), CONFIG)
        assert not decline_alert(conn, alert_id, "dec-family", "again", clock(), CONFIG)  # counted once
    with conn.transaction():
        assert decline_alert(conn, alert_id, "dec-staff", "", clock(), CONFIG)
    worker.run_once()
    assert ("dec-super", "escalated") in told(receiver, alert_id)
    assert timeline_actions(conn, alert_id).count("declined") == 2


def test_failing_channel_retries_with_the_same_key_then_dies_and_escalates(
    conn: psycopg.Connection, database_url: str, receiver: WebhookReceiver, failing: WebhookReceiver
) -> None:
    clock = Clock()
    provision(conn, "hh-fail", team("fl", receiver, tier1=failing))
    alert_id = open_alert(conn, finding("hh-fail"), clock(), CONFIG)
    worker = dispatcher(database_url, clock)
    worker.run_once()  # staff delivered; family attempt 1 fails, retry at +1 s
    clock.advance(seconds=1)
    worker.run_once()  # attempt 2 fails, retry at +2 s (t=3)
    assert told(receiver, alert_id) == [("fl-staff", "new")]
    clock.advance(seconds=2)
    worker.run_once()  # attempt 3 fails; the next retry (t=7) is past the 5 s deadline: dead → escalate
    assert ("fl-super", "escalated") in told(receiver, alert_id)
    dead = [row for row in outbox.list_dead(conn) if row["alert_id"] == alert_id]
    assert len(dead) == 1
    assert dead[0]["caregiver_id"] == "fl-family"
    assert [a["attempt"] for a in dead[0]["attempt_log"]] == [1, 2, 3]
    assert all(not a["ok"] and a["detail"] == "HTTP 503" for a in dead[0]["attempt_log"])
    actions = timeline_actions(conn, alert_id)
    assert actions.index("delivery_dead") < actions.index("escalated")


def test_a_flaky_receiver_gets_one_notification_after_retries(conn: psycopg.Connection, database_url: str) -> None:
    flaky = WebhookReceiver(secret=secrets.token_hex(16), fail_first=2).start()
    try:
        clock = Clock()
        provision(conn, "hh-flaky", [Member("fk-family", "family", 1, flaky.url, flaky.secret)])
        alert_id = open_alert(conn, finding("hh-flaky", AlertKind.SMOKE), clock(), CONFIG)
        worker = dispatcher(database_url, clock)
        for step in (0, 1, 2):
            clock.advance(seconds=step)
            worker.run_once()
        assert len(flaky.deliveries) == 1
        assert flaky.repeats == 0
        (row,) = outbox.list_for_alert(conn, alert_id)
        assert (row["status"], row["attempts"]) == ("sent", 3)
        assert [a["ok"] for a in row["attempt_log"]] == [False, False, True]
    finally:
        flaky.stop()


class _CrashError(Exception):
    """Stands for the process dying after the request went out and before the commit."""


class _SendThenCrash:
    name = "webhook"

    def __init__(self) -> None:
        self._inner = WebhookChannel(timeout_s=5)

    def send(self, delivery: Delivery) -> DeliveryResult:
        self._inner.send(delivery)
        raise _CrashError


def test_restart_mid_escalation_neither_loses_nor_repeats_a_step(
    conn: psycopg.Connection, database_url: str, receiver: WebhookReceiver
) -> None:
    clock = Clock()
    provision(conn, "hh-restart", team("rs", receiver))
    alert_id = open_alert(conn, finding("hh-restart"), clock(), CONFIG)
    dispatcher(database_url, clock).run_once()
    clock.advance(minutes=3, seconds=1)
    crashing = dispatcher(database_url, clock, webhook=_SendThenCrash())
    with pytest.raises(_CrashError):
        crashing.run_once()  # escalation committed, the supervisor's webhook sent, the send not committed
    assert keys_for(receiver.deliveries, "rs-super") != []
    repeats_before = receiver.repeats
    restarted = dispatcher(database_url, clock)
    restarted.run_once()
    clock.advance(minutes=5)
    restarted.run_once()
    assert len(keys_for(receiver.deliveries, "rs-super")) == 1  # one distinct notification
    assert receiver.repeats - repeats_before == 1  # at most one resend, with the same key
    assert timeline_actions(conn, alert_id).count("escalated") == 1
    statuses = conn.execute("SELECT status FROM notifications WHERE alert_id = %s", (alert_id,)).fetchall()
    assert statuses == [("sent",)] * 3
