"""Event detectors: the smoke alarm and the one-touch call button.

Both are small state machines over discrete device events, evaluated in device time. They never decide
whether an alert is open: every ``alarm`` and every ``sos`` is raised, and alerting attaches it to the
household's open alert of that kind as an occurrence (the timeline shows it) or, when that alert is
resolved, opens a new one. So no latch kept here can silence a later fire or press (issue: a resolved
alert must never leave a latch that hides the next incident; docs/detectors.md lists every latch).
What the state here decides is whether an occurrence is *news* (``Finding.notify_again``).

Smoke alarm (EN 14604 / GB 20517 semantics)
    ``alarm`` raises a critical SMOKE finding at once. The alarm is *sounding* from its first ``alarm``
    until ``alarm_cleared`` or until ``alarm_quiet_s`` (30 min) pass without a repeat: repeats while it
    sounds are occurrences of the same fire (no new notification); an ``alarm`` after it stopped is the
    alarm sounding again and notifies again. ``hush`` only silences the sounder, so it annotates the
    alert and never closes it; ``alarm_cleared`` annotates (a person still closes the alert). ``test``
    is remembered (last test time) but raises nothing. ``low_battery``, ``fault`` and ``tamper`` raise
    low-severity MAINTENANCE once until cleared (``tamper_cleared``; a later ``test`` shows the unit
    works again and clears fault and battery; the maintenance alert being resolved clears them too,
    see ``alert_closed``).

Call button (为老服务一键通)
    ``sos`` raises a critical SOS finding; a press within ``debounce_s`` of the last counted press is the
    same press (bounced or held) and does not notify again, a later one does. ``cancel`` within
    ``cancel_window_s`` of the press annotates the alert as a likely accidental press; a later cancel
    annotates without that judgement. Neither closes the alert: a person confirms.
    ``service_request`` raises a normal SERVICE_REQUEST (a task for the care team, not an emergency),
    debounced like ``sos``.

Presence. Every call-button event (``sos``, ``cancel``, ``service_request``, ``checkin_ok``) and a smoke
alarm's ``hush`` or ``test`` is a person at home: each also emits a PRESENCE finding (kind INACTIVITY,
``signal`` press or smoke; ``checkin_ok`` carries its ``checkin_id`` and raises nothing else). Alerting
answers a check-in in progress with it; the engine passes it to the household's meters as a sign of life.

Away and hospital periods never suppress these: a press or a fire is always somebody's emergency.
"""

from __future__ import annotations

from typing import Any

from detectors.config import EventConfig
from detectors.context import HouseholdView, epoch, to_dt
from schemas import evidence as ev
from schemas.evidence import Evidence
from schemas.findings import Finding, FindingAction, PresenceSignal
from schemas.kinds import DEFAULT_SEVERITY, AlertKind, CallEventKind, Severity
from schemas.records import DeviceEvent, DeviceInfo

_CALL_EVENTS = frozenset(kind.value for kind in CallEventKind)
_MAINTENANCE_EVIDENCE: dict[str, ev.SmokeLowBattery | ev.SmokeFault | ev.SmokeTamper] = {
    "low_battery": ev.SmokeLowBattery(),
    "fault": ev.SmokeFault(),
    "tamper": ev.SmokeTamper(),
}


def finding(
    device: DeviceInfo,
    kind: AlertKind,
    *,
    at: float,
    detected_at: float,
    evidence: Evidence,
    detector: str,
    action: FindingAction = FindingAction.RAISE,
    severity: Severity | None = None,
    details: dict[str, Any] | None = None,
    notify_again: bool = False,
) -> Finding:
    """A finding about ``device``'s household with the kind's default severity unless given."""
    return Finding(
        kind=kind,
        severity=severity or DEFAULT_SEVERITY[kind],
        household_id=device.household_id,
        device_id=device.device_id,
        at=to_dt(at),
        detected_at=to_dt(max(detected_at, at)),
        evidence=evidence,
        detector=detector,
        action=action,
        details=details or {},
        notify_again=notify_again,
    )


def presence(
    device: DeviceInfo,
    kind: AlertKind,
    signal: PresenceSignal,
    t: float,
    now: float,
    evidence: Evidence,
    checkin_id: str | None = None,
) -> Finding:
    """A sign of life at ``t`` (PRESENCE): INACTIVITY for water, a press or a smoke alarm pressed,
    CONTINUOUS_FLOW for a raised flow that stopped."""
    details: dict[str, Any] = {"signal": signal.value}
    if checkin_id is not None:
        details["checkin_id"] = checkin_id
    return finding(
        device, kind, at=t, detected_at=now, evidence=evidence, detector="presence",
        action=FindingAction.PRESENCE, details=details,
    )  # fmt: skip


