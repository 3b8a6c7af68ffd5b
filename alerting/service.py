"""Turning findings into alerts, and the alert lifecycle: open → notified → claimed → resolved.

Every function runs inside the caller's transaction: the alert, its timeline entries and its outbox rows
(notifications) are written together or not at all (transactional outbox). Delivery happens later, in
the dispatcher. One unresolved alert exists per household and kind: a repeat attaches to it as an
occurrence and notifies again only if its severity rises. SOS and smoke alerts are never closed by a
machine; only a person resolves an alert, with an outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

import psycopg

from alerting import checkins
from alerting.config import SYSTEM_ACTOR, AlertingConfig
from alerting.notify import enqueue, notify_again, notify_step
from i18n import N_
from schemas.alerts import NotificationReason
from schemas.findings import Finding, FindingAction
from schemas.kinds import Outcome, Severity
from storage import alerts as store
from storage import checkins as checkin_store
from storage import notify_groups

__all__ = [
    "SYSTEM_ACTOR",
    "AlertConflictError",
    "AlertError",
    "AlertNotFoundError",
    "AlertingConfig",
    "apply_findings",
    "claim_alert",
    "decline_alert",
    "escalate_due",
    "escalate_now",
    "resolve_alert",
]

log = logging.getLogger(__name__)


class AlertError(Exception):
    """Base of the lifecycle errors; ``alert_id`` says which alert. ``message`` is a catalogue template
    (``{alert_id}`` and the keyword ``params``): the API says it in the client's language."""

    def __init__(self, alert_id: int, message: str, **params: object) -> None:
        self.template = message
        self.params: dict[str, object] = {"alert_id": alert_id, **params}
        try:
            text = message.format_map(self.params)
        except (KeyError, ValueError, IndexError):
            text = message
        super().__init__(text)
        self.alert_id = alert_id


class AlertNotFoundError(AlertError):
    pass


class AlertConflictError(AlertError):
    """The transition is not allowed from the alert's current state (e.g. claimed by someone else)."""


def apply_findings(
    conn: psycopg.Connection, findings: Iterable[Finding], now: datetime, config: AlertingConfig
) -> list[int]:
    """Record findings as alerts or occurrences; return the ids of alerts that changed."""
    changed = []
    for finding in findings:
        if finding.action is FindingAction.PRESENCE:
            changed.extend(checkins.on_presence(conn, finding, now, config))
            continue
        alert_id = _apply_finding(conn, finding, now, config)
        if alert_id is not None:
            changed.append(alert_id)
    return changed


def _apply_finding(conn: psycopg.Connection, finding: Finding, now: datetime, config: AlertingConfig) -> int | None:
    if finding.action is FindingAction.ANNOTATE:
        return _annotate(conn, finding, now)
    created = store.insert_alert(conn, finding, now)
    if created is not None:
        _open(conn, created, finding, now, config)
        return created.alert_id
    existing = store.lock_open_alert(conn, finding.household_id, finding.kind.value)
    if existing is None:  # resolved between the insert attempt and the lock: open a fresh one
        return _apply_finding(conn, finding, now, config)
    raised = finding.severity.rank > Severity(existing.severity).rank
    severity = finding.severity if raised else Severity(existing.severity)
    occurrence = store.add_occurrence(
        conn, existing.alert_id, now, severity.value, finding.evidence if raised else None
    )
    store.add_timeline(conn, existing.alert_id, now, finding.detector, "occurrence", finding.evidence)
    if existing.status == "checking_in":
        return existing.alert_id  # the resident is being asked: the answer (or its absence) decides
    if finding.notify_again and not (raised and existing.status in {"open", "notified"}):
        notify_again(conn, existing, occurrence, now, config)
    if raised and existing.status in {"open", "notified"}:
        store.add_timeline(
            conn,
            existing.alert_id,
            now,
            SYSTEM_ACTOR,
            "severity_raised",
            f"{existing.severity} → {severity.value}",
        )
        refreshed = store.lock_alert(conn, existing.alert_id)
        assert refreshed is not None  # noqa: S101 - locked above in this transaction
        notify_step(conn, refreshed, refreshed.escalation_level, NotificationReason.SEVERITY_RAISED, now, config)
    return existing.alert_id


