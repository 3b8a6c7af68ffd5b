"""Access and erasure requests (``api.personal_data``): the export holds every personal field; an erasure
leaves no marker anywhere in the database but where justified, keeps alert statistics and the audit
trail, and is audited; both commands (``carewatch export`` / ``erase``) do the same as the admin API.

A household is provisioned through the API with a marker in each personal field; the alerts, the note
the resident typed on the call button, the declines, resolutions, visits, deliveries and a reject are
made as the pipeline makes them (the alerting service, the outbox), so every table that can hold
personal data holds some.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from alerting.service import AlertingConfig, apply_findings
from carewatch import cli
from schemas import evidence as ev
from schemas.findings import Finding
from schemas.kinds import AlertKind, Severity
from storage import outbox, service_levels
from storage.erasure import ERASED
from tests.api.world import Served, World
from tests.privacy import Markers, Provisioned, provision, scan_database

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE, UNTIL = NOW - timedelta(days=30), NOW + timedelta(days=1)


@pytest.fixture(scope="module")
def admin(server: Served, world: World) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {world.tokens.admin}"}
    with httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=10) as client:
        yield client


def _populate(admin: httpx.Client, database_url: str, markers: Markers, household_id: str) -> Provisioned:
    """A household with a marker in every personal field, and the activity that copies them around."""
    shared = Markers()
    admin.post("/caregivers", json={"caregiver_id": f"{household_id}-shared", "name": shared.text("SharedName")})
    home = provision(
        admin,
        markers,
        household_id=household_id,
        caregiver_id=f"{household_id}-cg",
        webhook_url="http://127.0.0.1:9/hook",
        webhook_secret="s" * 32,
        extra_contacts=[{"caregiver_id": f"{household_id}-shared", "role": "volunteer"}],
    )
    # The shared volunteer also serves hh-a2: their name must survive this household's erasure.
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO care_plan_contacts (household_id, caregiver_id, role, tier)"
            " VALUES ('hh-a2', %s, 'volunteer', 1)",
            (f"{household_id}-shared",),
        )
        button, meter = home.devices["call_button"], home.devices["water_meter"]
        note = markers.text("ResidentNote")
        # What the ingest stores: the button's service request with the note the resident typed, a meter
        # reading, a status report, the receipt, and a refused message quoting the note.
        conn.execute(
            "INSERT INTO events VALUES (%s, %s, 1, 'service_request', %s, %s)",
            (button, NOW - timedelta(hours=3), note, NOW),
        )
        conn.execute("INSERT INTO readings VALUES (%s, %s, 12.5, %s)", (meter, NOW - timedelta(hours=3), NOW))
        conn.execute("INSERT INTO status_reports VALUES (%s, %s, 1, true, 90, -70, 'fw1', %s)", (meter, NOW, NOW))
        conn.execute("INSERT INTO message_receipts VALUES (%s, 1, %s, 'event', %s, false)", (button, NOW, NOW))
        conn.execute(
            "INSERT INTO rejects (received_at, topic, device_id, reason, detail, payload, payload_size)"
            " VALUES (%s, %s, %s, 'invalid_json', 'bad', %s, 40)",
            (NOW, f"care/v1/dev/{button}/event", button, f'{{"note": "{note}"'.encode()),
        )
        conn.execute(
            "INSERT INTO detector_state VALUES (%s, %s, %s)", (f"dev:{meter}", Jsonb({"learned": "routine"}), NOW)
        )
        # Alerts as the detectors open them: the service request quotes the note, as its detector does.
        config = AlertingConfig()
        request, sos = (
            Finding(
                kind=kind,
                severity=severity,
                household_id=household_id,
                device_id=button,
                at=NOW - timedelta(hours=3),
                detected_at=NOW - timedelta(hours=3),
                evidence=ev.Evidence(message=message, tz="Asia/Shanghai", as_of=NOW - timedelta(hours=3)),
                detector="call_sos",
                details={"note": note},
            )
            for kind, severity, message in (
                (AlertKind.SERVICE_REQUEST, Severity.NORMAL, ev.ServiceRequested(at=NOW, note=ev.Note(text=note))),
                (AlertKind.SOS, Severity.CRITICAL, ev.SosPressed(at=NOW, note=ev.Note(text=note))),
            )
        )
        request_id, sos_id = (apply_findings(conn, [f], NOW - timedelta(hours=3), config)[0] for f in (request, sos))
        pending = conn.execute(
            "SELECT notification_id FROM notifications WHERE alert_id = %s ORDER BY 1 LIMIT 1", (sos_id,)
        ).fetchone()
        assert pending is not None
        outbox.record_attempt(conn, pending[0], 1, NOW, False, f"gateway HTTP 400: bad text {note}")
        conn.commit()
    ok = {200, 201}
    decline = {"caregiver_id": home.caregiver_id, "note": markers.text("DeclineNote")}
    assert admin.post(f"/alerts/{sos_id}/decline", json=decline).status_code in ok
    resolve = {"actor": home.caregiver_id, "outcome": "needed_help", "note": markers.text("ResolveNote")}
    assert admin.post(f"/alerts/{request_id}/resolve", json=resolve).status_code in ok
    visit = {"caregiver_id": home.caregiver_id, "note": markers.text("VisitNote")}
    assert admin.post(f"/households/{household_id}/visits", json=visit).status_code in ok
    return home


def _statistics(database_url: str) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """Service levels by district and by caregiver, and outcomes by detector."""
    with psycopg.connect(database_url) as conn:
        levels = [
            *service_levels.service_levels(conn, since=SINCE, until=UNTIL, group_by="district"),
            *service_levels.service_levels(conn, since=SINCE, until=UNTIL, group_by="caregiver"),
        ]
        outcomes = service_levels.outcomes_by_detector(conn, since=SINCE, until=UNTIL)
    return levels, outcomes


def test_export_holds_every_personal_field_and_is_audited(admin: httpx.Client, database_url: str) -> None:
    markers = Markers()
    home = _populate(admin, database_url, markers, "hh-export")

    response = admin.get(f"/households/{home.household_id}/export", params={"raw_days": 1})

    assert response.status_code == 200
    document = response.json()
    assert document["format"] == "carewatch.household-export.v1"
    text = json.dumps(document)
    # Every marker of the resident's data; caregivers' phone and e-mail are theirs, not the resident's.
    missing = [name for name, value in markers.values().items() if value not in text]
    assert missing == ["Phone", "Email"]
    assert {device["device_id"] for device in document["devices"]} == set(home.devices.values())
    assert document["raw_readings"] == [
        {"device_id": home.devices["water_meter"], "ts": document["raw_readings"][0]["ts"], "register_l": 12.5}
    ]
    assert {alert["kind"] for alert in document["alerts"]} == {"sos", "service_request"}
    assert all(alert["timeline"] for alert in document["alerts"])
    assert document["truncated"] == []
    audit = admin.get("/audit", params={"resource": "household", "resource_id": home.household_id}).json()["items"]
    assert audit[0]["action"] == "export"
    assert admin.get("/households/hh-nobody/export").status_code == 404


def test_erasure_leaves_no_personal_data_and_keeps_the_statistics(
    admin: httpx.Client, database_url: str, world: World
) -> None:
    markers = Markers()
    home = _populate(admin, database_url, markers, "hh-erase")
    with psycopg.connect(database_url) as conn:
        assert {marker for _, _, marker in scan_database(conn, list(markers.values().values()))} == set(
            markers.values().values()
        ), "every marker is somewhere before the erasure"
    levels_before, outcomes_before = _statistics(database_url)

    mistyped = admin.post(f"/households/{home.household_id}/erasure", json={"confirm_household_id": "hh-a1"})
    assert mistyped.status_code == 422
    response = admin.post(f"/households/{home.household_id}/erasure", json={"confirm_household_id": home.household_id})

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["already_erased"] is False
    assert report["alerts_kept"] == 2
    assert report["alerts_resolved"] == 1  # the sos was still open
    assert report["caregivers_erased"] == [home.caregiver_id]  # the shared volunteer serves hh-a2 too
    assert sorted(report["devices_decommissioned"]) == sorted(home.devices.values())
    assert report["rows_deleted"]["events"] == 1
    assert report["rows_deleted"]["rejects"] == 1

    with psycopg.connect(database_url) as conn:
        found = scan_database(conn, [*markers.values().values(), "SharedName"])
        shared_name = conn.execute(
            "SELECT name FROM caregivers WHERE caregiver_id = %s", (f"{home.household_id}-shared",)
        ).fetchone()
        household = conn.execute(
            "SELECT name, address, district, erased_at FROM households WHERE household_id = %s", (home.household_id,)
        ).fetchone()
        alerts = conn.execute(
            "SELECT kind, severity, status, outcome, evidence FROM alerts WHERE household_id = %s ORDER BY kind",
            (home.household_id,),
        ).fetchall()
        devices = conn.execute(
            "SELECT count(*) FROM devices WHERE household_id = %s AND decommissioned_at IS NULL", (home.household_id,)
        ).fetchone()
    # Justified: the shared volunteer's name, kept because they still serve hh-a2.
    assert [(table, column) for table, column, _ in found] == [("caregivers", "name")]
    assert shared_name is not None
    assert "SharedName" in shared_name[0]
    assert household is not None
    assert household[:3] == (ERASED, "", "Changning")
    assert household[3] is not None
    assert alerts == [
        ("service_request", "normal", "resolved", "needed_help", ERASED),
        ("sos", "critical", "resolved", "other", ERASED),
    ]
    assert devices == (0,)

    # The statistics count the erased household's alerts as before (the sos now resolved: its times and
    # so the medians moved, the counts did not).
    levels_after, outcomes_after = _statistics(database_url)
    counts = ("grp", "alerts", "critical", "high")
    assert [{k: row[k] for k in counts} for row in levels_after] == [
        {k: row[k] for k in counts} for row in levels_before
    ]
    assert {(o["detector"], o["outcome"]): o["n"] for o in outcomes_after} == {
        **{(o["detector"], o["outcome"]): o["n"] for o in outcomes_before},
        ("call_sos", "other"): 1,
    }
    # The audit trail keeps the erasure, with ids only.
    audit = admin.get("/audit", params={"resource": "household", "resource_id": home.household_id}).json()["items"]
    assert audit[0]["action"] == "erase"
    assert markers.tag not in json.dumps(audit)
    # Erasing again is harmless; the caregiver's token of an erased caregiver no longer works.
    again = admin.post(f"/households/{home.household_id}/erasure", json={"confirm_household_id": home.household_id})
    assert again.json()["already_erased"] is True
    assert admin.post("/households/hh-nobody/erasure", json={"confirm_household_id": "hh-nobody"}).status_code == 404


def test_only_admins_may_export_or_erase(server: Served, world: World) -> None:
    for token in (world.tokens.op_a, world.tokens.cg_fam, world.tokens.provisioner):
        with server.client(token) as client:
            assert client.get("/api/v1/households/hh-a1/export").status_code == 403
            erase = client.post("/api/v1/households/hh-a1/erasure", json={"confirm_household_id": "hh-a1"})
            assert erase.status_code == 403


def test_the_commands_export_and_erase_like_the_api(
    admin: httpx.Client,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    markers = Markers()
    home = _populate(admin, database_url, markers, "hh-cli")
    monkeypatch.setenv("CAREWATCH_DATABASE_URL", database_url)
    output = tmp_path / "export.json"

    assert cli.main(["export", "--household", home.household_id, "--output", str(output)]) == 0
    assert output.stat().st_mode & 0o777 == 0o600
    assert markers.text("Medical") in output.read_text(encoding="utf-8")

    assert cli.main(["erase", "--household", home.household_id]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["household_id"] == home.household_id
    with psycopg.connect(database_url) as conn:
        assert [row[:2] for row in scan_database(conn, list(markers.values().values()))] == []
        audit = conn.execute(
            "SELECT action, subject, client FROM audit_log WHERE resource_id = %s AND client = 'cli' ORDER BY audit_id",
            (home.household_id,),
        ).fetchall()
    assert [row[0] for row in audit] == ["export", "erase"]
    assert all(row[1].startswith("cli:") for row in audit)
    assert cli.main(["erase", "--household", "hh-nobody"]) == 1
