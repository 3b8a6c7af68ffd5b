"""Service-level figures straight from the alerts and the outbox. Never commits.

Times are measured from ``paged_at`` (when people were first asked to act: when carewatch opened the
alert, or when its check-in with the resident ended without an "I am fine"): to the first successful
delivery (``first_notified_at``), to the claim, and to the resolution. An alert resolved without a
claim counts as answered at its resolution (a person dealt with it). Alerts the resident answered at
their check-in never paged anyone: they count as check-ins, not in the times. Per caregiver means: the alerts
that caregiver was asked to act on (any step, not claim notices), whoever then claimed them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

GroupBy = Literal["district", "caregiver"]

# Aggregates over rows of ``ALERT_TIMES`` (one per alert): the service-level counts and medians. Shared
# with the district's monthly report (``storage.monthly_report``), so both apply one rule.
FIGURES = """
    count(*) AS alerts,
    count(*) FILTER (WHERE paged) AS pages,
    count(*) FILTER (WHERE checkin_status IS NOT NULL) AS checkins,
    count(*) FILTER (WHERE checkin_answer = 'ok') AS checkins_ok,
    count(*) FILTER (WHERE checkin_answer = 'help') AS checkins_help,
    count(*) FILTER (WHERE checkin_answer = 'away') AS checkins_away,
    count(*) FILTER (WHERE checkin_status = 'unanswered') AS checkins_unanswered,
    count(*) FILTER (WHERE severity = 'critical') AS critical,
    count(*) FILTER (WHERE severity = 'critical' AND answered_s <= 60) AS critical_60,
    count(*) FILTER (WHERE severity = 'critical' AND answered_s <= 180) AS critical_180,
    count(*) FILTER (WHERE severity = 'high') AS high,
    count(*) FILTER (WHERE severity = 'high' AND answered_s <= 900) AS high_900,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY notified_s) AS median_notified_s,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY answered_s) AS median_answered_s,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY resolved_s) AS median_resolved_s
"""

# Per alert ``a`` and its check-in ``c`` (LEFT JOINed): what ``FIGURES`` aggregates.
ALERT_TIMES = """
        a.alert_id, a.paged_at IS NOT NULL AS paged,
        -- service levels are about paged alerts: the others have no severity here (counted as check-ins)
        CASE WHEN a.paged_at IS NOT NULL THEN a.severity END AS severity,
        extract(epoch FROM a.first_notified_at - a.paged_at) AS notified_s,
        extract(epoch FROM coalesce(a.claimed_at, a.resolved_at) - a.paged_at) AS answered_s,
        extract(epoch FROM a.resolved_at - a.paged_at) AS resolved_s,
        c.status AS checkin_status, c.answer AS checkin_answer
"""

_TIMED = f"""
    SELECT h.district, {ALERT_TIMES}
    FROM alerts a JOIN households h USING (household_id) LEFT JOIN checkins c USING (alert_id)
    WHERE a.opened_at >= %(since)s AND a.opened_at < %(until)s
        AND (%(district)s::text IS NULL OR h.district = %(district)s)
"""


def service_levels(
    conn: psycopg.Connection, *, since: datetime, until: datetime, group_by: GroupBy, district: str | None = None
) -> list[dict[str, Any]]:
    """One row of raw counts and medians per district or caregiver (shares are computed by the caller)."""
    if group_by == "district":
        query = f"SELECT district AS grp, {FIGURES} FROM ({_TIMED}) t GROUP BY district ORDER BY district"
    else:
        query = (
            f"SELECT n.caregiver_id AS grp, {FIGURES} FROM ({_TIMED}) t"
            " JOIN (SELECT DISTINCT alert_id, caregiver_id FROM notifications WHERE reason <> 'claimed_by_other'"
            " AND caregiver_id IS NOT NULL) n"
            " USING (alert_id) GROUP BY n.caregiver_id ORDER BY n.caregiver_id"
        )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, {"since": since, "until": until, "district": district}).fetchall()


def outcomes_by_detector(
    conn: psycopg.Connection, *, since: datetime, until: datetime, district: str | None = None
) -> list[dict[str, Any]]:
    """(detector, outcome, paged, count) of alerts resolved in the period (``paged``: people were asked
    to act; not when the resident answered the check-in)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT a.detector, a.outcome, a.paged_at IS NOT NULL AS paged, count(*) AS n"
            " FROM alerts a JOIN households h USING (household_id)"
            " WHERE a.status = 'resolved' AND a.resolved_at >= %s AND a.resolved_at < %s"
            " AND (%s::text IS NULL OR h.district = %s)"
            " GROUP BY a.detector, a.outcome, paged ORDER BY a.detector, a.outcome, paged",
            (since, until, district, district),
        ).fetchall()
