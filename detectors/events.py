"""Event detectors: the smoke alarm and the one-touch call button.

Both are small state machines over discrete device events, evaluated in device time:

Smoke alarm (EN 14604 / GB 20517 semantics)
    ``alarm`` raises a critical SMOKE finding at once. The alarm stays *active* until ``alarm_cleared``:
    ``hush`` only silences the sounder, so it annotates the alert and never closes it; a repeated
    ``alarm`` while active is the same fire and is not raised again. ``alarm_cleared`` annotates (a
    person still closes the alert). ``test`` is remembered (last test time) but raises nothing.
    ``low_battery``, ``fault`` and ``tamper`` raise low-severity MAINTENANCE once until cleared
    (``tamper_cleared``; a later ``test`` shows the unit works again and clears fault and battery).

Call button (为老服务一键通)
    ``sos`` raises a critical SOS finding; presses within ``debounce_s`` of each other are one press.
    ``cancel`` within ``cancel_window_s`` of the press annotates the alert as a likely accidental press;
    a later cancel annotates without that judgement. Neither closes the alert: a person confirms.
    ``service_request`` raises a normal SERVICE_REQUEST (a task for the care team, not an emergency).

Away and hospital periods never suppress these: a press or a fire is always somebody's emergency.
"""

from __future__ import annotations

from typing import Any

from detectors.config import EventConfig
from detectors.context import HouseholdView, epoch, hours, to_dt
from schemas.findings import Finding, FindingAction
from schemas.kinds import DEFAULT_SEVERITY, AlertKind, Severity
from schemas.records import DeviceEvent, DeviceInfo

_MAINTENANCE_TEXT = {
    "low_battery": "smoke alarm reports a low battery: replace it before the alarm goes silent",
    "fault": "smoke alarm reports a fault: it may not detect smoke; arrange a technician",
    "tamper": "smoke alarm removed from its base (tamper): it cannot protect the home until refitted",
}


def finding(
    device: DeviceInfo,
    kind: AlertKind,
    *,
    at: float,
    detected_at: float,
    evidence: str,
    detector: str,
    action: FindingAction = FindingAction.RAISE,
    severity: Severity | None = None,
    details: dict[str, Any] | None = None,
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
    )


class SmokeLogic:
    """Per smoke alarm state: is an alarm active, which maintenance notices are open."""

    __slots__ = ("alarm_since", "cfg", "device", "last_test", "open_maintenance")

    def __init__(self, device: DeviceInfo, cfg: EventConfig, state: dict[str, Any] | None = None) -> None:
        self.device = device
        self.cfg = cfg
        state = state or {}
        self.alarm_since: float | None = state.get("alarm_since")
        self.last_test: float | None = state.get("last_test")
        self.open_maintenance: list[str] = list(state.get("maint", []))

    def on_event(self, event: DeviceEvent, view: HouseholdView) -> list[Finding]:
        found = self._judge(event.kind, epoch(event.ts), epoch(event.received_at), view)
        return [found] if found is not None else []

    def _judge(self, kind: str, t: float, now: float, view: HouseholdView) -> Finding | None:
        dev, since = self.device, self.alarm_since
        if kind == "alarm" and since is None:
            self.alarm_since = t
            text = f"smoke alarm sounding since {view.fmt(t, now)}: treat as a fire until a person has checked"
            return finding(dev, AlertKind.SMOKE, at=t, detected_at=now, detector="smoke", evidence=text)
        if kind == "hush" and since is not None:
            text = f"alarm hushed at {view.fmt(t, now)}: silenced only, the alarm is not cleared"
            return finding(
                dev, AlertKind.SMOKE, at=since, detected_at=now, detector="smoke",
                action=FindingAction.ANNOTATE, evidence=text,
            )  # fmt: skip
        if kind == "alarm_cleared" and since is not None:
            self.alarm_since = None
            text = (
                f"alarm stopped at {view.fmt(t, now)} after {hours(t - since)}: "
                "a person must still confirm the home is safe"
            )
            return finding(
                dev, AlertKind.SMOKE, at=since, detected_at=now, detector="smoke",
                action=FindingAction.ANNOTATE, evidence=text, details={"cleared_at": to_dt(t).isoformat()},
            )  # fmt: skip
        if kind == "test":
            # A passed test shows the unit works again: its fault/battery notices are over.
            self.last_test = t
            self.open_maintenance = [m for m in self.open_maintenance if m == "tamper"]
        elif kind in _MAINTENANCE_TEXT and kind not in self.open_maintenance:
            self.open_maintenance.append(kind)
            return finding(
                dev, AlertKind.MAINTENANCE, at=t, detected_at=now, detector="smoke_maintenance",
                evidence=_MAINTENANCE_TEXT[kind], details={"event": kind},
            )  # fmt: skip
        elif kind == "tamper_cleared" and "tamper" in self.open_maintenance:
            self.open_maintenance.remove("tamper")
        # A repeated alarm while one is active is the same fire: nothing new to raise.
        return None

    def snapshot(self) -> dict[str, Any]:
        return {"alarm_since": self.alarm_since, "last_test": self.last_test, "maint": list(self.open_maintenance)}


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
        note = f' (note: "{event.note[:120]}")' if event.note else ""
        found: Finding | None = None
        if event.kind == "sos":
            found = self._sos(t, now, note, view)
        elif event.kind == "cancel":
            found = self._cancel(t, now)
        elif event.kind == "service_request":
            found = self._request(t, now, note, event.note, view)
        return [found] if found is not None else []

    def _sos(self, t: float, now: float, note: str, view: HouseholdView) -> Finding | None:
        if self.last_sos is not None and 0 <= t - self.last_sos < self.cfg.debounce_s:
            return None  # one press, bounced or held down
        self.last_sos = t
        text = f"emergency button pressed at {view.fmt(t, now)}{note}: call the resident now"
        return finding(self.device, AlertKind.SOS, at=t, detected_at=now, detector="call_sos", evidence=text)

    def _cancel(self, t: float, now: float) -> Finding | None:
        if self.last_sos is None or t < self.last_sos:
            return None
        after = t - self.last_sos
        accidental = after <= self.cfg.cancel_window_s
        text = (
            f"cancelled {after:.0f} s after the press: likely accidental, confirm with the resident"
            if accidental
            else f"cancel pressed {hours(after)} after the press (outside the {self.cfg.cancel_window_s:.0f} s "
            "window): not treated as accidental"
        )
        return finding(
            self.device, AlertKind.SOS, at=self.last_sos, detected_at=now, detector="call_sos",
            action=FindingAction.ANNOTATE, evidence=text,
            details={"likely_accidental": accidental, "cancel_after_s": round(after, 1)},
        )  # fmt: skip

    def _request(self, t: float, now: float, note: str, raw: str | None, view: HouseholdView) -> Finding | None:
        if self.last_request is not None and 0 <= t - self.last_request < self.cfg.debounce_s:
            return None
        self.last_request = t
        return finding(
            self.device, AlertKind.SERVICE_REQUEST, at=t, detected_at=now, detector="call_service",
            evidence=f"service request at {view.fmt(t, now)}{note}: not urgent, contact the resident",
            details={"note": raw} if raw else {},
        )  # fmt: skip

    def snapshot(self) -> dict[str, Any]:
        return {"last_sos": self.last_sos, "last_request": self.last_request}
