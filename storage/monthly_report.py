"""The district's monthly report (云监管): every figure's SQL, in this one module. Never commits.

Scope and month. The households of one district (or of all), registered before the month ended. Each
household's month is its *local* month: from the first day 00:00 to the next month's first day 00:00 in
the household's time zone (Asia/Shanghai for a Shanghai district), cut at ``now`` while the month is
still running. Every query starts from the ``scope`` CTE, which carries those bounds per household
(``m_start``, ``m_end``), so a figure never mixes two households' clocks.

Groups. Every figure query groups by ``GROUPING SETS ((), (district), (district, committee))``: one row
for everything in scope, one per district and one per neighbourhood committee (居委会). ``level`` says
which (``GROUPING(district, committee)``: 3 = all, 1 = district, 0 = committee).

Cohort. The month's alerts are those *opened* in it; their state (outcome, claim, check-in answer) is
what it is when the report is made, so a late-November alert closed in December shows its outcome.

Rules are not restated here: the service-level counts and medians are ``storage.service_levels``'s
``FIGURES`` over its ``ALERT_TIMES``; offline and low battery are ``storage.fleet``'s ``silence_limit``
and ``battery_low``, applied to each device's history (see ``DEVICE_HEALTH``). The exact definition of
every figure is in docs/reports.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg.rows import dict_row

from storage.fleet import battery_low, silence_limit
from storage.service_levels import ALERT_TIMES, FIGURES

ALL, DISTRICT, COMMITTEE = 3, 1, 0
# The fleet page's defaults (``storage.fleet.fleet_health``): silent past twice the expected interval is
# offline; a battery under 20 % is low.
GRACE = 2.0
LOW_BATTERY_PCT = 20


@dataclass(frozen=True, slots=True)
class MonthScope:
    """What a report covers. ``month`` is the first day of the month; ``now`` cuts a running month."""

    month: date
    district: str | None
    now: datetime
    grace: float = GRACE
    low_battery_pct: int = LOW_BATTERY_PCT

    @property
    def next_month(self) -> date:
        return date(self.month.year + self.month.month // 12, self.month.month % 12 + 1, 1)

    def params(self) -> dict[str, Any]:
        return {
            "first": self.month,
            "next": self.next_month,
            "now": self.now,
            "district": self.district,
            "grace": self.grace,
            "low": self.low_battery_pct,
        }


_SCOPE = """
WITH scope AS (
    SELECT * FROM (
        SELECT household_id, district, committee, timezone, created_at,
            (%(first)s::date::timestamp AT TIME ZONE timezone) AS m_start,
            least(%(next)s::date::timestamp AT TIME ZONE timezone, %(now)s::timestamptz) AS m_end
        FROM (
            -- A time zone that is not a known IANA name (the API does not check it) is read as Shanghai's.
            SELECT h.household_id, h.district, h.committee, h.created_at,
                CASE WHEN h.timezone = ANY(%(zones)s::text[]) THEN h.timezone ELSE 'Asia/Shanghai' END AS timezone
            FROM households h
            WHERE (%(district)s::text IS NULL OR h.district = %(district)s)
        ) h
    ) registered WHERE created_at < m_end
)"""

_GROUPS = "GROUPING SETS ((), (s.district), (s.district, s.committee))"
_LEVEL = "s.district, s.committee, GROUPING(s.district, s.committee) AS level"

# In service during the month: registered before it ended, not decommissioned before it began.
_IN_SERVICE = "d.created_at < s.m_end AND (d.decommissioned_at IS NULL OR d.decommissioned_at > s.m_start)"
_OPENED_IN_MONTH = "a.opened_at >= s.m_start AND a.opened_at < s.m_end"

HOMES = f"""{_SCOPE}
SELECT {_LEVEL},
    count(*) AS households,
    count(*) FILTER (WHERE dv.devices > 0) AS homes_monitored,
    coalesce(sum(r.residents), 0)::bigint AS residents,
    coalesce(sum(dv.devices), 0)::bigint AS devices,
    coalesce(sum(dv.water_meters), 0)::bigint AS water_meters,
    coalesce(sum(dv.smoke_alarms), 0)::bigint AS smoke_alarms,
    coalesce(sum(dv.call_buttons), 0)::bigint AS call_buttons
FROM scope s
CROSS JOIN LATERAL (SELECT count(*) AS residents FROM residents r
    WHERE r.household_id = s.household_id AND r.created_at < s.m_end) r
CROSS JOIN LATERAL (SELECT count(*) AS devices,
        count(*) FILTER (WHERE d.device_type = 'water_meter') AS water_meters,
        count(*) FILTER (WHERE d.device_type = 'smoke_alarm') AS smoke_alarms,
        count(*) FILTER (WHERE d.device_type = 'call_button') AS call_buttons
    FROM devices d WHERE d.household_id = s.household_id AND {_IN_SERVICE}) dv