def _annotate(conn: psycopg.Connection, finding: Finding, now: datetime) -> int | None:
    existing = store.lock_open_alert(conn, finding.household_id, finding.kind.value)
    if existing is None:
        # Not the evidence: it can quote a note the resident typed.
        log.info("household %s: note for %s with no open alert", finding.household_id, finding.kind.value)
        return None
    store.add_timeline(conn, existing.alert_id, now, finding.detector, "note", finding.evidence)
    store.merge_details(conn, existing.alert_id, finding.details)
    return existing.alert_id


def _open(
    conn: psycopg.Connection, created: store.AlertRow, finding: Finding, now: datetime, config: AlertingConfig
) -> None:
    """A new alert: ask the resident first where the household's check-in policy says so, else page."""
    log.info(
        "alert %s opened: household %s %s (%s)",
        created.alert_id,
        finding.household_id,
        finding.kind.value,
        finding.severity.value,
    )
    store.add_timeline(conn, created.alert_id, now, finding.detector, "opened", finding.evidence)
    household = checkin_store.household_checkin_settings(conn, finding.household_id)
    policy = config.checkins.policy(finding.kind, household)
    if policy is not None and checkins.start(conn, created, policy, now, config):
        return  # nobody is paged while the resident is asked
    store.mark_paged(conn, created.alert_id, now)
    notify_step(conn, created, 0, NotificationReason.NEW, now, config)


def escalate_in_order(
    conn: psycopg.Connection, until: datetime, config: AlertingConfig, on_step: Callable[[datetime], None]
) -> None:
    """For replays in simulated time (the demo's history, the report's simulated month): escalate every
    wait that runs out up to ``until``, one moment at a time in time order, each in its own transaction
    and followed by ``on_step(moment)``, as the live escalation loop would have over those hours."""
    while True:
        row = conn.execute(
            "SELECT min(next_escalation_at) FROM alerts WHERE next_escalation_at <= %s"
            " AND status IN ('checking_in', 'open', 'notified')",
            (until,),
        ).fetchone()
        due = row[0] if row else None
        if due is None:
            return
        with conn.transaction():
            escalate_due(conn, due, config)
        on_step(due)


def escalate_due(conn: psycopg.Connection, now: datetime, config: AlertingConfig) -> int:
    """Move every unclaimed alert whose wait ran out to its next step (a check-in to its next attempt
    or to the page); return how many moved."""
    due = store.lock_due_escalations(conn, now)
    for alert in due:
        if alert.status == "checking_in":
            checkins.expire(conn, alert, now, config)
            continue
        store.add_timeline(
            conn,
            alert.alert_id,
            now,
            SYSTEM_ACTOR,
            "escalated",
            f"unclaimed after step {alert.escalation_level}",
        )
        notify_step(conn, alert, alert.escalation_level + 1, NotificationReason.ESCALATED, now, config)
    return len(due)


def escalate_now(
    conn: psycopg.Connection,
    alert_id: int,
    now: datetime,
    why: str,
    config: AlertingConfig,
    *,
    from_level: int | None = None,
) -> None:
    """Skip the wait (e.g. a critical alert's delivery died): notify the next step at once.

    ``from_level``: only if the alert is still at that step (a late failure of an earlier step's
    delivery must not skip a step that is already being notified).
    """
    alert = store.lock_alert(conn, alert_id)
    if alert is None or alert.status not in {"open", "notified"}:
        return
    if from_level is not None and alert.escalation_level != from_level:
        store.add_timeline(conn, alert_id, now, SYSTEM_ACTOR, "note", f"{why} (step {from_level} already passed)")
        return
    if config.policy.step(Severity(alert.severity), alert.escalation_level) is None:
        # Already past the last step (everyone in the plan was told): a further death or decline must
        # not loop; operators see it in the timeline and in the dead-deliveries list.
        store.add_timeline(conn, alert_id, now, SYSTEM_ACTOR, "escalation_exhausted", why)
        return
    store.add_timeline(conn, alert_id, now, SYSTEM_ACTOR, "escalated", why)
    notify_step(conn, alert, alert.escalation_level + 1, NotificationReason.ESCALATED, now, config)


