"""Turning findings into alerts, and the alert lifecycle: open → notified → claimed → resolved.

Every function runs inside the caller's transaction: the alert, its timeline entries and its outbox rows
(notifications) are written together or not at all (transactional outbox). Delivery happens later, in
the dispatcher. One unresolved alert exists per household and kind: a repeat attaches to it as an
occurrence and notifies again only if its severity rises. SOS and smoke alerts are never closed by a
machine; only a person resolves an alert, with an outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from alerting.policy import DEFAULT_POLICY, EscalationPolicy
from schemas.alerts import NotificationReason
from schemas.care import WorkingHours
from schemas.findings import Finding, FindingAction
from schemas.kinds import ROBOT_CHANNELS, DeliveryChannel, Outcome, Severity
from storage import alerts as store
from storage import notify_groups

log = logging.getLogger(__name__)

SYSTEM_ACTOR = "carewatch"


class AlertError(Exception):
    """Base of the lifecycle errors; ``alert_id`` says which alert."""

    def __init__(self, alert_id: int, message: str) -> None:
        super().__init__(message)
        self.alert_id = alert_id


class AlertNotFoundError(AlertError):
    pass


class AlertConflictError(AlertError):
    """The transition is not allowed from the alert's current state (e.g. claimed by someone else)."""


@dataclass(frozen=True, slots=True)
class AlertingConfig:
    policy: EscalationPolicy = DEFAULT_POLICY
    delivery_deadline: timedelta = timedelta(minutes=10)
    # Retry backoff of the dispatcher: base * 2**(attempt-1), capped.
    retry_base: timedelta = timedelta(seconds=1)
    retry_cap: timedelta = timedelta(seconds=60)


def apply_findings(
    conn: psycopg.Connection, findings: Iterable[Finding], now: datetime, config: AlertingConfig
) -> list[int]:
    """Record findings as alerts or occurrences; return the ids of alerts that changed."""
    changed = []
    for finding in findings:
        alert_id = _apply_finding(conn, finding, now, config)
        if alert_id is not None:
            changed.append(alert_id)
    return changed


def _apply_finding(conn: psycopg.Connection, finding: Finding, now: datetime, config: AlertingConfig) -> int | None:
    if finding.action is FindingAction.ANNOTATE:
        existing = store.lock_open_alert(conn, finding.household_id, finding.kind.value)
        if existing is None:
            log.info(
                "household %s: note for %s with no open alert: %s",
                finding.household_id,
                finding.kind.value,
                finding.evidence,
            )
            return None
        store.add_timeline(conn, existing.alert_id, now, finding.detector, "note", finding.evidence)
        store.merge_details(conn, existing.alert_id, finding.details)
        return existing.alert_id

    created = store.insert_alert(conn, finding, now)
    if created is not None:
        log.info(
            "alert %s opened: household %s %s (%s)",
            created.alert_id,
            finding.household_id,
            finding.kind.value,
            finding.severity.value,
        )
        store.add_timeline(conn, created.alert_id, now, finding.detector, "opened", finding.evidence)
        _notify_step(conn, created, 0, NotificationReason.NEW, now, config)
        return created.alert_id

    existing = store.lock_open_alert(conn, finding.household_id, finding.kind.value)
    if existing is None:  # resolved between the insert attempt and the lock: open a fresh one
        return _apply_finding(conn, finding, now, config)
    raised = finding.severity.rank > Severity(existing.severity).rank
    severity = finding.severity if raised else Severity(existing.severity)
    store.add_occurrence(conn, existing.alert_id, now, severity.value, finding.evidence if raised else None)
    store.add_timeline(conn, existing.alert_id, now, finding.detector, "occurrence", finding.evidence)
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
        _notify_step(conn, refreshed, refreshed.escalation_level, NotificationReason.SEVERITY_RAISED, now, config)
    return existing.alert_id


