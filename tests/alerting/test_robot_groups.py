"""Group chats end to end on the real database: a 居委会 WeCom group serving a household gets its team's
alerts at its tier's step and sees who claimed; a volunteer who chose a DingTalk group robot is
@-mentioned there; decline and escalation rules are unchanged by groups (a group never declines)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from alerting.channels import FakeChannel
from alerting.dispatcher import Dispatcher
from alerting.robots import DingTalkChannel, WeComChannel
from alerting.service import AlertingConfig, claim_alert, decline_alert
from schemas.alerts import NotificationPublic
from schemas.groups import NotifyGroupCreate, RobotKind
from schemas.kinds import AlertKind
from storage import notify_groups, outbox
from tests.alerting.helpers import Clock, Member, finding, open_alert, provision, timeline_actions
from tests.alerting.vendor_fakes import FakeDingTalk, FakeWeCom

CONFIG = AlertingConfig(delivery_deadline=timedelta(seconds=30))


@pytest.fixture(scope="module")
def wecom() -> Iterator[FakeWeCom]:
    fake = FakeWeCom()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def dingtalk() -> Iterator[FakeDingTalk]:
    fake = FakeDingTalk()
    yield fake
    fake.stop()


def add_group(
    conn: psycopg.Connection, group_id: str, url: str, households: list[str], *, secret: str | None = None
) -> None:
    kind = RobotKind.DINGTALK if secret else RobotKind.WECOM
    body = NotifyGroupCreate(kind=kind, name=f"{group_id} 居委会值班群", webhook_url=url, secret=secret)  # type: ignore[arg-type]
    notify_groups.insert_group(conn, body, group_id, "Putuo")
    notify_groups.replace_households(conn, group_id, households)


class World:
    def __init__(self, database_url: str, wecom: FakeWeCom, dingtalk: FakeDingTalk) -> None:
        self.clock = Clock()
        self.webhook = FakeChannel("webhook")
        self.wecom_channel = WeComChannel(link_base="https://cw.example.gov.cn")
        self.dingtalk_channel = DingTalkChannel()
        self.dispatcher = Dispatcher(
            conninfo=database_url,
            channels={"webhook": self.webhook, "wecom": self.wecom_channel, "dingtalk": self.dingtalk_channel},
            config=CONFIG,
            clock=self.clock,
            visit_check_every_s=None,
        )
        self.wecom, self.dingtalk = wecom, dingtalk

    def close(self) -> None:
        self.dispatcher.close()
        self.wecom_channel.close()
        self.dingtalk_channel.close()


@pytest.fixture
def world(database_url: str, wecom: FakeWeCom, dingtalk: FakeDingTalk) -> Iterator[World]:
    built = World(database_url, wecom, dingtalk)
    yield built
    built.close()


def team(conn: psycopg.Connection, prefix: str, wecom: FakeWeCom, dingtalk: FakeDingTalk) -> str:
    """A household cared for by family (webhook), a volunteer on their DingTalk group robot and committee
    staff (webhook), and served by the 居委会's WeCom group at tier 2. Returns the household id."""
    household = f"hh-{prefix}"
    hook = "http://127.0.0.1:9/unused"
    provision(
        conn,
        household,
        [
            Member(f"{prefix}-fam", "family", 1, hook, "s" * 16, channels=["webhook"]),
            Member(f"{prefix}-vol", "volunteer", 1, phone="13800138111", channels=["dingtalk"]),
            Member(f"{prefix}-staff", "committee_staff", 2, hook, "s" * 16, channels=["webhook"]),
        ],
        district="Putuo",
    )
    add_group(conn, f"{prefix}-jwh", wecom.robot(), [household])
    url, secret = dingtalk.robot()
    add_group(conn, f"{prefix}-vol-group", url, [], secret=secret)
    notify_groups.set_caregiver_robot(conn, f"{prefix}-vol", f"{prefix}-vol-group")
    return household


