"""Device health: silence, Last Will, battery and signal; one finding per household outage.

Silence is judged in *processing time* (when carewatch last heard from the device, ``received_at``),
not device time: a meter that uploads yesterday's readings today has been heard today. A device is
offline when nothing arrived for ``expected_interval_s × grace_factor`` (at least ``expected + grace_min_s``),
or at once when its status says ``online: false`` (its MQTT Last Will). Anything heard from it again
brings it back.

Outages are grouped per household (:class:`HouseholdHealth`): a power or network cut silences the
meter, the smoke alarm and the call button together, and caregivers need one incident, not three.
The first device to go offline raises one DEVICE_OFFLINE finding that names every device of the home
last heard within ``group_window_s`` of it (they are probably in the same outage, even if their own,
longer, heartbeat deadlines have not passed yet); devices going offline while that incident is open
join it without a new finding. When every device of the incident has been heard again, the incident
closes with an annotation. Low battery and weak signal raise low-severity MAINTENANCE once, until the
value recovers with a margin (hysteresis stops a battery at 19/21 % from flapping).
"""

from __future__ import annotations

from typing import Any

from detectors.config import HealthConfig
from detectors.context import HouseholdView, epoch, iso, to_dt
from detectors.events import finding
from schemas import evidence as ev
from schemas.evidence import Evidence
from schemas.findings import Finding, FindingAction
from schemas.kinds import AlertKind
from schemas.records import DeviceInfo, StatusReport


def describe(device: DeviceInfo) -> ev.DeviceRef:
    return ev.DeviceRef(device_type=device.device_type, device_id=device.device_id)


class DeviceHealth:
    """Liveness and battery/signal state of one device."""

    __slots__ = ("battery_low", "cfg", "device", "last_heard", "offline_since", "watch_from", "weak")

    def __init__(self, device: DeviceInfo, cfg: HealthConfig, state: dict[str, Any] | None = None) -> None:
        self.device = device
        self.cfg = cfg
        s = state or {}
        self.last_heard: float | None = s.get("heard")
        # Set while the device is considered offline (the time silence began).
        self.offline_since: float | None = s.get("off")
        self.battery_low: bool = s.get("bat", False)
        self.weak: bool = s.get("weak", False)
        # A registered device never heard from is watched from the first tick after registration
        # (processing time): a meter installed but never reporting is offline, not silent forever.
        self.watch_from: float | None = s.get("watch")

    def silence_limit_s(self) -> float:
        interval = float(self.device.expected_interval_s)
        return max(interval * self.cfg.grace_factor, interval + self.cfg.grace_min_s)

    def heard(self, received_at: float) -> bool:
        """Note a message; True if the device was offline and is now back."""
        if self.last_heard is None or received_at > self.last_heard:
            self.last_heard = received_at
        back = self.offline_since is not None
        self.offline_since = None
        return back

    def next_timer(self) -> float | None:
        heard = self.last_heard if self.last_heard is not None else self.watch_from
        if self.offline_since is not None or heard is None or self.device.expected_interval_s <= 0:
            return None
        return heard + self.silence_limit_s()

    def on_status(self, report: StatusReport, view: HouseholdView) -> list[Finding]:
        """Battery and signal notices from a status report (offline handling is the engine's)."""
        t, now = epoch(report.ts), epoch(report.received_at)
        out: list[Finding] = []
        cfg, name = self.cfg, describe(self.device)
        if report.battery_pct is not None:
            self.battery_low, fire = _latch_low(self.battery_low, report.battery_pct, cfg.low_battery_pct)
            if fire:
                evidence = view.evidence(
                    now, ev.BatteryLow(device=name, battery_pct=report.battery_pct, notice_pct=cfg.low_battery_pct)
                )
                out.append(self._notice(t, now, "health_battery", evidence, {"battery_pct": report.battery_pct}))
        if report.rssi_dbm is not None:
            self.weak, fire = _latch_low(self.weak, report.rssi_dbm, cfg.weak_rssi_dbm)
            if fire:
                evidence = view.evidence(
                    now, ev.SignalWeak(device=name, rssi_dbm=report.rssi_dbm, notice_dbm=cfg.weak_rssi_dbm)
                )
                out.append(self._notice(t, now, "health_signal", evidence, {"rssi_dbm": report.rssi_dbm}))
        return out

    def _notice(self, t: float, now: float, detector: str, evidence: Evidence, details: dict[str, Any]) -> Finding:
        return finding(
            self.device,
            AlertKind.MAINTENANCE,
            at=t,
            detected_at=now,
            detector=detector,
            evidence=evidence,
            details=details,
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "heard": self.last_heard,
            "off": self.offline_since,
            "bat": self.battery_low,
            "weak": self.weak,
            "watch": self.watch_from,
        }