def _notify_step(
    conn: psycopg.Connection,
    alert: store.AlertRow,
    level: int,
    reason: NotificationReason,
    now: datetime,
    config: AlertingConfig,
) -> None:
    """Enqueue notifications for the policy step ``level``; skip ahead past steps with nobody in them."""
    severity = Severity(alert.severity)
    policy = config.policy
    while True:
        step = policy.step(severity, level)
        # Past the last step the policy ran out of people: tell everyone in the care plan rather than no one.
        tiers = range(1, 10) if step is None else step.tiers
        recipients = store.contacts(conn, alert.household_id, tiers)
        groups = notify_groups.groups_for(conn, alert.household_id, tiers)
        if step is None or recipients or groups or policy.step(severity, level + 1) is None:
            break
        level += 1
    if not recipients and not groups:
        log.error("alert %s: household %s has no care-plan contact to notify", alert.alert_id, alert.household_id)
        store.add_timeline(conn, alert.alert_id, now, SYSTEM_ACTOR, "undeliverable", "no care-plan contact")
    sent_to = []
    for contact in recipients:
        channels, missing = _channels_of(contact)
        for channel in missing:
            store.add_timeline(
                conn,
                alert.alert_id,
                now,
                SYSTEM_ACTOR,
                "undeliverable",
                f"caregiver {contact.caregiver_id} has no address for {channel}",
            )
        if not channels:
            if not missing:
                store.add_timeline(
                    conn,
                    alert.alert_id,
                    now,
                    SYSTEM_ACTOR,
                    "undeliverable",
                    f"caregiver {contact.caregiver_id} has no delivery channel",
                )
            continue
        hours = WorkingHours.model_validate(contact.working_hours) if contact.working_hours else None
        not_before = policy.not_before(severity, now, contact.timezone, hours)
        for channel in channels:
            key = f"alert-{alert.alert_id}-{reason.value}-{level}-{alert.severity}-{contact.caregiver_id}"
            robot = contact.robot_group_id if channel in ROBOT_CHANNELS else None
            _enqueue(conn, alert, contact.caregiver_id, channel, key, reason, level, now, config, not_before, robot)
        sent_to.append(
            contact.caregiver_id if not_before == now else f"{contact.caregiver_id} (from {not_before:%H:%MZ})"
        )
    for group in groups:  # care-team group chats (``notify_groups``): no working hours, quiet hours apply
        not_before = policy.not_before(severity, now, group.timezone, None)
        key = f"alert-{alert.alert_id}-{reason.value}-{level}-{alert.severity}-group-{group.group_id}"
        _enqueue(conn, alert, None, group.kind, key, reason, level, now, config, not_before, group.group_id)
        sent_to.append(f"group {group.group_id}")
    if sent_to:
        store.add_timeline(
            conn,
            alert.alert_id,
            now,
            SYSTEM_ACTOR,
            "notify",
            f"step {level} ({reason.value}): {', '.join(sent_to)}",
        )
    store.set_escalation(conn, alert.alert_id, level, policy.next_due(severity, level, now))


def _has_address(contact: store.Contact, channel: str) -> bool:
    if channel == DeliveryChannel.WEBHOOK.value:
        return bool(contact.webhook_url)
    if channel == DeliveryChannel.EMAIL.value:
        return bool(contact.email)
    if channel == DeliveryChannel.SMS.value:
        return bool(contact.phone)
    if channel in ROBOT_CHANNELS:  # the caregiver's chosen group robot, of that kind
        return contact.robot_group_id is not None and contact.robot_kind == channel
    return channel == DeliveryChannel.APP.value  # the app topic is named after the caregiver


def _channels_of(contact: store.Contact) -> tuple[list[str], list[str]]:
    """(channels to use, channels asked for that lack an address) for one contact."""
    if contact.channels is None:
        return (["webhook"] if contact.webhook_url else []), []
    usable = [channel for channel in contact.channels if _has_address(contact, channel)]
    return usable, [channel for channel in contact.channels if channel not in usable]


