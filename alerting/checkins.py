"""Checking on the resident before paging a person: the check-in's life, in the caller's transaction.

An inactivity, routine-missed or continuous-flow alert whose household's policy asks for it opens in
``checking_in`` (:func:`start`): attempt 1 goes out at once through each of the policy's channels (a
QoS 1 ``checkin`` command to every call button of the home; an automated voice call or SMS to each
resident's phone through the gateway), and the alert's escalation timer is set to the attempt's end.
Nobody is paged while it waits. Then exactly one of these ends it:

- an answer (:func:`answer`): a ``checkin_ok`` press carrying the check-in id, or the phone gateway's
  signed callback: ``ok`` resolves the alert as ``resident_ok`` (and every other check-in of the home
  waiting at that moment: the resident is fine); ``away`` resolves it as ``away`` and announces an
  absence until the next water use, at most 72 h (inactivity is not raised meanwhile; a follow-up
  check-in each day, ``alerting.away``); ``help`` pages the care plan at once;
- any sign of life (:func:`on_presence`: water used again, any call-button press, a smoke alarm's hush
  or test): the same as ``ok``, with what was seen on the timeline;
- the wait running out (:func:`expire`, from the dispatcher's escalation pass): the next attempt, or
  after the last one the page, with the check-in's history in the evidence ("checked in at 08:25 by
  call button and phone; no answer");
- every delivery of an attempt dying (no button online, the gateway refusing): the page at once
  (:func:`delivery_died`): a resident we cannot reach has not said they are fine;
- a person resolving or claiming the alert meanwhile (:func:`cancel`).

Everything lives in PostgreSQL (the ``checkins`` row, the alert's status and timer, the outbox), so a
restart of carewatch mid-wait neither loses the page nor pages twice: the timer is a row, the deliveries
are idempotent outbox rows, and each transition locks the check-in row.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any

import psycopg

from alerting.checkin_policy import CheckinPolicy
from alerting.config import SYSTEM_ACTOR, AlertingConfig
from alerting.notify import notify_step
from alerting.render import checkin_text
from schemas import evidence as ev
from schemas.alerts import NotificationReason
from schemas.evidence import Evidence
from schemas.findings import Finding, PresenceSignal
from schemas.kinds import AlertKind, CheckinAnswer, CheckinStatus, DeliveryChannel, Outcome
from storage import alerts as store
from storage import checkins as checkin_store
from storage import household_settings

log = logging.getLogger(__name__)

RESIDENT = "resident"
# Which alerts a sign of life answers. Water is no answer to a running tap; the tap stopping is.
ANSWERS: dict[PresenceSignal, frozenset[AlertKind]] = {
    PresenceSignal.WATER: frozenset({AlertKind.INACTIVITY, AlertKind.ROUTINE_MISSED}),
    PresenceSignal.PRESS: frozenset({AlertKind.INACTIVITY, AlertKind.ROUTINE_MISSED, AlertKind.CONTINUOUS_FLOW}),
    PresenceSignal.SMOKE: frozenset({AlertKind.INACTIVITY, AlertKind.ROUTINE_MISSED, AlertKind.CONTINUOUS_FLOW}),
    PresenceSignal.FLOW_STOPPED: frozenset({AlertKind.CONTINUOUS_FLOW}),
}
_SIGNAL_TEXT = {
    PresenceSignal.WATER: "water used",
    PresenceSignal.PRESS: "call button pressed",
    PresenceSignal.SMOKE: "smoke alarm hushed or tested",
    PresenceSignal.FLOW_STOPPED: "the water flow stopped",
}
_CHANNEL_TEXT = {
    DeliveryChannel.BUTTON.value: "call button",
    DeliveryChannel.VOICE.value: "phone call",
    DeliveryChannel.RESIDENT_SMS.value: "SMS",
}


_RESIDENT_CHANNELS = frozenset(channel.value for channel in ev.ResidentChannel)
# The "away" answer: no inactivity alert until the next water use, for at most this long.
AWAY_AT_MOST = timedelta(hours=72)


def start(
    conn: psycopg.Connection, alert: store.AlertRow, policy: CheckinPolicy, now: datetime, config: AlertingConfig
) -> bool:
    """Open the check-in of a new alert; False if the resident cannot be reached (the caller pages)."""
    reach = checkin_store.reach(conn, alert.household_id)
    channels = tuple(channel for channel in policy.channels if _reachable(channel, reach))
    if not channels:
        store.add_timeline(
            conn, alert.alert_id, now, SYSTEM_ACTOR, "note",
            "no check-in: the household has no call button or resident phone for "
            + ", ".join(_CHANNEL_TEXT[c.value] for c in policy.channels),
        )  # fmt: skip
        return False
    expires = now + policy.wait
    checkin = checkin_store.insert_checkin(
        conn,
        checkin_id=secrets.token_urlsafe(12),
        alert_id=alert.alert_id,
        household_id=alert.household_id,
        kind=alert.kind,
        attempts=policy.attempts,
        wait_s=round(policy.wait.total_seconds()),
        channels=[channel.value for channel in channels],
        now=now,
        expires_at=expires,
    )
    store.set_status(conn, alert.alert_id, "checking_in")
    store.set_escalation(conn, alert.alert_id, 0, expires)
    _send_attempt(conn, alert, checkin, 1, now, expires, reach, config)
    log.info("alert %s: checking in with the resident (check-in %s)", alert.alert_id, checkin.checkin_id)
    return True


def expire(conn: psycopg.Connection, alert: store.AlertRow, now: datetime, config: AlertingConfig) -> None:
    """The current attempt's wait ran out with no answer: the next attempt, or the page."""
    checkin = checkin_store.lock_checkin_of_alert(conn, alert.alert_id)
    if checkin is None or checkin.status != CheckinStatus.WAITING:
        _page(conn, alert, now, config, ev.CheckinUnanswered(attempts=[]))  # never leave an alert unpaged
        return
    history = [*checkin.history, _attempt_record(checkin, "no answer")]
    if checkin.attempt < checkin.attempts:
        attempt = checkin.attempt + 1
        expires = now + timedelta(seconds=checkin.wait_s)
        checkin_store.next_attempt(conn, checkin.checkin_id, attempt, now, expires, history)
        store.set_escalation(conn, alert.alert_id, 0, expires)
        reach = checkin_store.reach(conn, alert.household_id)
        _send_attempt(conn, alert, checkin, attempt, now, expires, reach, config)
        return
    checkin_store.finish(
        conn, checkin.checkin_id, status=CheckinStatus.UNANSWERED, answer=None, via=None, at=None, history=history
    )
    _page(conn, alert, now, config, ev.CheckinUnanswered(attempts=attempts(history)))


