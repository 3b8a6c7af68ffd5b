"""The API in both languages: alert evidence and timeline by ``Accept-Language`` (the structure beside
the text), problem details' title and detail, the page's catalogue, and a caregiver's language setting."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from alerting.service import AlertingConfig, apply_findings
from schemas.evidence import NoWater
from schemas.kinds import AlertKind, Severity
from tests.api.world import NOW, Served, World, finding

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


def _open_inactivity(database_url: str) -> int:
    message = NoWater(window_h=12, since=NOW - timedelta(hours=12.25), litres=5.5, quiet_s=44100, reading_at=NOW)
    with psycopg.connect(database_url) as conn:
        (alert_id,) = apply_findings(
            conn,
            [finding("hh-a2", AlertKind.INACTIVITY, Severity.HIGH, NOW, message=message)],
            NOW,
            AlertingConfig(),
        )
    return alert_id


def test_alert_evidence_and_timeline_in_the_clients_language(server: Served, world: World, database_url: str) -> None:
    alert_id = _open_inactivity(database_url)
    with server.client(world.tokens.op_a) as client:
        english = client.get(f"/api/v1/alerts/{alert_id}").json()
        chinese = client.get(f"/api/v1/alerts/{alert_id}", headers=ZH).json()
        listed = client.get("/api/v1/alerts", params={"household_id": "hh-a2"}, headers=ZH).json()["items"]
        timeline = client.get(f"/api/v1/alerts/{alert_id}/timeline", headers=ZH).json()
    assert english["evidence"].startswith("no water used for 12 h: none since ")
    assert chinese["evidence"].startswith("已 12 小时未用水：自 ")
    assert "仅有滴漏 5.5 升" in chinese["evidence"]
    assert chinese["evidence_data"] == english["evidence_data"]
    assert english["evidence_data"]["message"]["kind"] == "no_water"
    assert english["evidence_data"]["tz"] == "Asia/Shanghai"
    assert next(a for a in listed if a["alert_id"] == alert_id)["evidence"] == chinese["evidence"]
    opened = next(event for event in timeline if event["action"] == "opened")
    assert opened["detail"] == chinese["evidence"]
    assert opened["detail_data"] == english["evidence_data"]
    # An alert from before evidence was data keeps its text in every language.
    with server.client(world.tokens.cg_fam) as client:
        old = client.get(f"/api/v1/alerts/{world.alerts['a1-sos']}", headers=ZH).json()
    assert (old["evidence"], old["evidence_data"]["message"]["kind"]) == ("sos test evidence", "text")


def test_problem_details_in_the_clients_language(server: Served, world: World) -> None:
    with server.client(world.tokens.op_a) as client:
        missing = client.get("/api/v1/alerts/987654", headers=ZH)
        english = client.get("/api/v1/alerts/987654")
        invalid = client.get("/api/v1/alerts", params={"limit": 0}, headers=ZH)
        forbidden = client.post(
            "/api/v1/households", json={"household_id": "hh-x", "name": "x", "district": "Putuo"}, headers=ZH
        )
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.headers["content-language"] == "zh-CN"
    assert missing.json() == {"type": "about:blank", "title": "未找到", "status": 404, "detail": "未找到告警 987654"}
    assert english.json()["title"] == "Not found"
    assert english.json()["detail"] == "alert 987654 not found"
    assert english.headers["content-language"] == "en"
    assert (invalid.status_code, invalid.json()["title"]) == (422, "请求无效")
    assert invalid.json()["detail"] == "请求不符合接口定义"
    assert forbidden.status_code in {201, 403}
    with server.client(None) as anonymous:
        unauthorized = anonymous.get("/api/v1/alerts", headers=ZH)
    assert (unauthorized.status_code, unauthorized.json()["title"]) == (401, "未授权")
    assert unauthorized.json()["detail"] == "需要提供 Bearer 令牌"


def test_alert_lifecycle_refusals_in_the_clients_language(server: Served, world: World) -> None:
    sos = world.alerts["b1-sos"]
    with server.client(world.tokens.admin) as client:
        first = client.post(f"/api/v1/alerts/{sos}/resolve", json={"actor": "root", "outcome": "test"})
        again = client.post(f"/api/v1/alerts/{sos}/resolve", json={"actor": "root", "outcome": "test"}, headers=ZH)
    assert first.status_code == 200
    assert again.status_code == 409
    assert again.json() == {"type": "about:blank", "title": "冲突", "status": 409, "detail": f"告警 {sos} 已处理完毕"}


def test_the_page_catalogue_is_open_and_holds_the_chinese(server: Served) -> None:
    with server.client(None) as anonymous:
        chinese = anonymous.get("/i18n/zh-CN.json")
        english = anonymous.get("/i18n/en.json")
        unknown = anonymous.get("/i18n/fr.json")
    assert chinese.status_code == 200
    assert chinese.json()["Alert board"] == "告警看板"
    assert chinese.json()["alert kind\x04smoke alarm"] == "烟感报警"
    assert chinese.json()["smoke alarm"] == "烟感报警器"
    assert english.json() == {}
    assert unknown.status_code == 404


def test_a_caregiver_sets_their_language(server: Served, world: World, database_url: str) -> None:
    with server.client(world.tokens.cg_fam) as client:
        own = client.patch("/api/v1/caregivers/cg-fam", json={"locale": "en"})
        other = client.patch("/api/v1/caregivers/cg-vol", json={"locale": "en"})
        bad = client.patch("/api/v1/caregivers/cg-fam", json={"locale": "fr"})
        untouched = client.patch("/api/v1/caregivers/cg-fam", json={})
    assert own.status_code == 200
    assert {k: v for k, v in own.json().items() if k != "created_at"} == {
        "caregiver_id": "cg-fam",
        "name": "Name cg-fam",
        "phone": "13800000000",
        "email": "",
        "webhook_url": None,
        "locale": "en",
    }
    assert other.status_code == 404
    assert bad.status_code == 422
    assert untouched.json()["locale"] == "en"
    with server.client(world.tokens.op_a) as client:
        cleared = client.patch("/api/v1/caregivers/cg-fam", json={"locale": None})
    assert cleared.json()["locale"] is None
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT locale FROM caregivers WHERE caregiver_id = 'cg-fam'").fetchone()
    assert row == (None,)
