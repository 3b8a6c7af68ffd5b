"""The API's list queries stay index scans on a realistically filled database (EXPLAIN, not timing).

The tables get 20,000 households in 40 districts, 60,000 alerts (mostly resolved), 60,000 readings and
30,000 audit rows, then ANALYZE. Each query is the exact SQL the storage function runs: the functions
are called with a connection stand-in that prefixes ``EXPLAIN (FORMAT JSON)`` and keeps the plan.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from storage import alert_views, audit, readings, registry
from storage.access import Scope

NOW = datetime(2026, 11, 1, tzinfo=UTC)


class _Cursor:
    def __init__(self, owner: Explaining) -> None:
        self._owner = owner

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str, params: Any = None) -> _Cursor:
        self._owner.execute(query, params)
        return self

    def fetchall(self) -> list[Any]:
        return []

    def fetchone(self) -> None:
        return None


class Explaining:
    """Enough of a psycopg connection for the storage functions: every statement is EXPLAINed instead."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn
        self.plans: list[dict[str, Any]] = []

    def execute(self, query: str, params: Any = None) -> _Cursor:
        row = self._conn.execute("EXPLAIN (FORMAT JSON) " + query, params).fetchone()
        assert row is not None
        self.plans.append(row[0][0]["Plan"])
        return _Cursor(self)

    def cursor(self, **kwargs: Any) -> _Cursor:
        return _Cursor(self)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def uses_index(plan: dict[str, Any], index: str) -> bool:
    return any(node.get("Index Name") == index for node in _nodes(plan))


def seq_scans(plan: dict[str, Any]) -> set[str]:
    return {node["Relation Name"] for node in _nodes(plan) if node["Node Type"] == "Seq Scan"}


@pytest.fixture(scope="module")
def filled(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO households (household_id, name, district)"
            " SELECT 'hh-' || lpad(i::text, 6, '0'), 'n', 'district-' || (i % 40) FROM generate_series(1, 20000) i"
        )
        # The change-feed trigger is not what is measured here; without it the bulk fill is ~10x faster.
        conn.execute("ALTER TABLE alerts DISABLE TRIGGER alerts_changed")
        conn.execute(
            "INSERT INTO alerts (household_id, kind, severity, status, detector, evidence, started_at, opened_at)"
            " SELECT 'hh-' || lpad((1 + i %% 20000)::text, 6, '0'), 'k' || (i / 20000), 'high',"
            " CASE WHEN i %% 100 = 0 THEN 'open' ELSE 'resolved' END, 'd', 'e',"
            " %s - make_interval(mins => i), %s - make_interval(mins => i) FROM generate_series(1, 60000) i",
            (NOW, NOW),
        )
        conn.execute("ALTER TABLE alerts ENABLE TRIGGER alerts_changed")
        conn.execute(
            "INSERT INTO readings (device_id, ts, register_l, received_at)"
            " SELECT 'm' || (i %% 60), %s - make_interval(mins => 15 * i), i, %s FROM generate_series(1, 60000) i",
            (NOW, NOW),
        )
        conn.execute(
            "INSERT INTO audit_log (at, token_id, role, subject, action, resource, resource_id)"
            " SELECT %s, 't', 'operator', 'op-' || (i %% 200), 'view', 'household', 'hh-' || i"
            " FROM generate_series(1, 30000) i",
            (NOW,),
        )
        conn.execute("INSERT INTO caregivers (caregiver_id, name) VALUES ('cg-1', 'n')")
        conn.execute(
            "INSERT INTO care_plan_contacts (household_id, caregiver_id, role)"
            " VALUES ('hh-000007', 'cg-1', 'family'), ('hh-000008', 'cg-1', 'family')"
        )
        conn.execute("ANALYZE")
        yield conn


def test_open_alerts_page_uses_the_status_index(filled: psycopg.Connection) -> None:
    explain = Explaining(filled)
    alert_views.list_alerts(explain, Scope(), alert_views.AlertFilter(statuses=("open",)), cursor=50_000, limit=100)  # type: ignore[arg-type]
    (plan,) = explain.plans
    # The page's own index (status, alert_id DESC), or 0001's (status, severity, opened_at) then a sort of
    # the few open rows: either way one index range, never the whole table.
    assert uses_index(plan, "alerts_status_id_idx") or uses_index(plan, "alerts_status_idx"), json.dumps(plan)[:3000]
    assert "alerts" not in seq_scans(plan)


def test_household_alerts_use_the_household_index(filled: psycopg.Connection) -> None:
    explain = Explaining(filled)
    alert_views.list_alerts(explain, Scope(), alert_views.AlertFilter(household_id="hh-000042"), limit=50)  # type: ignore[arg-type]
    (plan,) = explain.plans
    assert uses_index(plan, "alerts_household_id_idx"), plan


def test_caregiver_scope_uses_the_care_plan_index(filled: psycopg.Connection) -> None:
    explain = Explaining(filled)
    alert_views.list_alerts(explain, Scope(caregiver_id="cg-1"), alert_views.AlertFilter(), limit=50)  # type: ignore[arg-type]
    (plan,) = explain.plans
    assert "alerts" not in seq_scans(plan), plan
    assert uses_index(plan, "alerts_household_id_idx") or uses_index(plan, "alerts_household_idx"), plan


def test_district_households_page_uses_the_district_index(filled: psycopg.Connection) -> None:
    explain = Explaining(filled)
    registry.list_households(explain, district="district-7", after="hh-010000", limit=100)  # type: ignore[arg-type]
    plan = explain.plans[0]
    # The foundation's query ("district IS NULL OR district = ...") lets the planner walk either index:
    # the district index, or the primary key in page order filtering by district. Both stop after a page.
    assert uses_index(plan, "households_district_idx") or uses_index(plan, "households_pkey"), plan
    assert "households" not in seq_scans(plan)


def test_raw_readings_and_hourly_usage_are_primary_key_range_scans(filled: psycopg.Connection) -> None:
    explain = Explaining(filled)
    readings.raw_page(explain, "m7", NOW - timedelta(days=2), NOW, after=None, limit=500)  # type: ignore[arg-type]
    (plan,) = explain.plans
    assert uses_index(plan, "readings_pkey"), plan
    assert "readings" not in seq_scans(plan)


def test_audit_by_subject_uses_its_index(filled: psycopg.Connection) -> None:
    explain = Explaining(filled)
    audit.list_entries(explain, subject="op-7", limit=100)  # type: ignore[arg-type]
    (plan,) = explain.plans
    assert uses_index(plan, "audit_log_subject_idx"), json.dumps(plan)[:2000]