def answer(
    conn: psycopg.Connection,
    checkin_id: str,
    given: CheckinAnswer,
    via: str,
    at: datetime,
    now: datetime,
    config: AlertingConfig,
) -> str:
    """The resident answered (a press, the phone gateway's callback). Returns what came of it:
    ``resolved``, ``away``, ``paged``, or ``late`` (the check-in had already ended: noted on the alert).
    Raises ``KeyError`` for an unknown check-in."""
    checkin = checkin_store.lock_checkin(conn, checkin_id)
    if checkin is None:
        raise KeyError(checkin_id)
    alert = store.lock_alert(conn, checkin.alert_id)
    if alert is None:
        raise KeyError(checkin_id)
    if checkin.status != CheckinStatus.WAITING or alert.status != "checking_in":
        if alert.status != "resolved":
            late = ev.CheckinAnswered(answer=ev.CheckinAnswerText(given.value), via=ev.AnswerVia(via), at=at)
            store.add_timeline(conn, alert.alert_id, now, RESIDENT, "note", _evidence(conn, alert, now, late))
        return "late"
    return _close(conn, alert, checkin, given, via, at, now, config)


def on_presence(conn: psycopg.Connection, finding: Finding, now: datetime, config: AlertingConfig) -> list[int]:
    """A sign of life: it answers the household's check-ins it fits and is noted on alerts already paged.
    Returns the alerts that changed."""
    try:
        signal = PresenceSignal(str(finding.details.get("signal")))
    except ValueError:
        log.warning("household %s: presence finding without a known signal", finding.household_id)
        return []
    named = finding.details.get("checkin_id")
    kinds = ANSWERS[signal]
    changed: list[int] = []
    alerts = store.lock_open_alerts(conn, finding.household_id, [kind.value for kind in kinds])
    found = {alert.alert_id: checkin_store.lock_checkin_of_alert(conn, alert.alert_id) for alert in alerts}
    # The check-in a press names is answered first (by the button); the home's others then with it.
    alerts.sort(key=lambda alert: getattr(found[alert.alert_id], "checkin_id", None) != named)
    for alert in alerts:
        checkin = checkin_store.lock_checkin_of_alert(conn, alert.alert_id)
        waiting = checkin is not None and checkin.status == CheckinStatus.WAITING and alert.status == "checking_in"
        if waiting and checkin is not None:
            via = DeliveryChannel.BUTTON.value if named == checkin.checkin_id else signal.value
            _close(conn, alert, checkin, CheckinAnswer.OK, via, finding.at, now, config)
        else:
            store.add_timeline(conn, alert.alert_id, now, RESIDENT, "note", finding.evidence)
        changed.append(alert.alert_id)
    if signal is PresenceSignal.WATER:
        _end_away_on_use(conn, finding.household_id, finding.at)
    return changed


