"""Assembling the monthly report: the query rows of ``storage.monthly_report`` into ``MonthlyReport``.

Pure apart from :func:`make_report`, which reads the database in one read-only snapshot. Shares and the
false-alarm rate are computed here, with the service-level API's own rule (``false_alarm_rate``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import pq

from api.routes.service_levels import NOT_DETECTORS, false_alarm_rate
from schemas.kinds import Outcome
from schemas.report import (
    AlertFigures,
    CheckinFigures,
    DailyAlerts,
    DetectorFigures,
    DeviceHealthFigures,
    GroupFigures,
    GroupLevel,
    HomeFigures,
    MonthlyReport,
    PageFigures,
    Period,
    ServiceLevelFigures,
    Targets,
    UnvisitedResident,
    VisitFigures,
)
from storage import monthly_report as store

log = logging.getLogger(__name__)

# The telecare standard's answer times (TEC Services Association) and the programs' monthly visit.
TARGETS = Targets(critical_60s=0.975, critical_180s=0.99, visits=1.0)

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_LEVELS = {store.ALL: GroupLevel.ALL, store.DISTRICT: GroupLevel.DISTRICT, store.COMMITTEE: GroupLevel.COMMITTEE}

GroupKey = tuple[GroupLevel, str | None, str | None]


class ReportRequestError(ValueError):
    """The month asked for is malformed or has not begun."""


def parse_month(text: str) -> date:
    match = _MONTH.match(text)
    year = int(match.group(1)) if match else 0
    if match is None or not 1900 <= year <= 9998:
        raise ReportRequestError(f"month must look like 2026-11, not {text!r}")
    return date(year, int(match.group(2)), 1)


def share(part: int | float, whole: int | float) -> float | None:
    return round(part / whole, 4) if whole else None


def make_report(conn: psycopg.Connection, *, month: str, district: str | None, now: datetime) -> MonthlyReport:
    """Read and assemble the report of ``month`` ("2026-11") for ``district`` (None: every district)."""
    first = parse_month(month)
    scope = store.MonthScope(month=first, district=district, now=now)
    # UTC+14 is the earliest clock on Earth: before its midnight the month has begun nowhere.
    if first > (now + timedelta(hours=14)).date():
        raise ReportRequestError(f"month {month} has not begun")
    started = time.perf_counter()
    fresh = conn.info.transaction_status is pq.TransactionStatus.IDLE
    with conn.transaction():
        if fresh:  # one consistent snapshot for every figure
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        rows = store.read_month(conn, scope)
    report = assemble(rows, month=month, district=district, now=now, next_month=scope.next_month)
    log.info(
        "monthly report %s for district %s: %d groups in %.2f s",
        month,
        district or "(all)",
        len(report.groups),
        time.perf_counter() - started,
    )
    return report


def assemble(
    rows: store.MonthRows, *, month: str, district: str | None, now: datetime, next_month: date
) -> MonthlyReport:
    keys = [_key(row) for row in rows.homes if _key(row)[0] is not GroupLevel.ALL or district is None]
    if district is None and not any(key[0] is not GroupLevel.ALL for key in keys):
        keys = []  # nothing registered: no groups, not one empty total
    by = {
        "health": _index(rows.device_health),
        "pages": _index(rows.pages),
        "service": _index(rows.service_levels),
        "visits": _index(rows.visits),
    }
    homes = _index(rows.homes)
    kinds = _nested(rows.alerts_by_kind, "kind", "state")
    outcomes = _detector_rows(rows.detector_outcomes)
    groups = [
        GroupFigures(
            level=key[0],
            district=key[1],
            committee=key[2],
            homes=_homes(homes[key]),
            health=_health(by["health"].get(key)),
            alerts=AlertFigures(
                total=sum(sum(s.values()) for s in kinds.get(key, {}).values()), by_kind=kinds.get(key, {})
            ),
            pages=_pages(by["pages"].get(key), by["service"].get(key)),
            checkins=_checkins(by["service"].get(key)),
            service=_service(by["service"].get(key)),
            detectors=_detectors(outcomes.get(key, {})),
            visits=_visits(by["visits"].get(key)),
        )
        for key in sorted(keys, key=_order)
    ]
    return MonthlyReport(
        month=month,
        district=district,
        generated_at=now,
        complete=_complete(rows.periods, now, next_month),
        periods=[
            Period(
                district=p["district"],
                timezone=p["timezone"],
                start=p["m_start"],
                end=p["m_end"],
                households=p["households"],
            )
            for p in rows.periods
        ],
        targets=TARGETS,
        groups=groups,
        not_visited=[UnvisitedResident.model_validate(row) for row in rows.not_visited],
        alerts_per_day=[DailyAlerts(district=r["district"], day=r["day"], alerts=r["n"]) for r in rows.alerts_per_day],
    )


def _complete(periods: list[dict[str, Any]], now: datetime, next_month: date) -> bool:
    """Over in every household's time zone (with none, over at UTC-12, the last clock on Earth)."""
    if periods:
        return all(period["m_end"] < now for period in periods)
    return datetime(next_month.year, next_month.month, 1, tzinfo=UTC) + timedelta(hours=12) <= now


def _key(row: dict[str, Any]) -> GroupKey:
    level = _LEVELS[row["level"]]
    return (
        level,
        row["district"] if level is not GroupLevel.ALL else None,
        row["committee"] if level is GroupLevel.COMMITTEE else None,
    )


