"""``/api/v1/notify-groups`` and ``/caregivers/{id}/robot``: staff only, operators within their district,
secrets write-only, households of the group's district only, every write and view audited."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from tests.api.world import Served, World

Clients = Callable[[str], httpx.Client]

WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DING_URL = "https://oapi.dingtalk.com/robot/send?access_token=ff6cd723bdb4455fe18ba30dbeff007f5"


@pytest.fixture
def client(server: Served) -> Iterator[Clients]:
    opened: list[httpx.Client] = []

    def make(token: str) -> httpx.Client:
        opened.append(server.client(token))
        return opened[-1]

    yield make
    for each in opened:
        each.close()


def audit_actions(database_url: str, group_id: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT action FROM audit_log WHERE resource = 'notify_group' AND resource_id = %s ORDER BY audit_id",
            (group_id,),
        ).fetchall()
    return [row[0] for row in rows]


def test_operator_manages_the_groups_of_their_district(client: Clients, world: World, database_url: str) -> None:
    op_a, op_b = client(world.tokens.op_a), client(world.tokens.op_b)
    created = op_a.post(
        "/api/v1/notify-groups",
        json={
            "group_id": "jwh-a",
            "kind": "wecom",
            "name": "江苏路居委会值班群",
            "webhook_url": WECOM_URL,
            "household_ids": ["hh-a1", "hh-a2"],
        },
    )
    assert created.status_code == 201, created.text
    group = created.json()
    assert group["district"] == "Changning"
    assert group["webhook_host"] == "qyapi.weixin.qq.com"
    assert "693a91f6" not in created.text  # the robot's key is write-only
    assert (group["tier"], group["locale"], group["household_ids"]) == (2, "zh-CN", ["hh-a1", "hh-a2"])

    assert op_b.get("/api/v1/notify-groups/jwh-a").status_code == 404  # another district: as if absent
    assert op_b.get("/api/v1/notify-groups").json()["items"] == []
    assert client(world.tokens.cg_fam).get("/api/v1/notify-groups").status_code == 403

    changed = op_a.patch("/api/v1/notify-groups/jwh-a", json={"tier": 1, "locale": "en"})
    assert (changed.json()["tier"], changed.json()["locale"]) == (1, "en")
    outside = op_a.put("/api/v1/notify-groups/jwh-a/households", json={"household_ids": ["hh-b1"]})
    assert outside.status_code == 422
    assert "hh-b1" in outside.json()["detail"]
    narrowed = op_a.put("/api/v1/notify-groups/jwh-a/households", json={"household_ids": ["hh-a1"]})
    assert narrowed.json()["household_ids"] == ["hh-a1"]
    assert op_a.get("/api/v1/notify-groups/jwh-a").json()["household_ids"] == ["hh-a1"]
    assert [item["group_id"] for item in op_a.get("/api/v1/notify-groups").json()["items"]] == ["jwh-a"]
    assert op_a.delete("/api/v1/notify-groups/jwh-a").status_code == 204
    assert op_a.get("/api/v1/notify-groups/jwh-a").status_code == 404
    assert audit_actions(database_url, "jwh-a") == ["create", "update", "update", "view", "delete"]
    with psycopg.connect(database_url) as conn:
        listed = conn.execute(
            "SELECT detail FROM audit_log WHERE resource = 'notify_group' AND action = 'list' AND subject = 'op-a'"
        ).fetchall()
    assert ("jwh-a",) in listed


def test_dingtalk_needs_its_secret_and_wecom_has_none(client: Clients, world: World) -> None:
    admin = client(world.tokens.admin)
    base = {"kind": "dingtalk", "name": "曹杨街道", "webhook_url": DING_URL, "district": "Putuo"}
    assert admin.post("/api/v1/notify-groups", json=base).status_code == 422
    created = admin.post("/api/v1/notify-groups", json={**base, "group_id": "ding-b", "secret": "SEC" + "a" * 64})
    assert created.status_code == 201, created.text
    assert created.json()["has_secret"] is True
    assert "SECaaa" not in created.text
    assert (
        admin.post("/api/v1/notify-groups", json={**base, "group_id": "ding-b", "secret": "SEC" + "a" * 64}).status_code
        == 409
    )
    wecom = {"kind": "wecom", "name": "x", "webhook_url": WECOM_URL, "district": "Putuo", "secret": "SEC12345678"}
    assert admin.post("/api/v1/notify-groups", json=wecom).status_code == 422
    assert admin.post("/api/v1/notify-groups", json={**wecom, "secret": None, "district": None}).status_code == 422
    op_a = client(world.tokens.op_a)
    assert op_a.post("/api/v1/notify-groups", json={**base, "secret": "SEC" + "b" * 64}).status_code == 403


def test_caregiver_chooses_a_robot_within_scope(client: Clients, world: World, database_url: str) -> None:
    admin, op_a = client(world.tokens.admin), client(world.tokens.op_a)
    created = admin.post(
        "/api/v1/notify-groups",
        json={
            "group_id": "ding-a",
            "kind": "dingtalk",
            "name": "家庭群",
            "webhook_url": DING_URL,
            "secret": "SEC" + "c" * 64,
            "district": "Changning",
            "tier": 1,
        },
    )
    assert created.status_code == 201
    assert op_a.put("/api/v1/caregivers/cg-vol/robot", json={"group_id": "ding-a"}).json() == {"group_id": "ding-a"}
    assert op_a.put("/api/v1/caregivers/cg-vol/robot", json={"group_id": "ding-b"}).status_code == 404  # Putuo's
    assert op_a.put("/api/v1/caregivers/nobody/robot", json={"group_id": "ding-a"}).status_code == 404
    assert (
        client(world.tokens.cg_vol).put("/api/v1/caregivers/cg-vol/robot", json={"group_id": None}).status_code == 403
    )
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT robot_group_id FROM caregivers WHERE caregiver_id = 'cg-vol'").fetchone()
    assert row == ("ding-a",)
    assert op_a.put("/api/v1/caregivers/cg-vol/robot", json={"group_id": None}).status_code == 200