def cancel(conn: psycopg.Connection, alert_id: int, why: str, now: datetime) -> None:
    """A person took the alert over (resolved or claimed it) while it was checking in."""
    checkin = checkin_store.lock_checkin_of_alert(conn, alert_id)
    if checkin is None or checkin.status != CheckinStatus.WAITING:
        return
    checkin_store.withdraw_deliveries(conn, checkin.checkin_id)
    history = [*checkin.history, _attempt_record(checkin, why)]
    checkin_store.finish(
        conn, checkin.checkin_id, status=CheckinStatus.CANCELLED, answer=None, via=None, at=now, history=history
    )


def delivery_died(
    conn: psycopg.Connection, alert_id: int, checkin_id: str, now: datetime, config: AlertingConfig
) -> None:
    """A check-in delivery is dead. If nothing of the current attempt reached or may still reach the
    resident, page now: waiting out the attempt would only delay the people who can go and look."""
    checkin = checkin_store.lock_checkin(conn, checkin_id)
    alert = store.lock_alert(conn, alert_id)
    if checkin is None or alert is None or checkin.status != CheckinStatus.WAITING or alert.status != "checking_in":
        return
    statuses = [status for _, status in checkin_store.attempt_deliveries(conn, checkin_id, checkin.attempt)]
    if any(status in {"pending", "sent"} for status in statuses):
        return
    history = [*checkin.history, _attempt_record(checkin, "could not be delivered")]
    checkin_store.finish(
        conn, checkin_id, status=CheckinStatus.UNANSWERED, answer=None, via=None, at=None, history=history
    )
    _page(conn, alert, now, config, ev.CheckinUnreachable(attempts=attempts(history)))


def attempts(history: list[dict[str, Any]]) -> list[ev.CheckinAttempt]:
    """The check-in's attempts as evidence ("at 08:25 by call button and phone call, at 08:35 by ...")."""
    return [
        ev.CheckinAttempt(
            at=datetime.fromisoformat(record["at"]),
            channels=[ev.ResidentChannel(channel) for channel in record["channels"] if channel in _RESIDENT_CHANNELS],
        )
        for record in history
    ]


