"""Announced absences: a resident who answers a check-in with "away" is not checked for inactivity
until the next water use (at most 72 h), but is checked on once a day meanwhile.

The absence is a household away period with ``until_use`` (the detectors end it at the first water
use or sign of life, ``alerting.checkins`` ends it in the settings when water is used). Each day of it
the alerting worker raises an ``inactivity`` alert (detector ``away_followup``) through the normal
path, so it checks in with the resident like any other; no answer pages the care plan, as it would at
home. Runs in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from alerting.config import AlertingConfig
from alerting.service import apply_findings
from schemas import evidence as ev
from schemas.evidence import Evidence
from schemas.findings import Finding
from schemas.kinds import DEFAULT_SEVERITY, AlertKind
from storage import household_settings

DETECTOR = "away_followup"
FOLLOWUP_EVERY = timedelta(hours=24)


def raise_away_followups(conn: psycopg.Connection, now: datetime, config: AlertingConfig) -> int:
    """Open a follow-up check-in for every announced absence a day old (or a day since the last one)."""
    findings = []
    for household_id, start, last, zone in household_settings.until_use_absences(conn, now):
        if now - (last or start) < FOLLOWUP_EVERY:
            continue
        household_settings.mark_followed_up(conn, household_id, start, now)
        findings.append(
            Finding(
                kind=AlertKind.INACTIVITY,
                severity=DEFAULT_SEVERITY[AlertKind.INACTIVITY],
                household_id=household_id,
                device_id=None,
                at=start,
                detected_at=now,
                evidence=Evidence(message=ev.AwayFollowup(since=start), tz=zone, as_of=now),
                detector=DETECTOR,
                details={"away_since": start.isoformat()},
            )
        )
    return len(apply_findings(conn, findings, now, config)) if findings else 0
