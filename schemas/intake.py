"""The outcome of decoding one device message: ``Accepted`` (with its records) or ``Rejected``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.device import DeviceMessage
from schemas.kinds import Channel, RejectReason
from schemas.records import DeviceInfo, Record


@dataclass(frozen=True, slots=True)
class Accepted:
    device: DeviceInfo
    channel: Channel
    message: DeviceMessage
    received_at: datetime
    clock_skewed: bool
    records: tuple[Record, ...]

    @property
    def key(self) -> tuple[str, int, datetime]:
        """The idempotency key: a redelivered or replayed message has the same one."""
        return (self.device.device_id, self.message.seq, self.message.ts)


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    detail: str
    topic: str
    payload: bytes
    received_at: datetime
    device_id: str | None = None
