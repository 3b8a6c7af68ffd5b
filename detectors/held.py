"""Low-severity findings held back during a household's quiet window, released when it ends.

A maintenance notice (low battery, weak signal, a smoke alarm fault) at 02:00 should not wake a
volunteer; it is just as useful at 07:00. Emergencies and anything above ``Severity.LOW`` are never
held. Held findings are part of the household snapshot, so a restart does not lose them, and they keep
their original ``detected_at``; ``details["held_until"]`` records the release.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from detectors.context import HouseholdView, epoch, iso, to_dt
from schemas.evidence import Evidence, PlainText
from schemas.findings import Finding, FindingAction
from schemas.kinds import AlertKind, Severity


def finding_to_json(f: Finding) -> dict[str, Any]:
    return {
        "kind": f.kind.value,
        "severity": f.severity.value,
        "household_id": f.household_id,
        "device_id": f.device_id,
        "at": f.at.isoformat(),
        "detected_at": f.detected_at.isoformat(),
        "evidence": f.evidence.model_dump(mode="json"),
        "detector": f.detector,
        "action": f.action.value,
        "details": f.details,
    }


def finding_from_json(data: dict[str, Any]) -> Finding:
    return Finding(
        kind=AlertKind(data["kind"]),
        severity=Severity(data["severity"]),
        household_id=data["household_id"],
        device_id=data["device_id"],
        at=to_dt(epoch_iso(data["at"])),
        detected_at=to_dt(epoch_iso(data["detected_at"])),
        evidence=evidence_from_json(data["evidence"], data["detected_at"]),
        detector=data["detector"],
        action=FindingAction(data["action"]),
        details=dict(data["details"]),
    )


def evidence_from_json(data: Any, detected_at: str) -> Evidence:
    """Held evidence; text held before evidence was data (an older snapshot) is kept as it was."""
    if isinstance(data, str):
        return Evidence(message=PlainText(text=data), tz="UTC", as_of=datetime.fromisoformat(detected_at))
    return Evidence.model_validate(data)


def epoch_iso(text: str) -> float:
    return epoch(datetime.fromisoformat(text))


class HeldFindings:
    """Findings waiting for the end of a quiet window: ``((release_time, finding_json), ...)``."""

    __slots__ = ("items",)

    def __init__(self, state: list[list[Any]] | None = None) -> None:
        # A tuple: nearly always the shared empty one (a list would cost every household 56 B).
        self.items: tuple[tuple[float, dict[str, Any]], ...] = tuple((item[0], item[1]) for item in state or [])

    def hold(self, f: Finding, view: HouseholdView) -> bool:
        if f.severity is not Severity.LOW or f.action is not FindingAction.RAISE:
            return False
        release = view.quiet_release(epoch(f.detected_at))
        if release is None:
            return False
        held = replace(f, details={**f.details, "held_until": iso(release)})
        self.items = (*self.items, (release, finding_to_json(held)))
        return True

    def release(self, now: float) -> list[Finding]:
        due = [item for item in self.items if item[0] <= now]
        self.items = tuple(item for item in self.items if item[0] > now)
        return [finding_from_json(item[1]) for item in due]

    def next_timer(self) -> float | None:
        return min((item[0] for item in self.items), default=None)

    def snapshot(self) -> list[list[Any]]:
        return [list(item) for item in self.items]
