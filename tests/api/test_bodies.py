"""Response bodies of the endpoints the role tests reach only by status, and the map that keeps every
operation of ``/openapi.json`` tied to a test that asserts its body (a new route without one fails here).
"""

from __future__ import annotations

import ast
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.api.world import NOW, Served, World

V1 = "/api/v1"
TESTS = Path(__file__).parents[1]

# Every operation -> "file::test" that asserts its response body (not only the status).
BODY_TESTS: dict[tuple[str, str], str] = {
    ("POST", "/households"): "api/test_access.py::test_operator_sees_only_their_district",
    ("GET", "/households"): "api/test_access.py::test_operator_sees_only_their_district",
    ("GET", "/households/{household_id}"): "api/test_bodies.py::test_household_and_residents",
    ("PATCH", "/households/{household_id}"): "api/test_bodies.py::test_household_moves_to_a_committee",
    ("GET", "/reports/monthly"): "report/test_report_api.py::test_json_report_of_the_operators_district",
    ("GET", "/households/{household_id}/residents"): "api/test_access.py::test_medical_notes_follow_the_care_role",
    ("POST", "/households/{household_id}/residents"): "api/test_bodies.py::test_household_and_residents",
    ("PUT", "/households/{household_id}/care-plan/{caregiver_id}"): "api/test_bodies.py::test_caregivers_and_contacts",
    ("GET", "/households/{household_id}/care-plan"): "api/test_bodies.py::test_caregivers_and_contacts",
    ("GET", "/households/{household_id}/settings"): "api/test_household_settings.py::"
    "test_settings_default_and_round_trip_through_the_detectors_reader",
    ("PUT", "/households/{household_id}/settings"): "api/test_household_settings.py::"
    "test_settings_default_and_round_trip_through_the_detectors_reader",
    ("POST", "/households/{household_id}/absences"): "api/test_household_settings.py::"
    "test_caregiver_announces_an_absence_and_ends_it_early",
    ("POST", "/households/{household_id}/absences/end"): "api/test_household_settings.py::"
    "test_caregiver_announces_an_absence_and_ends_it_early",
    ("POST", "/caregivers"): "api/test_bodies.py::test_caregivers_and_contacts",
    ("GET", "/caregivers"): "api/test_access.py::test_caregiver_sees_only_their_care_plans_with_404_for_the_rest",
    ("GET", "/caregivers/{caregiver_id}"): "api/test_bodies.py::test_caregivers_and_contacts",
    ("POST", "/caregivers/{caregiver_id}/app-credentials"): "test_broker_security.py::"
    "test_caregiver_apps_read_only_their_own_topics",
    ("DELETE", "/caregivers/{caregiver_id}/app-credentials"): "test_broker_security.py::"
    "test_caregiver_apps_read_only_their_own_topics",
    ("PATCH", "/caregivers/{caregiver_id}"): "api/test_languages.py::test_a_caregiver_sets_their_language",
    ("POST", "/devices"): "api/test_devices_fleet_readings.py::test_rotating_credentials_replaces_the_password",
    ("GET", "/devices"): "api/test_access.py::test_caregiver_sees_only_their_care_plans_with_404_for_the_rest",
    ("GET", "/devices/{device_id}"): "api/test_bodies.py::test_device_alert_and_whoami",
    ("POST", "/devices/{device_id}/credentials"): "api/test_devices_fleet_readings.py::"
    "test_rotating_credentials_replaces_the_password",
    ("POST", "/devices/{device_id}/decommission"): "api/test_devices_fleet_readings.py::"
    "test_decommissioning_removes_the_device_and_revokes_its_login",
    ("GET", "/devices/{device_id}/readings"): "api/test_devices_fleet_readings.py::test_raw_readings_page_by_timestamp",
    ("GET", "/devices/{device_id}/usage"): "api/test_devices_fleet_readings.py::test_usage_per_hour_and_per_local_day",
    ("GET", "/devices/{device_id}/usage/band"): "api/test_devices_fleet_readings.py::"
    "test_usage_band_percentiles_per_local_hour",
    ("GET", "/alerts/stream"): "api/test_stream.py::test_changes_from_another_process_arrive_filtered_by_scope",
    ("GET", "/alerts"): "api/test_access.py::test_caregiver_sees_only_their_care_plans_with_404_for_the_rest",
    ("GET", "/alerts/{alert_id}"): "api/test_bodies.py::test_device_alert_and_whoami",
    ("GET", "/alerts/{alert_id}/timeline"): "test_end_to_end.py::test_sos_press_reaches_the_caregiver_webhook",
    ("POST", "/alerts/{alert_id}/claim"): "api/test_access.py::test_caregiver_claims_and_resolves_as_themselves",
    ("POST", "/alerts/{alert_id}/resolve"): "api/test_access.py::test_caregiver_claims_and_resolves_as_themselves",
    ("GET", "/whoami"): "api/test_bodies.py::test_device_alert_and_whoami",
    ("POST", "/tokens"): "api/test_access.py::test_revoked_and_expired_tokens_are_refused",
    ("DELETE", "/tokens/{token_id}"): "api/test_access.py::test_revoked_and_expired_tokens_are_refused",
    ("GET", "/audit"): "api/test_access.py::test_views_and_writes_are_audited_with_ids_only",
    ("GET", "/fleet/health"): "api/test_devices_fleet_readings.py::test_fleet_health_applies_every_rule",
    ("POST", "/alerts/{alert_id}/decline"): "alerting/test_api.py::test_decline_through_the_api",
    ("GET", "/alerts/{alert_id}/deliveries"): "alerting/test_api.py::test_decline_through_the_api",
    ("GET", "/care-plans/{household_id}"): "alerting/test_api.py::test_care_plan_roundtrip_and_medical_notes_by_role",
    ("PUT", "/care-plans/{household_id}"): "alerting/test_api.py::test_care_plan_roundtrip_and_medical_notes_by_role",
    ("GET", "/caregivers/{caregiver_id}/households"): "alerting/test_api.py::"
    "test_care_plan_roundtrip_and_medical_notes_by_role",
    ("POST", "/households/{household_id}/visits"): "alerting/test_api.py::"
    "test_overdue_visit_becomes_a_task_and_a_visit_closes_it",
    ("GET", "/households/{household_id}/visits"): "alerting/test_api.py::"
    "test_overdue_visit_becomes_a_task_and_a_visit_closes_it",
    ("GET", "/service-levels"): "alerting/test_api.py::test_service_levels_outcomes_and_dead_deliveries",
    ("GET", "/service-levels/outcomes"): "alerting/test_api.py::test_service_levels_outcomes_and_dead_deliveries",
    ("GET", "/deliveries/dead"): "alerting/test_api.py::test_service_levels_outcomes_and_dead_deliveries",
    (
        "POST",
        "/checkins/{checkin_id}/answer",
    ): "test_checkins_end_to_end.py::test_the_phone_gateway_answer_ok_resolves_it",
    ("GET", "/checkins/{checkin_id}"): "test_checkins_end_to_end.py::test_the_phone_gateway_answer_ok_resolves_it",
    ("GET", "/households/{household_id}/checkins"): "test_checkins_end_to_end.py::"
    "test_the_phone_gateway_answer_ok_resolves_it",
    ("GET", "/healthz"): "api/test_devices_fleet_readings.py::test_readyz_is_503_when_the_database_is_unreachable",
    ("GET", "/readyz"): "api/test_devices_fleet_readings.py::test_readyz_names_the_failing_runtime_check",
    ("GET", "/households/{household_id}/export"): "api/test_personal_data.py::"
    "test_export_holds_every_personal_field_and_is_audited",
    ("POST", "/households/{household_id}/erasure"): "api/test_personal_data.py::"
    "test_erasure_leaves_no_personal_data_and_keeps_the_statistics",
    # Messaging-robot destinations (issue 18).
    ("POST", "/notify-groups"): "api/test_notify_groups.py::test_operator_manages_the_groups_of_their_district",
    ("GET", "/notify-groups"): "api/test_notify_groups.py::test_operator_manages_the_groups_of_their_district",
    (
        "GET",
        "/notify-groups/{group_id}",
    ): "api/test_notify_groups.py::test_operator_manages_the_groups_of_their_district",
    ("PATCH", "/notify-groups/{group_id}"): "api/test_notify_groups.py::"
    "test_operator_manages_the_groups_of_their_district",
    ("PUT", "/notify-groups/{group_id}/households"): "api/test_notify_groups.py::"
    "test_operator_manages_the_groups_of_their_district",
    ("DELETE", "/notify-groups/{group_id}"): "api/test_notify_groups.py::"
    "test_operator_manages_the_groups_of_their_district",
    (
        "PUT",
        "/caregivers/{caregiver_id}/robot",
    ): "api/test_notify_groups.py::test_caregiver_chooses_a_robot_within_scope",
}


