"""Service levels and dead deliveries: what operators watch to see that alerts reach people.

``GET /service-levels?group_by=district|caregiver&since=&until=``: per group, the share of critical
alerts claimed within 60 s and 180 s (the telecare standard: 97.5 % and 99 %), of high alerts claimed
within 15 minutes, and median times to first notification, claim and resolution.
``GET /service-levels/outcomes``: resolved alerts per detector by outcome and the false-alarm rate.
``GET /deliveries/dead``: notifications that could not be delivered before their deadline, newest
first: each one is a person who was never told, to be followed up by phone.
Operators see their district only; the period defaults to the last 30 days.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api.auth import Principal, Staff
from api.deps import Connection, Context
from schemas.alerts import NotificationPublic
from schemas.care import DetectorOutcomes, ServiceLevelRow, ServiceLevelsPublic
from schemas.kinds import Outcome, Severity
from storage import outbox
from storage import service_levels as store

router = APIRouter(tags=["service levels"])

# Outcomes where nobody needed help: the flag was false (``test`` presses are left out altogether).
FALSE_ALARM_OUTCOMES = frozenset({Outcome.FALSE_ALARM_DEVICE, Outcome.RESIDENT_OK, Outcome.AWAY})
# Reminder tasks, not detections: no false-alarm rate.
NOT_DETECTORS = frozenset({"visits"})


def _period(context: Context, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    end = until or context.clock()
    return since or end - timedelta(days=30), end


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _district(principal: Principal) -> str | None:
    return principal.scope.district


@router.get("/service-levels")
def service_levels(
    conn: Connection,
    principal: Staff,
    context: Context,
    group_by: Literal["district", "caregiver"] = "district",
    since: datetime | None = None,
    until: datetime | None = None,
) -> ServiceLevelsPublic:
    start, end = _period(context, since, until)
    rows = store.service_levels(conn, since=start, until=end, group_by=group_by, district=_district(principal))
    return ServiceLevelsPublic(
        since=start,
        until=end,
        group_by=group_by,
        rows=[
            ServiceLevelRow(
                group=row["grp"],
                alerts=row["alerts"],
                pages=row["pages"],
                checkins=row["checkins"],
                checkins_ok=row["checkins_ok"],
                checkins_help=row["checkins_help"],
                checkins_away=row["checkins_away"],
                checkins_unanswered=row["checkins_unanswered"],
                critical=row["critical"],
                critical_claimed_60s=_share(row["critical_60"], row["critical"]),
                critical_claimed_180s=_share(row["critical_180"], row["critical"]),
                high=row["high"],
                high_claimed_15min=_share(row["high_900"], row["high"]),
                median_to_first_notification_s=_float(row["median_notified_s"]),
                median_to_claim_s=_float(row["median_answered_s"]),
                median_to_resolution_s=_float(row["median_resolved_s"]),
            )
            for row in rows
        ],
    )


def _float(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)


@router.get("/service-levels/outcomes")
def outcomes(
    conn: Connection,
    principal: Staff,
    context: Context,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[DetectorOutcomes]:
    start, end = _period(context, since, until)
    per: dict[str, dict[Outcome, int]] = {}
    paged: dict[str, dict[Outcome, int]] = {}
    for row in store.outcomes_by_detector(conn, since=start, until=end, district=_district(principal)):
        outcome = Outcome(row["outcome"])
        counts = per.setdefault(row["detector"], {})
        counts[outcome] = counts.get(outcome, 0) + row["n"]
        if row["paged"]:
            paged_counts = paged.setdefault(row["detector"], {})
            paged_counts[outcome] = paged_counts.get(outcome, 0) + row["n"]
    result = []
    for detector, counts in sorted(per.items()):
        of_pages = paged.get(detector, {})
        result.append(
            DetectorOutcomes(
                detector=detector,
                resolved=sum(counts.values()),
                outcomes=counts,
                false_alarm_rate=None if detector in NOT_DETECTORS else false_alarm_rate(counts),
                paged=sum(of_pages.values()),
                paged_false_alarm_rate=None if detector in NOT_DETECTORS else false_alarm_rate(of_pages),
            )
        )
    return result


def false_alarm_rate(counts: dict[Outcome, int]) -> float | None:
    """The share of resolved alerts where nobody needed help (``test`` presses left out); None if none.
    The monthly report (``api.report``) uses it too."""
    counted = sum(n for outcome, n in counts.items() if outcome is not Outcome.TEST)
    return _share(sum(n for outcome, n in counts.items() if outcome in FALSE_ALARM_OUTCOMES), counted)


@router.get("/deliveries/dead")
def dead_deliveries(
    conn: Connection,
    principal: Staff,
    severity: Severity | None = None,
    cursor: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[NotificationPublic]:
    rows = outbox.list_dead(
        conn,
        severity=severity.value if severity else None,
        district=_district(principal),
        before_id=cursor,
        limit=limit,
    )
    return [NotificationPublic.model_validate(row) for row in rows]