def claim_alert(
    conn: psycopg.Connection, alert_id: int, caregiver_id: str, now: datetime, config: AlertingConfig
) -> None:
    """The first caregiver to claim owns the alert; the others who were notified are told."""
    alert = store.lock_alert(conn, alert_id)
    if alert is None:
        raise AlertNotFoundError(alert_id, N_("alert {alert_id} does not exist"))
    if alert.status == "resolved":
        raise AlertConflictError(alert_id, N_("alert {alert_id} is already resolved"))
    if alert.status == "claimed":
        if alert.claimed_by == caregiver_id:
            return
        raise AlertConflictError(
            alert_id, N_("alert {alert_id} is already claimed by {caregiver_id}"), caregiver_id=alert.claimed_by
        )
    if alert.status == "checking_in":
        checkins.cancel(conn, alert_id, f"claimed by {caregiver_id}", now)
        store.mark_paged(conn, alert_id, now)
    store.claim(conn, alert_id, caregiver_id, now)
    store.add_timeline(conn, alert_id, now, caregiver_id, "claimed")
    claimed = store.lock_alert(conn, alert_id)
    assert claimed is not None  # noqa: S101 - locked above in this transaction
    for other, channel in store.notified_channels(conn, alert_id):
        if other != caregiver_id:
            key = f"alert-{alert_id}-claimed-{other}"
            enqueue(
                conn,
                claimed,
                other,
                channel,
                key,
                NotificationReason.CLAIMED_BY_OTHER,
                claimed.escalation_level,
                now,
                config,
            )
    for group_id, kind in notify_groups.notified_groups(conn, alert_id):  # each group chat sees who took it
        key = f"alert-{alert_id}-claimed-group-{group_id}"
        reason = NotificationReason.CLAIMED_BY_OTHER
        enqueue(conn, claimed, None, kind, key, reason, claimed.escalation_level, now, config, None, group_id)


def decline_alert(
    conn: psycopg.Connection, alert_id: int, caregiver_id: str, note: str, now: datetime, config: AlertingConfig
) -> bool:
    """A caregiver cannot take the alert. When everyone asked at the current step has declined, the
    next step is notified at once instead of waiting out the timer. Returns True if that happened."""
    alert = store.lock_alert(conn, alert_id)
    if alert is None:
        raise AlertNotFoundError(alert_id, N_("alert {alert_id} does not exist"))
    if alert.status not in {"open", "notified"}:
        raise AlertConflictError(alert_id, N_("alert {alert_id} is {status}; nothing to decline"), status=alert.status)
    level = alert.escalation_level
    if not store.add_decline(conn, alert_id, caregiver_id, level, now, note):
        return False
    store.add_timeline(conn, alert_id, now, caregiver_id, "declined", note or f"at step {level}")
    asked = set(store.notified_caregivers(conn, alert_id, level))
    if asked and asked <= store.declined_caregivers(conn, alert_id, level):
        escalate_now(conn, alert_id, now, f"everyone at step {level} declined", config)
        return True
    return False


def resolve_alert(
    conn: psycopg.Connection, alert_id: int, actor: str, outcome: Outcome, note: str, now: datetime
) -> None:
    alert = store.lock_alert(conn, alert_id)
    if alert is None:
        raise AlertNotFoundError(alert_id, N_("alert {alert_id} does not exist"))
    if alert.status == "resolved":
        raise AlertConflictError(alert_id, N_("alert {alert_id} is already resolved"))
    if alert.status == "checking_in":
        checkins.cancel(conn, alert_id, f"resolved by {actor}", now)
    store.resolve(conn, alert_id, actor, outcome.value, note, now)
    store.add_timeline(conn, alert_id, now, actor, "resolved", f"{outcome.value}: {note}".rstrip(": "))
