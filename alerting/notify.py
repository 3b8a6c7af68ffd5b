"""Telling people: the outbox rows (notifications) an alert's step, a repeat or a claim enqueues.

Runs in the caller's transaction. A step's recipients come from the household's care plan and the
escalation policy; each contact gets one row per usable channel with an idempotency key that makes a
retried or replayed step the same notification, never a second one. The dispatcher delivers them.
"""

from __future__ import annotations

import logging
from datetime import datetime

import psycopg

from alerting.config import SYSTEM_ACTOR, AlertingConfig
from schemas.alerts import NotificationReason
from schemas.care import WorkingHours
from schemas.kinds import ROBOT_CHANNELS, DeliveryChannel, Severity
from storage import alerts as store
from storage import notify_groups

log = logging.getLogger(__name__)


def notify_again(
    conn: psycopg.Connection, alert: store.AlertRow, occurrence: int, now: datetime, config: AlertingConfig
) -> None:
    """A repeat that is news (an sos pressed again, a smoke alarm sounding again after a quiet spell):
    while unclaimed, the people of the current step are told again, without restarting the wait for
    the next step; once claimed, the caregiver who owns it is told."""
    if alert.status in {"open", "notified"}:
        notify_step(
            conn, alert, alert.escalation_level, NotificationReason.REPEATED, now, config,
            occurrence=occurrence, restart_wait=False,
        )  # fmt: skip
        return
    if alert.status != "claimed" or alert.claimed_by is None:
        return
    owner = alert.claimed_by
    sent = False
    for caregiver_id, channel in store.notified_channels(conn, alert.alert_id):
        if caregiver_id == owner:
            key = f"alert-{alert.alert_id}-{NotificationReason.REPEATED.value}-{occurrence}-{owner}"
            enqueue(conn, alert, owner, channel, key, NotificationReason.REPEATED, alert.escalation_level, now, config)
            sent = True
    if sent:
        store.add_timeline(conn, alert.alert_id, now, SYSTEM_ACTOR, "notify", f"repeated: {owner}")


def notify_step(
    conn: psycopg.Connection,
    alert: store.AlertRow,
    level: int,
    reason: NotificationReason,
    now: datetime,
    config: AlertingConfig,
    *,
    occurrence: int | None = None,
    restart_wait: bool = True,
) -> None:
    """Enqueue notifications for the policy step ``level``; skip ahead past steps with nobody in them.

    ``occurrence`` makes the notifications distinct from earlier ones of the same step (a repeat);
    ``restart_wait`` False keeps the wait for the next step as it was."""
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
    sent_to = _notify_contacts(conn, alert, recipients, level, reason, now, config, occurrence)
    for group in groups:  # care-team group chats (``notify_groups``): no working hours, quiet hours apply
        not_before = policy.not_before(severity, now, group.timezone, None)
        key = f"alert-{alert.alert_id}-{reason.value}-{level}-{alert.severity}-group-{group.group_id}"
        if occurrence is not None:
            key = f"alert-{alert.alert_id}-{reason.value}-{occurrence}-{level}-group-{group.group_id}"
        enqueue(conn, alert, None, group.kind, key, reason, level, now, config, not_before, group.group_id)
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
    if restart_wait or level != alert.escalation_level:
        store.set_escalation(conn, alert.alert_id, level, policy.next_due(severity, level, now))


def _notify_contacts(
    conn: psycopg.Connection,
    alert: store.AlertRow,
    recipients: list[store.Contact],
    level: int,
    reason: NotificationReason,
    now: datetime,
    config: AlertingConfig,
    occurrence: int | None,
) -> list[str]:
    """One outbox row per usable channel of each contact; who was asked (for the timeline)."""
    severity = Severity(alert.severity)
    policy = config.policy
    sent_to: list[str] = []
    for contact in recipients:
        channels, missing = channels_of(contact)
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
            if occurrence is not None:
                key = f"alert-{alert.alert_id}-{reason.value}-{occurrence}-{level}-{contact.caregiver_id}"
            robot = contact.robot_group_id if channel in ROBOT_CHANNELS else None
            enqueue(conn, alert, contact.caregiver_id, channel, key, reason, level, now, config, not_before, robot)
        sent_to.append(
            contact.caregiver_id if not_before == now else f"{contact.caregiver_id} (from {not_before:%H:%MZ})"
        )
    return sent_to


def has_address(contact: store.Contact, channel: str) -> bool:
    if channel == DeliveryChannel.WEBHOOK.value:
        return bool(contact.webhook_url)
    if channel == DeliveryChannel.EMAIL.value:
        return bool(contact.email)
    if channel == DeliveryChannel.SMS.value:
        return bool(contact.phone)
    if channel in ROBOT_CHANNELS:  # the caregiver's chosen group robot, of that kind
        return contact.robot_group_id is not None and contact.robot_kind == channel
    return channel == DeliveryChannel.APP.value  # the app topic is named after the caregiver


def channels_of(contact: store.Contact) -> tuple[list[str], list[str]]:
    """(channels to use, channels asked for that lack an address) for one contact."""
    if contact.channels is None:
        return (["webhook"] if contact.webhook_url else []), []
    usable = [channel for channel in contact.channels if has_address(contact, channel)]
    return usable, [channel for channel in contact.channels if channel not in usable]


def enqueue(
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
    """One outbox row: to a caregiver (through their own robot group if ``group_id``), or with no
    caregiver to a care-team group chat's robot (``group_id``)."""
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
        # The structure, so each channel renders the evidence in its recipient's language.
        "evidence_data": alert.evidence_data,
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