class SmokeLogic:
    """Per smoke alarm state: since when it sounds, its last ``alarm``, which maintenance notices are open."""

    __slots__ = ("alarm_since", "cfg", "device", "last_alarm", "last_test", "open_maintenance")

    def __init__(self, device: DeviceInfo, cfg: EventConfig, state: dict[str, Any] | None = None) -> None:
        self.device = device
        self.cfg = cfg
        state = state or {}
        self.alarm_since: float | None = state.get("alarm_since")
        # Snapshots before this field: the alarm's start is its last known ``alarm``.
        self.last_alarm: float | None = state.get("last_alarm", self.alarm_since)
        self.last_test: float | None = state.get("last_test")
        self.open_maintenance: list[str] = list(state.get("maint", []))

    def on_event(self, event: DeviceEvent, view: HouseholdView) -> list[Finding]:
        t, now = epoch(event.ts), epoch(event.received_at)
        found = self._judge(event.kind, t, now, view)
        out = [found] if found is not None else []
        if event.kind in ("hush", "test"):
            text = view.evidence(now, ev.SmokePressed(at=to_dt(t)))
            out.append(presence(self.device, AlertKind.INACTIVITY, PresenceSignal.SMOKE, t, now, text))
        return out

    def sounding(self, t: float) -> bool:
        """Is the alarm still sounding at ``t``: an ``alarm`` without ``alarm_cleared`` and not quiet since."""
        last = self.last_alarm
        return self.alarm_since is not None and last is not None and t - last < self.cfg.alarm_quiet_s

    def _judge(self, kind: str, t: float, now: float, view: HouseholdView) -> Finding | None:
        dev = self.device
        if kind == "alarm":
            return self._alarm(t, now, view)
        since = self.alarm_since
        if kind == "hush":
            text = view.evidence(now, ev.SmokeHushed(at=to_dt(t)))
            return finding(
                dev, AlertKind.SMOKE, at=since if since is not None else t, detected_at=now, detector="smoke",
                action=FindingAction.ANNOTATE, evidence=text,
            )  # fmt: skip
        if kind == "alarm_cleared":
            self.alarm_since = None
            start = since if since is not None else t
            text = view.evidence(now, ev.SmokeStopped(at=to_dt(t), sounded_s=t - start))
            return finding(
                dev, AlertKind.SMOKE, at=start, detected_at=now, detector="smoke",
                action=FindingAction.ANNOTATE, evidence=text, details={"cleared_at": to_dt(t).isoformat()},
            )  # fmt: skip
        if kind == "test":
            # A passed test shows the unit works again: its fault/battery notices are over.
            self.last_test = t
            self.open_maintenance = [m for m in self.open_maintenance if m == "tamper"]
        elif kind in _MAINTENANCE_EVIDENCE and kind not in self.open_maintenance:
            self.open_maintenance.append(kind)
            return finding(
                dev, AlertKind.MAINTENANCE, at=t, detected_at=now, detector="smoke_maintenance",
                evidence=view.evidence(now, _MAINTENANCE_EVIDENCE[kind]), details={"event": kind},
            )  # fmt: skip
        elif kind == "tamper_cleared" and "tamper" in self.open_maintenance:
            self.open_maintenance.remove("tamper")
        return None

    def _alarm(self, t: float, now: float, view: HouseholdView) -> Finding:
        """Every ``alarm`` is raised: alerting attaches it to the open SMOKE alert or, when that one is
        resolved, opens a new alert. A repeat while the alarm sounds is the same fire (no new
        notification); an alarm after ``alarm_cleared`` or a quiet spell sounds again and is news."""
        repeat = self.sounding(t)
        if not repeat:
            self.alarm_since = t
        since = self.alarm_since if self.alarm_since is not None else t
        self.last_alarm = t if self.last_alarm is None else max(self.last_alarm, t)
        text = view.evidence(
            now,
            ev.SmokeStillSounding(at=to_dt(t), since=to_dt(since)) if repeat else ev.SmokeSounding(since=to_dt(t)),
        )
        return finding(
            self.device, AlertKind.SMOKE, at=t, detected_at=now, detector="smoke", evidence=text,
            details={"alarm_since": to_dt(since).isoformat(), "repeat": repeat}, notify_again=not repeat,
        )  # fmt: skip

    def close_maintenance(self) -> None:
        """The household's maintenance alert was resolved: the notices it carried are over; the next
        ``low_battery``/``fault``/``tamper`` raises again."""
        self.open_maintenance = []

    def snapshot(self) -> dict[str, Any]:
        return {
            "alarm_since": self.alarm_since,
            "last_alarm": self.last_alarm,
            "last_test": self.last_test,
            "maint": list(self.open_maintenance),
        }