def test_every_operation_has_a_test_that_asserts_its_body(server: Served) -> None:
    operations = {
        (method.upper(), path.removeprefix(V1))
        for path, item in server.app.openapi()["paths"].items()
        for method in item
    }
    assert operations == set(BODY_TESTS)
    for where in set(BODY_TESTS.values()):
        file, name = where.split("::")
        tree = ast.parse((TESTS / file).read_text())
        assert name in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}, where


def _json(server: Served, token: str, method: str, path: str, body: object = None, status: int = 200) -> Any:
    with server.client(token) as client:
        response = client.request(method, V1 + path, json=body)
    assert response.status_code == status, response.text
    return response.json()


def _recent(value: str) -> bool:
    return abs((datetime.fromisoformat(value) - NOW).total_seconds()) < 2 * 3600


def test_household_and_residents(server: Served, world: World) -> None:
    household = _json(server, world.tokens.cg_fam, "GET", "/households/hh-a1")
    resident_id = household["residents"][0]["resident_id"]
    assert _recent(household.pop("created_at"))
    assert household == {
        "household_id": "hh-a1",
        "name": "Resident of hh-a1",
        "address": "secret address",
        "district": "Changning",
        "committee": "",
        "timezone": "Asia/Shanghai",
        "residents": [{"resident_id": resident_id, "name": "Elder hh-a1", "birth_year": 1940}],
    }
    added = _json(
        server,
        world.tokens.op_a,
        "POST",
        "/households/hh-a2/residents",
        {"name": "Li Yeye", "birth_year": 1938, "medical_notes": "pacemaker"},
        status=201,
    )
    assert added["resident_id"].startswith("res-")
    assert {k: v for k, v in added.items() if k != "resident_id"} == {
        "household_id": "hh-a2",
        "name": "Li Yeye",
        "birth_year": 1938,
        "medical_notes": "pacemaker",
        "medical_notes_visible": True,
        "phone": "",
        "locale": "zh-CN",
    }
    listed = _json(server, world.tokens.op_a, "GET", "/households/hh-a2/residents")
    assert added in listed


