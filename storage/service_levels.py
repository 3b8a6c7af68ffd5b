"""Service-level figures straight from the alerts and the outbox. Never commits.

Times are measured from ``opened_at`` (when carewatch opened the alert): to the first successful
delivery (``first_notified_at``), to the claim, and to the resolution. An alert resolved without a
claim counts as answered at its resolution (a person dealt with it). Per caregiver means: the alerts
that caregiver was asked to act on (any step, not claim notices), whoever then claimed them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.rows import dict_row

GroupBy = Literal["district", "caregiver"]

_FIGURES = """
    count(*) AS alerts,
    count(*) FILTER (WHERE severity = 'critical') AS critical,
    count(*) FILTER (WHERE severity = 'critical' AND answered_s <= 60) AS critical_60,
    count(*) FILTER (WHERE severity = 'critical' AND answered_s <= 180) AS critical_180,
    count(*) FILTER (WHERE severity = 'high') AS high,
    count(*) FILTER (WHERE severity = 'high' AND answered_s <= 900) AS high_900,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY notified_s) AS median_notified_s,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY answered_s) AS median_answered_s,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY resolved_s) AS median_resolved_s
"""

_TIMED = """
    SELECT a.alert_id, a.severity, h.district,
        extract(epoch FROM a.first_notified_at - a.opened_at) AS notified_s,
        extract(epoch FROM coalesce(a.claimed_at, a.resolved_at) - a.opened_at) AS answered_s,
        extract(epoch FROM a.resolved_at - a.opened_at) AS resolved_s
    FROM alerts a JOIN households h USING (household_id)
    WHERE a.opened_at >= %(since)s AND a.opened_at < %(until)s
        AND (%(district)s::text IS NULL OR h.district = %(district)s)
"""


def service_levels(
    conn: psycopg.Connection, *, since: datetime, until: datetime, group_by: GroupBy, district: str | None = None
) -> list[dict[str, Any]]:
    """One row of raw counts and medians per district or caregiver (shares are computed by the caller)."""
    if group_by == "district":
        query = f"SELECT district AS grp, {_FIGURES} FROM ({_TIMED}) t GROUP BY district ORDER BY district"
    else:
        query = (
            f"SELECT n.caregiver_id AS grp, {_FIGURES} FROM ({_TIMED}) t"
            " JOIN (SELECT DISTINCT alert_id, caregiver_id FROM notifications WHERE reason <> 'claimed_by_other'"
            " AND caregiver_id IS NOT NULL) n"
            " USING (alert_id) GROUP BY n.caregiver_id ORDER BY n.caregiver_id"
        )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, {"since": since, "until": until, "district": district}).fetchall()


def outcomes_by_detector(
    conn: psycopg.Connection, *, since: datetime, until: datetime, district: str | None = None
) -> list[dict[str, Any]]:
    """(detector, outcome, count) of alerts resolved in the period."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT a.detector, a.outcome, count(*) AS n FROM alerts a JOIN households h USING (household_id)"
            " WHERE a.status = 'resolved' AND a.resolved_at >= %s AND a.resolved_at < %s"
            " AND (%s::text IS NULL OR h.district = %s)"
            " GROUP BY a.detector, a.outcome ORDER BY a.detector, a.outcome",
            (since, until, district, district),
        ).fetchall()