class HouseholdHealth:
    """One household's open outage incident (grouping offline devices into one finding)."""

    __slots__ = ("cfg", "household_id", "incident")

    def __init__(self, household_id: str, cfg: HealthConfig, state: dict[str, Any] | None = None) -> None:
        self.household_id = household_id
        self.cfg = cfg
        incident = (state or {}).get("incident")
        # {"since": float, "devices": [device ids], "first": device id} while an outage is open.
        self.incident: dict[str, Any] | None = dict(incident) if incident else None

    def device_offline(
        self,
        health: DeviceHealth,
        since: float,
        now: float,
        reason: str,
        household: list[DeviceHealth],
        view: HouseholdView,
    ) -> list[Finding]:
        """``health``'s device went offline (silence began at ``since``)."""
        health.offline_since = since
        dev = health.device
        if self.incident is not None:
            if dev.device_id not in self.incident["devices"]:
                self.incident["devices"].append(dev.device_id)
            return []
        # Other devices heard last around the same time are probably in the same outage.
        peers = [
            h
            for h in household
            if h is not health
            and h.last_heard is not None
            and (h.offline_since is not None or abs(h.last_heard - since) <= self.cfg.group_window_s)
        ]
        self.incident = {"since": since, "first": dev.device_id, "devices": [dev.device_id]}
        for peer in peers:
            self.incident["devices"].append(peer.device.device_id)
            if peer.offline_since is None:
                peer.offline_since = peer.last_heard
        every = float(dev.expected_interval_s)
        why = (
            ev.OfflineLastWill()
            if reason == "last_will"
            else ev.OfflineNeverHeard(watched_from=to_dt(since), expected_every_s=every)
            if reason == "never_heard"
            else ev.OfflineSilent(since=to_dt(since), expected_every_s=every)
        )
        also = ev.AlsoSilent(
            devices=[ev.SilentPeer(device=describe(p.device), last_heard=to_dt(p.last_heard or since)) for p in peers]
        )
        evidence = view.evidence(
            now, ev.DeviceOffline(device=describe(dev), why=why, also_silent=also if peers else None)
        )
        return [
            finding(
                dev,
                AlertKind.DEVICE_OFFLINE,
                at=since,
                detected_at=now,
                detector="health_offline",
                evidence=evidence,
                details={"reason": reason, "devices": list(self.incident["devices"]), "silent_since": iso(since)},
            )
        ]

    def device_back(self, health: DeviceHealth, now: float, view: HouseholdView) -> list[Finding]:
        """``health``'s device was heard again; close the incident once all of its devices are back."""
        if self.incident is None:
            return []
        devices: list[str] = self.incident["devices"]
        if health.device.device_id in devices:
            devices.remove(health.device.device_id)
        if devices:
            return []
        since = float(self.incident["since"])
        self.incident = None
        # A message received before the Last Will that opened the incident (the broker sent the will
        # late, or the records were committed out of order) ends it as soon as it began, not earlier.
        back = max(now, since)
        return [
            finding(
                health.device,
                AlertKind.DEVICE_OFFLINE,
                at=since,
                detected_at=now,
                detector="health_offline",
                action=FindingAction.ANNOTATE,
                evidence=view.evidence(back, ev.DeviceBack(at=to_dt(back), silent_s=back - since)),
            )
        ]

    def snapshot(self) -> dict[str, Any]:
        return {"incident": self.incident}


def _latch_low(latched: bool, value: int, threshold: int) -> tuple[bool, bool]:
    """(latched, fire now) for a reading that is bad at or below ``threshold``: one notice when it
    becomes bad, and it must recover 10 above the threshold before another, so a value wobbling around
    the threshold does not notify again and again."""
    if not latched and value <= threshold:
        return True, True
    if latched and value >= threshold + 10:
        return False, False
    return latched, False