def test_caregivers_and_contacts(server: Served, world: World) -> None:
    created = _json(
        server,
        world.tokens.op_a,
        "POST",
        "/caregivers",
        {
            "caregiver_id": "cg-body",
            "name": "Chen",
            "phone": "13700000000",
            "webhook_url": "https://example.org/hook",
            "webhook_secret": "s" * 20,
        },
        status=201,
    )
    assert _recent(created.pop("created_at"))
    expected = {
        "caregiver_id": "cg-body",
        "name": "Chen",
        "phone": "13700000000",
        "email": "",
        "webhook_url": "https://example.org/hook",
        "locale": None,
    }
    assert created == expected  # the webhook secret is write-only
    fetched = _json(server, world.tokens.admin, "GET", "/caregivers/cg-body")
    assert {k: v for k, v in fetched.items() if k != "created_at"} == expected
    contact = {"caregiver_id": "cg-body", "role": "committee_staff"}
    put = _json(server, world.tokens.op_a, "PUT", "/households/hh-a2/care-plan/cg-body", contact)
    assert put == {"household_id": "hh-a2", "caregiver_id": "cg-body", "role": "committee_staff", "tier": 2}
    plan = _json(server, world.tokens.op_a, "GET", "/households/hh-a1/care-plan")
    assert plan == [
        {"household_id": "hh-a1", "caregiver_id": "cg-fam", "role": "family", "tier": 1},
        {"household_id": "hh-a1", "caregiver_id": "cg-vol", "role": "volunteer", "tier": 1},
    ]


def test_device_alert_and_whoami(server: Served, world: World) -> None:
    device = _json(server, world.tokens.cg_fam, "GET", "/devices/a1-button")
    assert _recent(device.pop("created_at"))
    assert device == {
        "device_id": "a1-button",
        "device_type": "call_button",
        "household_id": "hh-a1",
        "expected_interval_s": 6 * 3600,
        "last_seen_at": None,
        "online": None,
        "battery_pct": None,
    }
    alert = _json(server, world.tokens.cg_fam, "GET", f"/alerts/{world.alerts['a1-sos']}")
    assert {k: alert[k] for k in ("alert_id", "household_id", "device_id", "kind", "severity", "evidence")} == {
        "alert_id": world.alerts["a1-sos"],
        "household_id": "hh-a1",
        "device_id": "a1-button",
        "kind": "sos",
        "severity": "critical",
        "evidence": "sos test evidence",
    }
    assert datetime.fromisoformat(alert["started_at"]) == NOW - timedelta(hours=2)
    assert _json(server, world.tokens.op_a, "GET", "/whoami") == {
        "token_id": world.tokens.op_a.split("_")[1],
        "role": "operator",
        "subject": "op-a",
        "district": "Changning",
    }


def test_household_moves_to_a_committee(server: Served, world: World) -> None:
    moved = _json(server, world.tokens.op_a, "PATCH", "/households/hh-a2", {"committee": "华阳路居委会"})
    assert (moved["household_id"], moved["district"], moved["committee"]) == ("hh-a2", "Changning", "华阳路居委会")
    assert _json(server, world.tokens.admin, "GET", "/households/hh-a2")["committee"] == "华阳路居委会"
    # Another district's household is not found; caregivers may not change households; bodies are strict.
    _json(server, world.tokens.op_b, "PATCH", "/households/hh-a2", {"committee": "x"}, status=404)
    _json(server, world.tokens.cg_fam, "PATCH", "/households/hh-a1", {"committee": "x"}, status=403)
    _json(server, world.tokens.op_a, "PATCH", "/households/hh-a2", {"district": "Putuo"}, status=422)
    created = _json(
        server,
        world.tokens.op_a,
        "POST",
        "/households",
        {"household_id": "hh-a9", "name": "New home", "committee": "新华路居委会"},
        status=201,
    )
    assert (created["district"], created["committee"]) == ("Changning", "新华路居委会")