def _order(key: GroupKey) -> tuple[int, str, int, str]:
    """The total first, then each district followed by its committees."""
    level, district, committee = key
    if level is GroupLevel.ALL:
        return (0, "", 0, "")
    return (1, district or "", 0 if level is GroupLevel.DISTRICT else 1, committee or "")


def _index(rows: Iterable[dict[str, Any]]) -> dict[GroupKey, dict[str, Any]]:
    return {_key(row): row for row in rows}


def _nested(rows: Iterable[dict[str, Any]], outer: str, inner: str) -> dict[GroupKey, dict[str, dict[str, int]]]:
    out: dict[GroupKey, dict[str, dict[str, int]]] = {}
    for row in rows:
        out.setdefault(_key(row), {}).setdefault(row[outer], {})[row[inner]] = int(row["n"])
    return out


def _detector_rows(rows: Iterable[dict[str, Any]]) -> dict[GroupKey, dict[str, dict[bool, dict[Outcome, int]]]]:
    out: dict[GroupKey, dict[str, dict[bool, dict[Outcome, int]]]] = {}
    for row in rows:
        per_paged = out.setdefault(_key(row), {}).setdefault(row["detector"], {})
        per_paged.setdefault(bool(row["paged"]), {})[Outcome(row["outcome"])] = int(row["n"])
    return out


def _sum(counts: Iterable[dict[Outcome, int]]) -> dict[Outcome, int]:
    total: dict[Outcome, int] = {}
    for part in counts:
        for outcome, n in part.items():
            total[outcome] = total.get(outcome, 0) + n
    return total


def _detectors(per_detector: dict[str, dict[bool, dict[Outcome, int]]]) -> list[DetectorFigures]:
    result = []
    for detector, per_paged in sorted(per_detector.items()):
        counts = _sum(per_paged.values())
        paged = per_paged.get(True, {})
        rated = detector not in NOT_DETECTORS
        result.append(
            DetectorFigures(
                detector=detector,
                resolved=sum(counts.values()),
                outcomes=dict(sorted(counts.items())),
                false_alarm_rate=false_alarm_rate(counts) if rated else None,
                paged=sum(paged.values()),
                paged_false_alarm_rate=false_alarm_rate(paged) if rated else None,
            )
        )
    return result


def _int(row: dict[str, Any] | None, name: str) -> int:
    return int(row[name]) if row is not None and row[name] is not None else 0


def _seconds(row: dict[str, Any] | None, name: str) -> float | None:
    return None if row is None or row[name] is None else round(float(row[name]), 3)


def _homes(row: dict[str, Any]) -> HomeFigures:
    names = ("households", "residents", "homes_monitored", "devices", "water_meters", "smoke_alarms", "call_buttons")
    return HomeFigures(**{name: _int(row, name) for name in names})


def _health(row: dict[str, Any] | None) -> DeviceHealthFigures:
    service_s = float(row["service_s"]) if row else 0.0
    offline_s = float(row["offline_s"]) if row else 0.0
    at_end, reported = _int(row, "devices_at_end"), _int(row, "battery_reported")
    return DeviceHealthFigures(
        devices=_int(row, "devices"),
        device_hours=round(service_s / 3600, 3),
        offline_hours=round(offline_s / 3600, 3),
        online_share=share(service_s - offline_s, service_s),
        devices_at_end=at_end,
        online_at_end=_int(row, "online_at_end"),
        online_share_at_end=share(_int(row, "online_at_end"), at_end),
        battery_reported=reported,
        battery_low=_int(row, "battery_low"),
        battery_low_share=share(_int(row, "battery_low"), reported),
    )


def _pages(row: dict[str, Any] | None, service: dict[str, Any] | None) -> PageFigures:
    return PageFigures(
        alerts_paged=_int(service, "pages"),
        **{name: _int(row, name) for name in ("notifications", "sent", "dead", "pending", "cancelled")},
    )


def _checkins(row: dict[str, Any] | None) -> CheckinFigures:
    started = _int(row, "checkins")
    answers = {
        "ok": _int(row, "checkins_ok"),
        "help": _int(row, "checkins_help"),
        "away": _int(row, "checkins_away"),
        "no_answer": _int(row, "checkins_unanswered"),
    }
    return CheckinFigures(started=started, other=started - sum(answers.values()), **answers)


def _service(row: dict[str, Any] | None) -> ServiceLevelFigures:
    critical, high = _int(row, "critical"), _int(row, "high")
    return ServiceLevelFigures(
        critical=critical,
        critical_claimed_60s=_int(row, "critical_60"),
        critical_claimed_180s=_int(row, "critical_180"),
        critical_share_60s=share(_int(row, "critical_60"), critical),
        critical_share_180s=share(_int(row, "critical_180"), critical),
        high=high,
        high_claimed_15min=_int(row, "high_900"),
        high_share_15min=share(_int(row, "high_900"), high),
        median_to_first_notification_s=_seconds(row, "median_notified_s"),
        median_to_claim_s=_seconds(row, "median_answered_s"),
        median_to_resolution_s=_seconds(row, "median_resolved_s"),
    )


def _visits(row: dict[str, Any] | None) -> VisitFigures:
    residents = _int(row, "residents")
    return VisitFigures(
        households=_int(row, "households"),
        households_visited=_int(row, "households_visited"),
        visits=_int(row, "visits"),
        residents=residents,
        residents_visited=_int(row, "residents_visited"),
        residents_visited_share=share(_int(row, "residents_visited"), residents),
    )