# ----------------------------------------------------------------------------------------------------
def _close(
    conn: psycopg.Connection,
    alert: store.AlertRow,
    checkin: checkin_store.CheckinRow,
    given: CheckinAnswer,
    via: str,
    at: datetime,
    now: datetime,
    config: AlertingConfig,
) -> str:
    checkin_store.withdraw_deliveries(conn, checkin.checkin_id)
    history = [*checkin.history, _attempt_record(checkin, f"answered {given.value} by {_via_text(via)}")]
    checkin_store.finish(
        conn, checkin.checkin_id, status=CheckinStatus.ANSWERED, answer=given.value, via=via, at=at, history=history
    )
    said = f"resident answered {given.value} by {_via_text(via)} at {at:%H:%MZ}"
    if given is CheckinAnswer.HELP:
        _page(conn, alert, now, config, ev.CheckinHelp(attempts=attempts(history), at=at, via=ev.AnswerVia(via)))
        return "paged"
    outcome = Outcome.RESIDENT_OK if given is CheckinAnswer.OK else Outcome.AWAY
    _resolve(conn, alert.alert_id, outcome, said, now)
    if given is CheckinAnswer.AWAY:
        _announce_away(conn, alert.household_id, now)
    # The resident is fine: the home's other check-ins waiting now are answered too.
    for other in store.lock_open_alerts(
        conn, alert.household_id, [kind.value for kind in ANSWERS[PresenceSignal.PRESS]]
    ):
        if other.alert_id == alert.alert_id or other.status != "checking_in":
            continue
        pending = checkin_store.lock_checkin_of_alert(conn, other.alert_id)
        if pending is not None and pending.status == CheckinStatus.WAITING:
            checkin_store.withdraw_deliveries(conn, pending.checkin_id)
            checkin_store.finish(
                conn, pending.checkin_id, status=CheckinStatus.ANSWERED, answer=given.value, via=via, at=at,
                history=[*pending.history, _attempt_record(pending, f"answered with check-in {checkin.checkin_id}")],
            )  # fmt: skip
            _resolve(conn, other.alert_id, outcome, f"{said} (check-in of alert {alert.alert_id})", now)
    return "away" if given is CheckinAnswer.AWAY else "resolved"


def _resolve(conn: psycopg.Connection, alert_id: int, outcome: Outcome, note: str, now: datetime) -> None:
    store.resolve(conn, alert_id, RESIDENT, outcome.value, note, now)
    store.add_timeline(conn, alert_id, now, RESIDENT, "resolved", f"{outcome.value}: {note}")


def _page(
    conn: psycopg.Connection,
    alert: store.AlertRow,
    now: datetime,
    config: AlertingConfig,
    outcome: ev.CheckinUnanswered | ev.CheckinHelp | ev.CheckinUnreachable,
) -> None:
    """The check-in is over without an "I am fine": page the care plan's first step now."""
    store.set_status(conn, alert.alert_id, "open")
    seen = _finding_message(alert)
    store.set_evidence(
        conn, alert.alert_id, _evidence(conn, alert, now, ev.CheckinPaged(finding=seen, outcome=outcome))
    )
    store.merge_details(conn, alert.alert_id, {"checkin": outcome.kind})
    store.add_timeline(conn, alert.alert_id, now, SYSTEM_ACTOR, "checkin_ended", _evidence(conn, alert, now, outcome))
    store.mark_paged(conn, alert.alert_id, now)
    paged = store.lock_alert(conn, alert.alert_id)
    assert paged is not None  # noqa: S101 - locked above in this transaction
    notify_step(conn, paged, 0, NotificationReason.NEW, now, config)


