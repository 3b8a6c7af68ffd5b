"""Robots' rate limits through the real dispatcher and database, with a short window so the test takes
seconds: more alerts than the limit allows in a window are all delivered, later, none dropped or dead,
and the fake robot (which enforces the limit as the vendor does) never sees more than the limit in any
window — with two dispatchers (as two processes would) sharing the one window in the database. A robot
the vendor throttles anyway (another system using it) is paused and retried, again without dying."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerting.channels import Channel
from alerting.dispatcher import Dispatcher
from alerting.robots import DingTalkChannel, RobotLimits, WeComChannel
from alerting.service import AlertingConfig
from schemas.groups import NotifyGroupCreate, RobotKind
from storage import notify_groups
from tests.alerting.helpers import finding, open_alert
from tests.alerting.vendor_fakes import FakeDingTalk, FakeWeCom, Received
from tests.support import wait_until

LIMIT, WINDOW_S = 5, 2.0
# Deadline far shorter than the queue: without the deadline moving by the wait, most would die.
CONFIG = AlertingConfig(delivery_deadline=timedelta(seconds=1))
LIMITS = RobotLimits(per_window=LIMIT, window_s=WINDOW_S, margin_s=0.3, max_queue_s=60)


def open_alerts(conn: psycopg.Connection, group_id: str, count: int) -> list[int]:
    """``count`` critical alerts in as many households, all served by the group (and nobody else)."""
    households = [f"{group_id}-hh-{index}" for index in range(count)]
    for household in households:
        conn.execute("INSERT INTO households (household_id, name, district) VALUES (%s, 'x', 'Putuo')", (household,))
    notify_groups.replace_households(conn, group_id, households)
    now = datetime.now(UTC)  # the dispatchers under test run on the real clock
    return [open_alert(conn, finding(household, at=now), now, CONFIG) for household in households]


def alert_number(content: str) -> int:
    return int(content.split("警报编号 ")[1].split(" ", maxsplit=1)[0])


def max_in_window(received: list[Received], window_s: float) -> int:
    times = sorted(request.at for request in received)
    return max((sum(1 for t in times if start <= t < start + window_s) for start in times), default=0)


class Running:
    """Dispatchers delivering in their own threads (two of them: as two processes would)."""

    def __init__(self, database_url: str, channels: dict[str, Channel], count: int = 2) -> None:
        self.dispatchers = [
            Dispatcher(
                conninfo=database_url,
                channels=channels,
                config=CONFIG,
                poll_s=0.05,
                workers=2,
                visit_check_every_s=None,
                robot_limits=LIMITS,
            )
            for _ in range(count)
        ]
        self.threads = [threading.Thread(target=worker.run, daemon=True) for worker in self.dispatchers]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        for worker in self.dispatchers:
            worker.stop()
        for thread in self.threads:
            thread.join(timeout=15)


@pytest.fixture
def wecom() -> Iterator[FakeWeCom]:
    fake = FakeWeCom(limit=LIMIT, window_s=WINDOW_S)
    yield fake
    fake.stop()


@pytest.fixture
def dingtalk() -> Iterator[FakeDingTalk]:
    fake = FakeDingTalk(limit=LIMIT, window_s=WINDOW_S, penalty_s=30)
    yield fake
    fake.stop()


def statuses(conn: psycopg.Connection, alert_ids: list[int]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT status, count(*) FROM notifications WHERE alert_id = ANY(%s) GROUP BY status", (alert_ids,)
    ).fetchall()
    return {row[0]: row[1] for row in rows}


def test_more_alerts_than_the_limit_all_arrive_later_and_never_too_fast(database_url: str, wecom: FakeWeCom) -> None:
    channel = WeComChannel()
    with psycopg.connect(database_url, autocommit=True) as conn:
        body = NotifyGroupCreate(kind=RobotKind.WECOM, name="长寿路居委会", webhook_url=wecom.robot())  # type: ignore[arg-type]
        notify_groups.insert_group(conn, body, "rl-wecom", "Putuo")
        alert_ids = open_alerts(conn, "rl-wecom", 3 * LIMIT - 2)  # 13: three windows' worth
        started = time.monotonic()
        running = Running(database_url, {"wecom": channel})
        try:
            wait_until(lambda: "pending" not in statuses(conn, alert_ids), timeout=60)
        finally:
            running.stop()
            channel.close()
        elapsed = time.monotonic() - started
        assert statuses(conn, alert_ids) == {"sent": len(alert_ids)}  # none dead, none left behind
        moved = conn.execute(
            "SELECT count(*) FROM notifications WHERE alert_id = ANY(%s) AND deadline > created_at + interval '1 s'",
            (alert_ids,),
        ).fetchone()
        assert moved is not None
        assert moved[0] >= len(alert_ids) - LIMIT  # those that queued had their deadline moved by the wait
    delivered_alerts = sorted(alert_number(message["markdown"]["content"]) for _, message in wecom.delivered)
    assert delivered_alerts == sorted(alert_ids)  # each exactly once
    assert wecom.throttled == 0
    assert not wecom.violations
    assert max_in_window(wecom.received, WINDOW_S) <= LIMIT
    assert elapsed >= 2 * WINDOW_S  # they had to wait for two more windows


def test_a_robot_the_vendor_throttles_is_paused_and_retried(database_url: str, dingtalk: FakeDingTalk) -> None:
    """Someone else used up the robot's minute: the first answers are 130101 ("send too fast")."""
    channel = DingTalkChannel(rate_limited_pause_s=1.0)
    url, secret = dingtalk.robot()
    dingtalk.script.extend([130101, 130101])
    with psycopg.connect(database_url, autocommit=True) as conn:
        body = NotifyGroupCreate(kind=RobotKind.DINGTALK, name="曹杨街道", webhook_url=url, secret=secret)  # type: ignore[arg-type]
        notify_groups.insert_group(conn, body, "rl-ding", "Putuo")
        alert_ids = open_alerts(conn, "rl-ding", 3)
        running = Running(database_url, {"dingtalk": channel})
        try:
            wait_until(lambda: "pending" not in statuses(conn, alert_ids), timeout=60)
        finally:
            running.stop()
            channel.close()
        attempts = conn.execute(
            "SELECT a.ok, a.detail FROM delivery_attempts a JOIN notifications n USING (notification_id)"
            " WHERE n.alert_id = ANY(%s) ORDER BY a.at",
            (alert_ids,),
        ).fetchall()
        assert statuses(conn, alert_ids) == {"sent": 3}
    throttled = [detail for ok, detail in attempts if not ok]
    assert len(throttled) == 2
    assert all("130101" in detail and "rate limited" in detail for detail in throttled)
    assert sum(ok for ok, _ in attempts) == 3
    assert len(dingtalk.delivered) == 3
    # After each 130101 the robot was paused for every dispatcher: no request hit it while paused.
    assert len(dingtalk.received) == 5
    assert not [v for v in dingtalk.violations if "sign" in v or "timestamp" in v]