GROUP BY {_GROUPS}"""

# Device health from history. A device is offline at an instant when the last message carewatch
# received from it before then was its Last Will (``online: false``), or when that message (or, never
# heard, its registration) is older than its silence limit. ``points`` are, per device in service, its
# registration, the last receipt before the month and every receipt in the month; between consecutive
# points the device is offline from the point plus its limit (at once after a will) to the next point,
# cut to the device's part of the month (``w_start``..``w_end``).
DEVICE_HEALTH = f"""{_SCOPE},
dev AS (
    SELECT d.device_id, s.district, s.committee, s.m_end, d.created_at,
        greatest(d.created_at, s.m_start) AS w_start,
        least(coalesce(d.decommissioned_at, 'infinity'), s.m_end) AS w_end,
        {silence_limit("d")} AS silence
    FROM devices d JOIN scope s USING (household_id)
    WHERE {_IN_SERVICE}
),
receipts AS (
    SELECT dev.device_id, m.received_at AS at,
        m.channel = 'status' AND EXISTS (SELECT 1 FROM status_reports st WHERE st.device_id = m.device_id
            AND st.ts = m.ts AND st.seq = m.seq AND st.online IS FALSE) AS will
    FROM dev JOIN message_receipts m
        ON m.device_id = dev.device_id AND m.received_at >= dev.w_start AND m.received_at < dev.w_end
),
points AS (
    SELECT device_id, at, will FROM receipts
    UNION ALL SELECT dev.device_id, dev.created_at, false FROM dev
    UNION ALL SELECT dev.device_id, before.received_at, before.will FROM dev CROSS JOIN LATERAL (
        SELECT m.received_at, m.channel = 'status' AND EXISTS (SELECT 1 FROM status_reports st
            WHERE st.device_id = m.device_id AND st.ts = m.ts AND st.seq = m.seq AND st.online IS FALSE) AS will
        FROM message_receipts m WHERE m.device_id = dev.device_id AND m.received_at < dev.w_start
        ORDER BY m.received_at DESC LIMIT 1) before
),
spans AS (
    SELECT p.device_id, p.at, p.will,
        lead(p.at) OVER (PARTITION BY p.device_id ORDER BY p.at, p.will) AS next_at,
        row_number() OVER (PARTITION BY p.device_id ORDER BY p.at DESC, p.will DESC) AS newest
    FROM points p
),
per_device AS (
    SELECT dev.device_id, dev.district, dev.committee,
        extract(epoch FROM dev.w_end - dev.w_start) AS service_s,
        coalesce(sum(greatest(0, extract(epoch FROM
            least(coalesce(sp.next_at, dev.w_end), dev.w_end)
            - greatest(sp.at + CASE WHEN sp.will THEN interval '0' ELSE dev.silence END, dev.w_start)))), 0)
            AS offline_s,
        dev.w_end = dev.m_end AS at_end,
        bool_or(sp.newest = 1 AND (sp.will OR sp.at < dev.m_end - dev.silence)) AS offline_at_end,
        bat.battery_pct
    FROM dev JOIN spans sp USING (device_id)
    LEFT JOIN LATERAL (SELECT st.battery_pct FROM status_reports st
        WHERE st.device_id = dev.device_id AND st.received_at < dev.m_end AND st.battery_pct IS NOT NULL
        ORDER BY st.ts DESC, st.seq DESC LIMIT 1) bat ON true
    GROUP BY dev.device_id, dev.district, dev.committee, dev.w_start, dev.w_end, dev.m_end, bat.battery_pct
)
SELECT {_LEVEL},
    count(*) AS devices,
    coalesce(sum(service_s), 0)::float8 AS service_s,
    coalesce(sum(offline_s), 0)::float8 AS offline_s,
    count(*) FILTER (WHERE at_end) AS devices_at_end,
    count(*) FILTER (WHERE at_end AND NOT offline_at_end) AS online_at_end,
    count(*) FILTER (WHERE at_end AND battery_pct IS NOT NULL) AS battery_reported,
    count(*) FILTER (WHERE at_end AND {battery_low("battery_pct")}) AS battery_low
FROM per_device s
GROUP BY {_GROUPS}"""

ALERTS_BY_KIND = f"""{_SCOPE}
SELECT {_LEVEL}, a.kind, coalesce(a.outcome, a.status) AS state, count(*) AS n
FROM alerts a JOIN scope s USING (household_id)
WHERE {_OPENED_IN_MONTH}
GROUP BY GROUPING SETS ((a.kind, state), (s.district, a.kind, state), (s.district, s.committee, a.kind, state))"""

# Pages: notifications asking a caregiver to act on the month's alerts (not the "someone claimed it"
# notices, not check-ins to residents), by delivery status.
PAGES = f"""{_SCOPE}
SELECT {_LEVEL},
    count(*) AS notifications,
    count(*) FILTER (WHERE n.status = 'sent') AS sent,
    count(*) FILTER (WHERE n.status = 'dead') AS dead,
    count(*) FILTER (WHERE n.status = 'pending') AS pending,
    count(*) FILTER (WHERE n.status = 'cancelled') AS cancelled
