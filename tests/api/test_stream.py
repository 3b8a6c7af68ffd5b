"""The SSE alert stream: changes made by another process arrive live, filtered by what the caller may see,
and a reconnecting client gets what it missed from ``Last-Event-ID``."""

from __future__ import annotations

import json
import queue
import threading
from datetime import UTC, datetime

import httpx
import psycopg

from alerting.service import AlertingConfig, apply_findings
from schemas.kinds import AlertKind, Severity
from tests.api.world import Served, World, finding


def _listen(
    server: Served,
    token: str,
    events: queue.Queue[dict[str, object]],
    stop: threading.Event,
    last_id: str | None = None,
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    with (
        httpx.Client(base_url=server.url, timeout=httpx.Timeout(10, read=30)) as client,
        client.stream("GET", "/api/v1/alerts/stream", headers=headers) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        events.put({"connected": True})
        event: dict[str, object] = {}
        for line in response.iter_lines():
            if stop.is_set():
                return
            if line.startswith("id: "):
                event["id"] = line[4:]
            elif line.startswith("data: "):
                event["alert"] = json.loads(line[6:])
            elif line == "" and event:
                events.put(event)
                event = {}


def _start(
    server: Served, token: str, last_id: str | None = None
) -> tuple[queue.Queue[dict[str, object]], threading.Event, threading.Thread]:
    events: queue.Queue[dict[str, object]] = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(target=_listen, args=(server, token, events, stop, last_id), daemon=True)
    thread.start()
    assert events.get(timeout=10) == {"connected": True}
    return events, stop, thread


def _alert_ids(events: queue.Queue[dict[str, object]], timeout: float) -> list[int]:
    seen = []
    try:
        while True:
            seen.append(events.get(timeout=timeout)["alert"]["alert_id"])  # type: ignore[index]
    except queue.Empty:
        return seen


def test_changes_from_another_process_arrive_filtered_by_scope(server: Served, world: World, database_url: str) -> None:
    fam_events, fam_stop, _ = _start(server, world.tokens.cg_fam)
    op_b_events, op_b_stop, _ = _start(server, world.tokens.op_b)
    # Another process (a detector runner) opens alerts in two districts: a plain connection, not the API.
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        (a1,) = apply_findings(
            conn, [finding("hh-a1", AlertKind.ROUTINE_MISSED, Severity.HIGH, now)], now, AlertingConfig()
        )
        (b1,) = apply_findings(conn, [finding("hh-b1", AlertKind.SMOKE, Severity.CRITICAL, now)], now, AlertingConfig())
    first = fam_events.get(timeout=10)
    assert first["alert"]["alert_id"] == a1  # type: ignore[index]
    # A routine alert asks the resident first (hh-a1 has a call button): the board shows it checking in.
    assert first["alert"]["status"] == "checking_in"  # type: ignore[index]
    assert first["alert"]["checkin"]["status"] == "waiting"  # type: ignore[index]
    assert b1 not in _alert_ids(fam_events, 1.0)
    assert set(_alert_ids(op_b_events, 2.0)) == {b1}

    # A claim through the API is an update like any other.
    with server.client(world.tokens.cg_fam) as client:
        assert client.post(f"/api/v1/alerts/{a1}/claim", json={"caregiver_id": "cg-fam"}).status_code == 200
    claimed = fam_events.get(timeout=10)
    assert claimed["alert"]["status"] == "claimed"  # type: ignore[index]
    fam_stop.set()
    op_b_stop.set()

    # Reconnecting with the id of the first event replays what came after it.
    replay_events, replay_stop, _ = _start(server, world.tokens.cg_fam, last_id=str(first["id"]))
    replayed = replay_events.get(timeout=10)
    assert replayed["alert"]["alert_id"] == a1
    assert int(str(replayed["id"])) > int(str(first["id"]))
    replay_stop.set()


def test_stream_needs_a_reader_role(server: Served, world: World) -> None:
    with server.client(world.tokens.provisioner) as client:
        assert client.get("/api/v1/alerts/stream").status_code == 403
    with server.client(None) as client:
        assert client.get("/api/v1/alerts/stream").status_code == 401
