"""Every figure of the monthly report's json format equals the same figure worked out here, on the
simulated month, with queries and arithmetic written in this test (not through ``storage.monthly_report``).

The month's bounds are computed with zoneinfo (Shanghai midnight to midnight), each group is queried
on its own with a plain WHERE, device availability is a walk over every receipt in Python, and the
false-alarm rule is restated here on purpose: if the report's rule changes, this test says so.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from api.report.build import make_report
from tests.report.month import DISTRICTS, GENERATED_AT, MONTH, MONTH_END, MONTH_START, SHANGHAI, World

START, END = MONTH_START, MONTH_END
GRACE, LOW_BATTERY = 2.0, 20
FALSE_ALARMS = {"false_alarm_device", "resident_ok", "away"}


@pytest.fixture(scope="module")
def report(month_world: World) -> dict[str, Any]:
    with psycopg.connect(month_world.database_url, autocommit=True) as conn:
        made = make_report(conn, month=MONTH, district=None, now=GENERATED_AT)
    return made.model_dump(mode="json")


@pytest.fixture(scope="module")
def conn(month_world: World) -> Iterator[psycopg.Connection]:
    with psycopg.connect(month_world.database_url, autocommit=True) as connection:
        yield connection


def _groups() -> list[tuple[str, str | None, str | None]]:
    out: list[tuple[str, str | None, str | None]] = [("all", None, None)]
    for district, committees in sorted(DISTRICTS.items()):
        out.append(("district", district, None))
        out.extend(("committee", district, committee) for committee in sorted(committees))
    return out


def _where(district: str | None, committee: str | None) -> tuple[str, list[Any]]:
    """Households of the group registered before the month ended (alias ``h``)."""
    clause, params = "h.created_at < %s", [END]
    if district is not None:
        clause += " AND h.district = %s"
        params.append(district)
    if committee is not None:
        clause += " AND h.committee = %s"
        params.append(committee)
    return clause, params


def _one(conn: psycopg.Connection, query: str, params: list[Any]) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def test_the_simulated_month_has_what_the_report_must_count(conn: psycopg.Connection, month_world: World) -> None:
    """Not a vacuous comparison: alerts in every stage, every check-in answer, dead pages, claims early
    and late, visits in and out of the month, and the edge cases of the world."""
    states = {row[0] for row in conn.execute("SELECT coalesce(outcome, status) FROM alerts").fetchall()}
    assert {"claimed", "notified", "resident_ok", "false_alarm_device", "emergency", "test", "away"} <= states
    answers = {row[0] for row in conn.execute("SELECT coalesce(answer, status) FROM checkins").fetchall()}
    assert {"ok", "help", "away", "unanswered"} <= answers
    assert _one(conn, "SELECT count(*) FROM notifications WHERE status = 'dead'", []) > 0
    assert _one(conn, "SELECT count(*) FROM alerts WHERE opened_at < %s", [START]) > 0  # before the month
    assert _one(conn, "SELECT count(*) FROM alerts WHERE claimed_at - paged_at <= interval '60 s'", []) > 0
    assert _one(conn, "SELECT count(*) FROM alerts WHERE claimed_at - paged_at > interval '15 min'", []) > 0
    assert _one(conn, "SELECT count(*) FROM visits WHERE visited_at >= %s", [END]) > 0
    assert _one(conn, "SELECT count(*) FROM status_reports WHERE online IS FALSE", []) > 0  # Last Wills
    assert _one(conn, "SELECT count(*) FROM status_reports WHERE battery_pct < %s", [LOW_BATTERY]) > 0
    assert month_world.alerts > 100


def test_groups_are_the_districts_and_their_committees(report: dict[str, Any], month_world: World) -> None:
    assert [(g["level"], g["district"], g["committee"]) for g in report["groups"]] == _groups()
    assert report["complete"] is True
    assert [(p["district"], p["timezone"]) for p in report["periods"]] == [
        (d, "Asia/Shanghai") for d in sorted(DISTRICTS)
    ]
    assert {datetime.fromisoformat(p["start"]) for p in report["periods"]} == {START}
    assert {datetime.fromisoformat(p["end"]) for p in report["periods"]} == {END}
    everything = report["groups"][0]
    assert everything["homes"]["households"] == len(month_world.households) + 1  # + the home with no devices


@pytest.mark.parametrize("group", _groups(), ids=lambda g: "/".join(x for x in g if x))
def test_homes_devices_and_visits(
    report: dict[str, Any], conn: psycopg.Connection, group: tuple[str, str | None, str | None]
) -> None:
    figures = _find(report, group)
    where, params = _where(group[1], group[2])
    in_service = "d.created_at < %s AND (d.decommissioned_at IS NULL OR d.decommissioned_at > %s)"
    devices = dict(
        conn.execute(
            f"SELECT d.device_type, count(*) FROM devices d JOIN households h USING (household_id)"
            f" WHERE {where} AND {in_service} GROUP BY d.device_type",
            [*params, END, START],
        ).fetchall()
    )
    residents = "SELECT count(*) FROM residents r JOIN households h USING (household_id) WHERE {} AND r.created_at < %s"
    visited = (
        "EXISTS (SELECT 1 FROM visits v WHERE v.household_id = h.household_id"
        " AND v.visited_at >= %s AND v.visited_at < %s)"
    )
    assert figures["homes"] == {
        "households": _one(conn, f"SELECT count(*) FROM households h WHERE {where}", params),
        "residents": _one(conn, residents.format(where), [*params, END]),
        "homes_monitored": _one(
            conn,
            f"SELECT count(DISTINCT h.household_id) FROM devices d JOIN households h USING (household_id)"
            f" WHERE {where} AND {in_service}",
            [*params, END, START],
        ),
        "devices": sum(devices.values()),
        "water_meters": devices.get("water_meter", 0),
        "smoke_alarms": devices.get("smoke_alarm", 0),
        "call_buttons": devices.get("call_button", 0),
    }
    residents_visited = _one(conn, residents.format(f"{where} AND {visited}"), [*params, START, END, END])
    all_residents = _one(conn, residents.format(where), [*params, END])
    assert figures["visits"] == {
        "households": figures["homes"]["households"],
        "households_visited": _one(
            conn, f"SELECT count(*) FROM households h WHERE {where} AND {visited}", [*params, START, END]
        ),
        "visits": _one(
            conn,
            f"SELECT count(*) FROM visits v JOIN households h USING (household_id)"
            f" WHERE {where} AND v.visited_at >= %s AND v.visited_at < %s",
            [*params, START, END],
        ),
        "residents": all_residents,
        "residents_visited": residents_visited,
        "residents_visited_share": _share(residents_visited, all_residents),
    }


@pytest.mark.parametrize("group", _groups(), ids=lambda g: "/".join(x for x in g if x))
def test_alerts_pages_checkins_service_levels_and_false_alarms(
    report: dict[str, Any], conn: psycopg.Connection, group: tuple[str, str | None, str | None]
) -> None:
    figures = _find(report, group)
    where, params = _where(group[1], group[2])
    month = f"{where} AND a.opened_at >= %s AND a.opened_at < %s"
    month_params = [*params, START, END]
    by_kind: dict[str, dict[str, int]] = {}
    for kind, state, n in conn.execute(
        f"SELECT a.kind, coalesce(a.outcome, a.status), count(*) FROM alerts a JOIN households h USING (household_id)"
        f" WHERE {month} GROUP BY 1, 2",
        month_params,
    ).fetchall():
        by_kind.setdefault(kind, {})[state] = n
    assert figures["alerts"] == {"total": sum(sum(s.values()) for s in by_kind.values()), "by_kind": by_kind}

    pages = dict(
        conn.execute(
            f"SELECT n.status, count(*) FROM notifications n JOIN alerts a USING (alert_id)"
            f" JOIN households h ON h.household_id = a.household_id"
            f" WHERE {month} AND n.caregiver_id IS NOT NULL AND n.reason <> 'claimed_by_other' GROUP BY 1",
            month_params,
        ).fetchall()
    )
    assert figures["pages"] == {
        "alerts_paged": _one(
            conn,
            f"SELECT count(*) FROM alerts a JOIN households h USING (household_id)"
            f" WHERE {month} AND a.paged_at IS NOT NULL",
            month_params,
        ),
        "notifications": sum(pages.values()),
        **{status: pages.get(status, 0) for status in ("sent", "dead", "pending", "cancelled")},
    }

    checkins = Counter(
        {
            (status, answer): n
            for status, answer, n in conn.execute(
                f"SELECT c.status, c.answer, count(*) FROM checkins c JOIN alerts a USING (alert_id)"
                f" JOIN households h ON h.household_id = a.household_id WHERE {month} GROUP BY 1, 2",
                month_params,
            ).fetchall()
        }
    )
    started = sum(checkins.values())
    answered = {answer: checkins[("answered", answer)] for answer in ("ok", "help", "away")}
    no_answer = checkins[("unanswered", None)]
    assert figures["checkins"] == {
        "started": started,
        **answered,
        "no_answer": no_answer,
        "other": started - sum(answered.values()) - no_answer,
    }

    timed = conn.execute(
        f"SELECT a.severity, a.paged_at, a.first_notified_at, coalesce(a.claimed_at, a.resolved_at), a.resolved_at"
        f" FROM alerts a JOIN households h USING (household_id) WHERE {month} AND a.paged_at IS NOT NULL",
        month_params,
    ).fetchall()

    def seconds(later: datetime | None, paged: datetime) -> float | None:
        return None if later is None else (later - paged).total_seconds()

    def median(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return round(statistics.median(present), 3) if present else None

    answered_in = [(severity, seconds(answered_at, paged)) for severity, paged, _, answered_at, _ in timed]
    critical = [s for severity, s in answered_in if severity == "critical"]
    high = [s for severity, s in answered_in if severity == "high"]
    within = {limit: sum(1 for s in critical if s is not None and s <= limit) for limit in (60, 180)}
    high_15 = sum(1 for s in high if s is not None and s <= 900)
    assert figures["service"] == {
        "critical": len(critical),
        "critical_claimed_60s": within[60],
        "critical_claimed_180s": within[180],
        "critical_share_60s": _share(within[60], len(critical)),
        "critical_share_180s": _share(within[180], len(critical)),
        "high": len(high),
        "high_claimed_15min": high_15,
        "high_share_15min": _share(high_15, len(high)),
        "median_to_first_notification_s": median([seconds(row[2], row[1]) for row in timed]),
        "median_to_claim_s": median([s for _, s in answered_in]),
        "median_to_resolution_s": median([seconds(row[4], row[1]) for row in timed]),
    }

    detectors: dict[str, dict[str, Any]] = {}
    for detector, outcome, paged, n in conn.execute(
        f"SELECT a.detector, a.outcome, a.paged_at IS NOT NULL, count(*)"
        f" FROM alerts a JOIN households h USING (household_id)"
        f" WHERE {month} AND a.status = 'resolved' GROUP BY 1, 2, 3",
        month_params,
    ).fetchall():
        entry = detectors.setdefault(detector, {"all": Counter(), "paged": Counter()})
        entry["all"][outcome] += n
        if paged:
            entry["paged"][outcome] += n

    def rate(detector: str, counts: Counter[str]) -> float | None:
        if detector == "visits":
            return None
        counted = sum(n for outcome, n in counts.items() if outcome != "test")
        return _share(sum(n for outcome, n in counts.items() if outcome in FALSE_ALARMS), counted)

    assert figures["detectors"] == [
        {
            "detector": detector,
            "resolved": sum(entry["all"].values()),
            "outcomes": dict(sorted(entry["all"].items())),
            "false_alarm_rate": rate(detector, entry["all"]),
            "paged": sum(entry["paged"].values()),
            "paged_false_alarm_rate": rate(detector, entry["paged"]),
        }
        for detector, entry in sorted(detectors.items())
    ]


@pytest.mark.parametrize("group", _groups(), ids=lambda g: "/".join(x for x in g if x))
def test_device_health_walked_receipt_by_receipt(
    report: dict[str, Any], conn: psycopg.Connection, group: tuple[str, str | None, str | None]
) -> None:
    """Offline: after a Last Will at once, otherwise once silent for grace × the expected interval."""
    where, params = _where(group[1], group[2])
    devices = conn.execute(
        f"SELECT d.device_id, d.expected_interval_s, d.created_at, d.decommissioned_at FROM devices d"
        f" JOIN households h USING (household_id) WHERE {where} AND d.created_at < %s"
        f" AND (d.decommissioned_at IS NULL OR d.decommissioned_at > %s)",
        [*params, END, START],
    ).fetchall()
    wills = {
        (row[0], row[1], row[2])
        for row in conn.execute("SELECT device_id, ts, seq FROM status_reports WHERE NOT online")
    }
    service = offline = 0.0
    at_end = online_at_end = reported = low = 0
    for device_id, interval, created, decommissioned in devices:
        limit = timedelta(seconds=interval * GRACE)
        start, stop = max(created, START), min(decommissioned or END, END)
        service += (stop - start).total_seconds()
        last, will = created, False

        def offline_between(a: datetime, b: datetime, start: datetime = start, stop: datetime = stop) -> float:
            return max(0.0, (min(b, stop) - max(a, start)).total_seconds())

        receipts = conn.execute(
            "SELECT received_at, ts, seq FROM message_receipts WHERE device_id = %s AND received_at < %s"
            " ORDER BY received_at",
            (device_id, stop),
        ).fetchall()
        heard = sorted((received, (device_id, ts, seq) in wills) for received, ts, seq in receipts)
        for received, is_will in heard:
            offline += offline_between(last if will else last + limit, received)
            last, will = received, is_will
        offline += offline_between(last if will else last + limit, stop)
        if decommissioned is None or decommissioned >= END:
            at_end += 1
            online_at_end += not (will or END - last > limit)
            battery = conn.execute(
                "SELECT battery_pct FROM status_reports WHERE device_id = %s AND received_at < %s"
                " AND battery_pct IS NOT NULL ORDER BY ts DESC, seq DESC LIMIT 1",
                (device_id, END),
            ).fetchone()
            if battery is not None:
                reported += 1
                low += battery[0] < LOW_BATTERY
    figures = _find(report, group)["health"]
    assert figures == {
        "devices": len(devices),
        "device_hours": round(service / 3600, 3),
        "offline_hours": pytest.approx(round(offline / 3600, 3), abs=0.002),
        "online_share": pytest.approx(_share(service - offline, service), abs=0.0001),
        "devices_at_end": at_end,
        "online_at_end": online_at_end,
        "online_share_at_end": _share(online_at_end, at_end),
        "battery_reported": reported,
        "battery_low": low,
        "battery_low_share": _share(low, reported),
    }
    if group[0] == "all":
        assert offline > 0  # the outages of the month are seen
        assert online_at_end < at_end  # a meter silent since 28 November


def test_residents_not_visited_and_alerts_per_day(report: dict[str, Any], conn: psycopg.Connection) -> None:
    expected = conn.execute(
        "SELECT h.district, h.committee, h.household_id, r.resident_id, r.name,"
        " (SELECT max(visited_at) FROM visits v WHERE v.household_id = h.household_id AND v.visited_at < %s)"
        " FROM residents r JOIN households h USING (household_id)"
        " WHERE h.created_at < %s AND r.created_at < %s AND NOT EXISTS (SELECT 1 FROM visits v"
        "  WHERE v.household_id = h.household_id AND v.visited_at >= %s AND v.visited_at < %s)"
        " ORDER BY 1, 2, 3, 4",
        (END, END, END, START, END),
    ).fetchall()
    got = [
        (r["district"], r["committee"], r["household_id"], r["resident_id"], r["name"], r["last_visit_at"])
        for r in report["not_visited"]
    ]
    assert got == [(*row[:5], row[5].isoformat().replace("+00:00", "Z") if row[5] else None) for row in expected]
    assert ("普陀区", "曹杨居委会", "d1-nodevice", "res-d1-nodevice", "李大爷", None) in got
    assert not any(row[2] == "d0-late" for row in got)  # registered after the month

    days: Counter[tuple[str, str]] = Counter()
    for district, opened in conn.execute(
        "SELECT h.district, a.opened_at FROM alerts a JOIN households h USING (household_id)"
        " WHERE h.created_at < %s AND a.opened_at >= %s AND a.opened_at < %s",
        (END, START, END),
    ).fetchall():
        days[(district, opened.astimezone(SHANGHAI).date().isoformat())] += 1
    assert [(d["district"], d["day"], d["alerts"]) for d in report["alerts_per_day"]] == [
        (district, day, n) for (district, day), n in sorted(days.items())
    ]


def _find(report: dict[str, Any], group: tuple[str, str | None, str | None]) -> dict[str, Any]:
    (found,) = [g for g in report["groups"] if (g["level"], g["district"], g["committee"]) == group]
    return found