def test_group_chat_gets_the_alert_and_sees_who_claimed(world: World, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        household = team(conn, "g1", world.wecom, world.dingtalk)
        wecom_before, dingtalk_before = len(world.wecom.delivered), len(world.dingtalk.delivered)
        alert_id = open_alert(conn, finding(household), world.clock(), CONFIG)
        assert world.dispatcher.run_once() == 4  # family, staff (webhook), volunteer (DingTalk), 居委会 group
        (group_message,) = [message for _, message in world.wecom.delivered[wecom_before:]]
        assert group_message["msgtype"] == "markdown"
        content = group_message["markdown"]["content"]
        assert "【紧急】一键呼叫 · 住户 hh-g1" in content
        assert f"警报编号 {alert_id}" in content
        assert "https://cw.example.gov.cn/#/household/hh-g1" in content
        (volunteer_message,) = [message for _, message in world.dingtalk.delivered[dingtalk_before:]]
        assert volunteer_message["at"]["atMobiles"] == ["13800138111"]
        assert "请 @13800138111 处理" in volunteer_message["markdown"]["text"]
        notify = conn.execute(
            "SELECT detail FROM alert_events WHERE alert_id = %s AND action = 'notify'", (alert_id,)
        ).fetchone()
        assert notify is not None
        assert "group g1-jwh" in notify[0]

        with conn.transaction():
            claim_alert(conn, alert_id, "g1-staff", world.clock(), CONFIG)
        world.dispatcher.run_once()
        group_notices = [message for _, message in world.wecom.delivered[wecom_before + 1 :]]
        robot_notices = [message for _, message in world.dingtalk.delivered[dingtalk_before + 1 :]]
        assert len(group_notices) == 1
        assert "已由 g1-staff 认领，其他人无需处理" in group_notices[0]["markdown"]["content"]
        assert len(robot_notices) == 1  # the volunteer's group is told once, without a mention
        assert robot_notices[0]["at"]["atMobiles"] == []
        assert "已由 g1-staff 认领" in robot_notices[0]["markdown"]["text"]
        assert [d.body["reason"] for d in world.webhook.sent if d.caregiver_id == "g1-fam"] == [
            "new",
            "claimed_by_other",
        ]
        rows = [NotificationPublic.model_validate(row) for row in outbox.list_for_alert(conn, alert_id)]
        assert {row.status for row in rows} == {"sent"}
        assert {(row.caregiver_id, row.group_id, row.channel) for row in rows if row.group_id} == {
            (None, "g1-jwh", "wecom"),
            ("g1-vol", "g1-vol-group", "dingtalk"),
            (None, "g1-vol-group", "dingtalk"),
        }
    assert not world.wecom.violations
    assert not world.dingtalk.violations


def test_group_joins_at_its_tier_and_never_blocks_declines(world: World, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        household = team(conn, "g2", world.wecom, world.dingtalk)
        before = len(world.wecom.delivered)
        high = open_alert(conn, finding(household, AlertKind.INACTIVITY), world.clock(), CONFIG)
        world.dispatcher.run_once()
        assert len(world.wecom.delivered) == before  # high: tier 1 first; the group is tier 2
        world.clock.advance(minutes=16)
        world.dispatcher.run_once()
        (message,) = [message for _, message in world.wecom.delivered[before:]]
        assert "无人认领，已升级" in message["markdown"]["content"]
        assert "【重要】未用水" in message["markdown"]["content"]

        sos = open_alert(conn, finding(household), world.clock(), CONFIG)
        world.dispatcher.run_once()
        with conn.transaction():
            for caregiver in ("g2-fam", "g2-vol"):
                decline_alert(conn, sos, caregiver, "", world.clock(), CONFIG)
            escalated = decline_alert(conn, sos, "g2-staff", "", world.clock(), CONFIG)
        assert escalated  # everyone asked declined; the group chat is not someone who could
        assert "escalated" in timeline_actions(conn, high)
        assert timeline_actions(conn, sos).count("declined") == 3
