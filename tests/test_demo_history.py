"""The demo's seeded month (carewatch.demo_history) against the real PostgreSQL.

Seeds twelve homes from 1 November (Shanghai) to a fixed live moment on 4 December the way
``carewatch demo`` does, then checks what the demo promises: alerts at every stage (one still checking
in with the resident, unclaimed ones escalating, claimed ones, resolved ones with outcomes including
"resident fine" and device false alarms), home visits for most homes, device health, a learned normal
band on the household chart, the detectors' state handed to the live runner at the feed's end, the
messages after the live moment left for live publishing, and November's report with real figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from api.report.build import make_report
from carewatch import demo
from carewatch.demo_history import SeedResult, seed_history
from carewatch.partition_state import runner_key
from carewatch.partitions import partition_of
from simulator.answers import ResidentAnswers
from simulator.demo import history_scenarios
from simulator.fleet import Fleet
from simulator.timefmt import to_ms
from storage import feed, readings
from tests.fixtures.fix_db import cloned_database

LIVE = datetime(2026, 12, 4, 7, 3, 17, tzinfo=UTC)
HOMES = 12


class _Receiver:
    url = "http://127.0.0.1:9/hook"
    secret = "s" * 32


@pytest.fixture(scope="module")
def seeded(pg_admin_url: str, template_database: str) -> Iterator[tuple[str, Fleet, SeedResult]]:
    with cloned_database(pg_admin_url, template_database) as url:
        start = demo.history_start(LIVE)
        fleet = Fleet.generate(homes=HOMES, seed=demo.DEMO_SEED, start=start)
        demo._provision(url, fleet, _Receiver(), registered=start - timedelta(days=1))  # type: ignore[arg-type]
        incidents = demo.demo_scenarios(fleet, LIVE, speed=60)
        asking = history_scenarios(fleet, LIVE)
        quiet = frozenset(fleet.homes[i.home].household_id for i in asking)
        demo._slow_to_answer(url, quiet)
        down = frozenset(fleet.homes[i.home].household_id for i in incidents if i.kind.value == "fall")
        answers = ResidentAnswers(down=down | quiet, seed=demo.DEMO_SEED)
        simulation = fleet.simulate(LIVE - start + timedelta(hours=6), scenarios=[*incidents, *asking])
        devices = {info.device_id: info for info in fleet.device_infos()}
        with psycopg.connect(url, autocommit=True) as conn:
            result = seed_history(conn, simulation, devices, end=LIVE, answers=answers, seed=demo.DEMO_SEED)
        yield url, fleet, result


def test_history_starts_on_the_first_of_last_month_in_shanghai() -> None:
    assert demo.history_start(LIVE) == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
    # Early in a month, 30 days back is earlier than the first of last month.
    assert demo.history_start(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) == datetime(2026, 1, 29, 16, 0, tzinfo=UTC)


def test_alerts_at_every_stage(seeded: tuple[str, Fleet, SeedResult]) -> None:
    url, _, result = seeded
    with psycopg.connect(url) as conn:
        statuses = dict(conn.execute("SELECT status, count(*) FROM alerts GROUP BY status").fetchall())
        outcomes = {row[0] for row in conn.execute("SELECT DISTINCT outcome FROM alerts WHERE outcome IS NOT NULL")}
        asking = conn.execute(
            "SELECT a.kind, c.status FROM alerts a JOIN checkins c USING (alert_id) WHERE a.status = 'checking_in'"
        ).fetchall()
        escalated = conn.execute(
            "SELECT count(*) FROM alerts WHERE status IN ('open', 'notified', 'claimed') AND escalation_level >= 1"
        ).fetchone()
        pending_past = conn.execute(
            "SELECT count(*) FROM notifications WHERE status = 'pending'"
            " AND next_attempt_at < %s - interval '1 minute'",
            (LIVE,),
        ).fetchone()
    assert statuses == result.alerts
    assert statuses["resolved"] > 50
    assert statuses.get("claimed", 0) >= 1
    assert statuses.get("open", 0) + statuses.get("notified", 0) >= 1
    assert asking == [("continuous_flow", "waiting")]  # the slow resident is still being asked
    assert escalated is not None
    assert escalated[0] >= 1  # the fallen resident's alert went up the care plan
    assert {"resident_ok", "false_alarm_device", "needed_help"} <= outcomes
    # Everything due before the live moment was delivered (or given up): the live dispatcher starts clean.
    assert pending_past == (0,)


def test_visits_devices_and_the_chart(seeded: tuple[str, Fleet, SeedResult]) -> None:
    url, fleet, result = seeded
    with psycopg.connect(url) as conn:
        visited = conn.execute(
            "SELECT count(DISTINCT household_id) FROM visits WHERE visited_at >= '2026-10-31 16:00+00'"
            " AND visited_at < '2026-11-30 16:00+00'"
        ).fetchone()
        health = conn.execute(
            "SELECT count(*), count(last_seen_at), count(online), count(battery_pct) FROM devices"
        ).fetchone()
        meter = fleet.homes[0].meter.device_id
        hourly = readings.hourly_from_raw(conn, meter, LIVE - timedelta(days=28), LIVE)
        band = readings.hour_of_day_band(conn, hourly, "Asia/Shanghai")
        week = readings.hourly_from_raw(conn, meter, LIVE - timedelta(days=7), LIVE)
    assert result.visits > 0
    assert visited is not None
    assert HOMES // 2 < visited[0] <= HOMES  # most homes, not necessarily all
    assert health is not None
    assert health[0] == health[1] == health[2]
    assert health[3] > 0
    assert len(band) == 24
    assert sum(p90 for _, _, _, p90 in band) > 0
    assert sum(bucket.consumption_l for bucket in week) > 7 * 50  # a believable week of water


def test_detector_state_is_handed_to_the_live_runner(seeded: tuple[str, Fleet, SeedResult]) -> None:
    url, fleet, result = seeded
    with psycopg.connect(url) as conn:
        keys = {row[0]: row[1] for row in conn.execute("SELECT state_key, partition FROM detector_state")}
        runner = conn.execute(
            "SELECT state FROM detector_state WHERE state_key = %s",
            (runner_key(partition_of(fleet.homes[0].household_id)),),
        ).fetchone()
        now = feed.current_position(conn)
    for home in fleet.homes:
        assert keys[f"dev:{home.meter.device_id}"] == partition_of(home.household_id)
        assert keys[runner_key(partition_of(home.household_id))] == partition_of(home.household_id)
    assert runner is not None
    stored = feed.FeedPosition.from_json(runner[0]["feed"]["telemetry"])
    assert stored is not None
    assert stored.lo <= now.lo  # nothing seeded is read again by the live runner
    assert all(message.at_ms >= to_ms(LIVE) for message in result.later)
    assert result.later, "the live part is left to publish"


def test_last_months_report_has_real_figures(seeded: tuple[str, Fleet, SeedResult]) -> None:
    url, _, _ = seeded
    with psycopg.connect(url) as conn:
        report = make_report(conn, month="2026-11", district=demo.DEMO_DISTRICT, now=LIVE)
    committees = {group.committee for group in report.groups if group.level == "committee"}
    assert committees == set(demo.DEMO_COMMITTEES)
    district = next(group for group in report.groups if group.level == "district")
    assert district.homes.households == HOMES
    assert district.alerts.total > 20
    assert district.health.online_share is not None
    assert district.health.online_share > 0.9
    assert district.visits.residents_visited_share is not None
    assert 0.5 < district.visits.residents_visited_share <= 1
    assert report.complete