def _send_attempt(
    conn: psycopg.Connection,
    alert: store.AlertRow,
    checkin: checkin_store.CheckinRow,
    attempt: int,
    now: datetime,
    expires: datetime,
    reach: checkin_store.Reach,
    config: AlertingConfig,
) -> None:
    sent = []
    base = {
        "checkin_id": checkin.checkin_id,
        "alert_id": alert.alert_id,
        "household_id": alert.household_id,
        "kind": alert.kind,
        "attempt": attempt,
        "attempts": checkin.attempts,
        "ts": now.isoformat(),
        "expires": expires.isoformat(),
    }
    for channel in checkin.channels:
        if channel == DeliveryChannel.BUTTON.value:
            targets: list[tuple[str, dict[str, Any]]] = [
                (device_id, {"device_id": device_id}) for device_id in reach.buttons
            ]
        else:
            targets = [
                (
                    phone.resident_id,
                    {
                        "resident_id": phone.resident_id,
                        "phone": phone.phone,
                        "locale": phone.locale,
                        "text": checkin_text(phone.locale, channel),
                    },
                )
                for phone in reach.phones
            ]
        for target, extra in targets:
            store.enqueue_notification(
                conn,
                alert_id=alert.alert_id,
                caregiver_id=None,
                checkin_id=checkin.checkin_id,
                channel=channel,
                idempotency_key=f"checkin-{checkin.checkin_id}-{attempt}-{channel}-{target}",
                body={**base, **extra},
                now=now,
                # Past the attempt's end a late ring helps nobody: the next attempt or the page follows.
                deadline=max(expires, now + timedelta(seconds=30)),
                reason="checkin",
            )
        if targets:
            sent.append(_CHANNEL_TEXT.get(channel, channel))
    store.add_timeline(
        conn, alert.alert_id, now, SYSTEM_ACTOR, "checkin",
        f"attempt {attempt} of {checkin.attempts} by {' and '.join(sent) or 'nothing reachable'};"
        f" waiting until {expires:%H:%MZ}",
    )  # fmt: skip


def _finding_message(alert: store.AlertRow) -> Any:
    """What the detector saw (the alert's evidence as data; its English text for older alerts)."""
    if alert.evidence_data:
        try:
            return Evidence.model_validate(alert.evidence_data).message
        except ValueError:
            log.error("alert %s: stored evidence does not validate; keeping its text", alert.alert_id)
    return ev.PlainText(text=alert.evidence)


def _evidence(conn: psycopg.Connection, alert: store.AlertRow, now: datetime, message: Any) -> Evidence:
    """``message`` as this household's evidence (its zone, relative to ``now``)."""
    zone = alert.evidence_data.get("tz") if alert.evidence_data else None
    if not zone:
        row = conn.execute("SELECT timezone FROM households WHERE household_id = %s", (alert.household_id,)).fetchone()
        zone = str(row[0]) if row else "Asia/Shanghai"
    return Evidence(message=message, tz=zone, as_of=now)


def _attempt_record(checkin: checkin_store.CheckinRow, result: str) -> dict[str, Any]:
    return {
        "attempt": checkin.attempt,
        "at": checkin.attempt_at.isoformat(),
        "channels": list(checkin.channels),
        "result": result,
    }


def _reachable(channel: DeliveryChannel, reach: checkin_store.Reach) -> bool:
    return bool(reach.buttons) if channel is DeliveryChannel.BUTTON else bool(reach.phones)


def _via_text(via: str) -> str:
    try:
        return _SIGNAL_TEXT[PresenceSignal(via)]
    except ValueError:
        return _CHANNEL_TEXT.get(via, via)


def _announce_away(conn: psycopg.Connection, household_id: str, now: datetime) -> None:
    """The resident said "away": no inactivity alert until the next water use, for at most 72 h."""
    found = household_settings.get(conn, household_id, for_update=True)
    if found is None:
        return
    _, settings = found
    away = [p for p in settings.get("away", []) if not p.get("until_use")]
    away.append(
        {"start": now.isoformat(), "end": (now + AWAY_AT_MOST).isoformat(), "reason": "away", "until_use": True}
    )
    settings["away"] = away
    household_settings.put(conn, household_id, settings)


def _end_away_on_use(conn: psycopg.Connection, household_id: str, at: datetime) -> None:
    """Water used after an announced absence began: the resident is back; the absence ends there."""
    found = household_settings.get(conn, household_id, for_update=True)
    if found is None:
        return
    _, settings = found
    changed = False
    for period in settings.get("away", []):
        if period.get("until_use") and datetime.fromisoformat(period["start"]) <= at < datetime.fromisoformat(
            period["end"]
        ):
            period["end"] = at.isoformat()
            changed = True
    if changed:
        household_settings.put(conn, household_id, settings)