def _enqueue(
    conn: psycopg.Connection,
    alert: store.AlertRow,
    caregiver_id: str | None,
    channel: str,
    key: str,
    reason: NotificationReason,
    level: int,
    now: datetime,
    config: AlertingConfig,
    not_before: datetime | None = None,
    group_id: str | None = None,
) -> None:
    # The webhook keeps the foundation's key; other channels get their own so each is counted once.
    if channel != DeliveryChannel.WEBHOOK.value:
        key = f"{key}-{channel}"
    body = {
        "idempotency_key": key,
        "reason": reason.value,
        "alert_id": alert.alert_id,
        "household_id": alert.household_id,
        "kind": alert.kind,
        "severity": alert.severity,
        "evidence": alert.evidence,
        "started_at": alert.started_at.isoformat(),
        "opened_at": alert.opened_at.isoformat(),
        "caregiver_id": caregiver_id,
        "escalation_level": level,
        "claimed_by": alert.claimed_by,
    }
    if caregiver_id is None:  # a group chat's own message
        body["group_id"] = group_id
    start = not_before or now
    store.enqueue_notification(
        conn,
        alert_id=alert.alert_id,
        caregiver_id=caregiver_id,
        channel=channel,
        idempotency_key=key,
        body=body,
        now=now,
        deadline=start + config.delivery_deadline,
        not_before=start,
        level=level,
        reason=reason.value,
        group_id=group_id,
    )


def escalate_due(conn: psycopg.Connection, now: datetime, config: AlertingConfig) -> int:
    """Move every unclaimed alert whose wait ran out to its next step; return how many moved."""
    due = store.lock_due_escalations(conn, now)
    for alert in due:
        store.add_timeline(
            conn,
            alert.alert_id,
            now,
            SYSTEM_ACTOR,
            "escalated",
            f"unclaimed after step {alert.escalation_level}",
        )
        _notify_step(conn, alert, alert.escalation_level + 1, NotificationReason.ESCALATED, now, config)
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
    _notify_step(conn, alert, alert.escalation_level + 1, NotificationReason.ESCALATED, now, config)


def claim_alert(
    conn: psycopg.Connection, alert_id: int, caregiver_id: str, now: datetime, config: AlertingConfig
) -> None:
    """The first caregiver to claim owns the alert; the others who were notified are told."""
    alert = store.lock_alert(conn, alert_id)
    if alert is None:
        raise AlertNotFoundError(alert_id, f"alert {alert_id} does not exist")
    if alert.status == "resolved":
        raise AlertConflictError(alert_id, f"alert {alert_id} is already resolved")
    if alert.status == "claimed":
        if alert.claimed_by == caregiver_id:
            return
        raise AlertConflictError(alert_id, f"alert {alert_id} is already claimed by {alert.claimed_by}")
    store.claim(conn, alert_id, caregiver_id, now)
    store.add_timeline(conn, alert_id, now, caregiver_id, "claimed")
    claimed = store.lock_alert(conn, alert_id)
    assert claimed is not None  # noqa: S101 - locked above in this transaction
    for other, channel in store.notified_channels(conn, alert_id):
        if other != caregiver_id:
            key = f"alert-{alert_id}-claimed-{other}"
            _enqueue(
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
        _enqueue(conn, claimed, None, kind, key, reason, claimed.escalation_level, now, config, None, group_id)


def decline_alert(
    conn: psycopg.Connection, alert_id: int, caregiver_id: str, note: str, now: datetime, config: AlertingConfig
) -> bool:
    """A caregiver cannot take the alert. When everyone asked at the current step has declined, the
    next step is notified at once instead of waiting out the timer. Returns True if that happened."""
    alert = store.lock_alert(conn, alert_id)
    if alert is None:
        raise AlertNotFoundError(alert_id, f"alert {alert_id} does not exist")
    if alert.status not in {"open", "notified"}:
        raise AlertConflictError(alert_id, f"alert {alert_id} is {alert.status}; nothing to decline")
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
        raise AlertNotFoundError(alert_id, f"alert {alert_id} does not exist")
    if alert.status == "resolved":
        raise AlertConflictError(alert_id, f"alert {alert_id} is already resolved")
    store.resolve(conn, alert_id, actor, outcome.value, note, now)
    store.add_timeline(conn, alert_id, now, actor, "resolved", f"{outcome.value}: {note}".rstrip(": "))