class CallLogic:
    """Per call button state: the last press (for debounce and the cancel window)."""

    __slots__ = ("cfg", "device", "last_request", "last_sos")

    def __init__(self, device: DeviceInfo, cfg: EventConfig, state: dict[str, Any] | None = None) -> None:
        self.device = device
        self.cfg = cfg
        state = state or {}
        self.last_sos: float | None = state.get("last_sos")
        self.last_request: float | None = state.get("last_request")

    def on_event(self, event: DeviceEvent, view: HouseholdView) -> list[Finding]:
        t, now = epoch(event.ts), epoch(event.received_at)
        note = ev.Note(text=event.note[:120]) if event.note else None
        found: Finding | None = None
        if event.kind == "sos":
            found = self._sos(t, now, note, view)
        elif event.kind == "cancel":
            found = self._cancel(t, now, view)
        elif event.kind == "service_request":
            found = self._request(t, now, note, event.note, view)
        out = [found] if found is not None else []
        if event.kind not in _CALL_EVENTS:
            return out
        # Every press is a person at the button: a sign of life (and the answer to a check-in).
        text = view.evidence(now, ev.ButtonPressed(at=to_dt(t), event=event.kind))
        out.append(presence(self.device, AlertKind.INACTIVITY, PresenceSignal.PRESS, t, now, text, event.checkin_id))
        return out

    def _sos(self, t: float, now: float, note: ev.Note | None, view: HouseholdView) -> Finding:
        # Every press is raised (alerting attaches it to the open SOS alert, or opens a new one when
        # that is resolved); one within the debounce of the last counted press is the same press.
        bounced = self.last_sos is not None and 0 <= t - self.last_sos < self.cfg.debounce_s
        if not bounced:
            self.last_sos = t if self.last_sos is None else max(self.last_sos, t)
        text = view.evidence(
            now,
            ev.SosPressedAgain(at=to_dt(t), note=note) if bounced else ev.SosPressed(at=to_dt(t), note=note),
        )
        return finding(
            self.device, AlertKind.SOS, at=t, detected_at=now, detector="call_sos", evidence=text,
            details={"repeat": True} if bounced else {}, notify_again=not bounced,
        )  # fmt: skip

    def _cancel(self, t: float, now: float, view: HouseholdView) -> Finding | None:
        if self.last_sos is None or t < self.last_sos:
            return None
        after = t - self.last_sos
        accidental = after <= self.cfg.cancel_window_s
        text = view.evidence(
            now,
            ev.SosCancelledSoon(after_s=after)
            if accidental
            else ev.SosCancelledLate(after_s=after, window_s=self.cfg.cancel_window_s),
        )
        return finding(
            self.device, AlertKind.SOS, at=self.last_sos, detected_at=now, detector="call_sos",
            action=FindingAction.ANNOTATE, evidence=text,
            details={"likely_accidental": accidental, "cancel_after_s": round(after, 1)},
        )  # fmt: skip

    def _request(self, t: float, now: float, note: ev.Note | None, raw: str | None, view: HouseholdView) -> Finding:
        bounced = self.last_request is not None and 0 <= t - self.last_request < self.cfg.debounce_s
        if not bounced:
            self.last_request = t if self.last_request is None else max(self.last_request, t)
        details: dict[str, Any] = {"note": raw} if raw else {}
        if bounced:
            details["repeat"] = True
        return finding(
            self.device, AlertKind.SERVICE_REQUEST, at=t, detected_at=now, detector="call_service",
            evidence=view.evidence(now, ev.ServiceRequested(at=to_dt(t), note=note)),
            details=details, notify_again=not bounced,
        )  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        return {"last_sos": self.last_sos, "last_request": self.last_request}