FROM notifications n JOIN alerts a USING (alert_id) JOIN scope s ON s.household_id = a.household_id
WHERE {_OPENED_IN_MONTH} AND n.caregiver_id IS NOT NULL AND n.reason <> 'claimed_by_other'
GROUP BY {_GROUPS}"""

# Service levels and check-ins of the month's alerts: the API's own figures, per group.
SERVICE_LEVELS = f"""{_SCOPE}
SELECT s.district, s.committee, GROUPING(s.district, s.committee) AS level, {FIGURES}
FROM (SELECT s.district, s.committee, {ALERT_TIMES}
    FROM alerts a JOIN scope s USING (household_id) LEFT JOIN checkins c USING (alert_id)
    WHERE {_OPENED_IN_MONTH}) s
GROUP BY {_GROUPS}"""

DETECTOR_OUTCOMES = f"""{_SCOPE}
SELECT {_LEVEL}, a.detector, a.outcome, a.paged_at IS NOT NULL AS paged, count(*) AS n
FROM alerts a JOIN scope s USING (household_id)
WHERE {_OPENED_IN_MONTH} AND a.status = 'resolved'
GROUP BY GROUPING SETS ((a.detector, a.outcome, paged), (s.district, a.detector, a.outcome, paged),
    (s.district, s.committee, a.detector, a.outcome, paged))"""

# Home visits: a resident counts as visited when a visit to their home was logged in the month.
VISITS = f"""{_SCOPE}
SELECT {_LEVEL},
    count(*) AS households,
    count(*) FILTER (WHERE v.visits > 0) AS households_visited,
    coalesce(sum(v.visits), 0)::bigint AS visits,
    coalesce(sum(r.residents), 0)::bigint AS residents,
    coalesce(sum(r.residents) FILTER (WHERE v.visits > 0), 0)::bigint AS residents_visited
FROM scope s
CROSS JOIN LATERAL (SELECT count(*) AS residents FROM residents r
    WHERE r.household_id = s.household_id AND r.created_at < s.m_end) r
CROSS JOIN LATERAL (SELECT count(*) AS visits FROM visits v
    WHERE v.household_id = s.household_id AND v.visited_at >= s.m_start AND v.visited_at < s.m_end) v
GROUP BY {_GROUPS}"""

NOT_VISITED = f"""{_SCOPE}
SELECT s.district, s.committee, s.household_id, s.timezone, r.resident_id, r.name,
    (SELECT max(v.visited_at) FROM visits v WHERE v.household_id = s.household_id AND v.visited_at < s.m_end)
        AS last_visit_at
FROM scope s JOIN residents r ON r.household_id = s.household_id AND r.created_at < s.m_end
WHERE NOT EXISTS (SELECT 1 FROM visits v
    WHERE v.household_id = s.household_id AND v.visited_at >= s.m_start AND v.visited_at < s.m_end)
ORDER BY s.district, s.committee, s.household_id, r.resident_id"""

ALERTS_PER_DAY = f"""{_SCOPE}
SELECT s.district, (a.opened_at AT TIME ZONE s.timezone)::date AS day, count(*) AS n
FROM alerts a JOIN scope s USING (household_id)
WHERE {_OPENED_IN_MONTH}
GROUP BY s.district, day ORDER BY s.district, day"""

# The month's bounds as the households of each district see them (one row per district and time zone).
PERIODS = f"""{_SCOPE}
SELECT s.district, s.timezone, min(s.m_start) AS m_start, max(s.m_end) AS m_end, count(*) AS households
FROM scope s GROUP BY s.district, s.timezone ORDER BY s.district, s.timezone"""


@dataclass(frozen=True, slots=True)
class MonthRows:
    """The raw rows of every figure query (dicts), for ``api.report.build`` to assemble."""

    periods: list[dict[str, Any]]
    homes: list[dict[str, Any]]
    device_health: list[dict[str, Any]]
    alerts_by_kind: list[dict[str, Any]]
    pages: list[dict[str, Any]]
    service_levels: list[dict[str, Any]]
    detector_outcomes: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    not_visited: list[dict[str, Any]]
    alerts_per_day: list[dict[str, Any]]


def read_month(conn: psycopg.Connection, scope: MonthScope) -> MonthRows:
    """Run every figure query of ``scope`` (in the caller's transaction: one snapshot if it is one)."""
    params = scope.params()
    zones = conn.execute("SELECT DISTINCT timezone FROM households").fetchall()
    params["zones"] = [str(zone) for (zone,) in zones if _known_zone(str(zone))]

    def rows(query: str) -> list[dict[str, Any]]:
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()

    return MonthRows(
        periods=rows(PERIODS),
        homes=rows(HOMES),
        device_health=rows(DEVICE_HEALTH),
        alerts_by_kind=rows(ALERTS_BY_KIND),
        pages=rows(PAGES),
        service_levels=rows(SERVICE_LEVELS),
        detector_outcomes=rows(DETECTOR_OUTCOMES),
        visits=rows(VISITS),
        not_visited=rows(NOT_VISITED),
        alerts_per_day=rows(ALERTS_PER_DAY),
    )


def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def districts(conn: psycopg.Connection) -> list[str]:
    """Every district with households (for the CLI's and the page's choice)."""
    return [str(row[0]) for row in conn.execute("SELECT DISTINCT district FROM households ORDER BY 1").fetchall()]
