"""Live sequence-gap counting per device, for the ``carewatch_ingest_sequence_gaps`` metric.

Every device numbers its messages (``seq``, ``0 .. 2**32-1``, wrapping). A forward jump of ``d`` from
the last sequence number seen means ``d - 1`` messages never arrived (lost uplinks on the device side:
NB-IoT coverage, a gateway outage). Pure and in memory: it sees first-time messages in commit order,
per worker, so it is an early-warning signal, not the record. The authoritative figure is computed
from ``message_receipts`` in device-time order by ``storage.messages.sequence_gaps``, which is right
whatever the arrival order and however many workers share the subscription.

Rules (``step = (seq - last) mod 2**32``):
- ``step == 1``: in order (this includes the wrap from ``2**32 - 1`` to 0);
- ``2 <= step <= max_gap``: ``step - 1`` missing;
- ``step == 0`` or ``step > 2**31``: a repeat or a late, out-of-order message — no gap, and the
  device's position does not move back;
- ``max_gap < step <= 2**31``: the device restarted its counter (or was replaced) — no gap counted.
Memory is bounded by ``max_devices``: past it the table is cleared (counting restarts, no gap is
invented).
"""

from __future__ import annotations

from schemas.device import SEQ_MODULUS

_HALF = SEQ_MODULUS // 2


class SequenceTracker:
    def __init__(self, *, max_gap: int = 10_000, max_devices: int = 2_000_000) -> None:
        self._max_gap = max_gap
        self._max_devices = max_devices
        self._last: dict[str, int] = {}

    def observe(self, device_id: str, seq: int) -> int:
        """Record ``seq`` for ``device_id``; return how many messages this reveals as missing."""
        last = self._last.get(device_id)
        if last is None:
            if len(self._last) >= self._max_devices:
                self._last.clear()
            self._last[device_id] = seq
            return 0
        step = (seq - last) % SEQ_MODULUS
        if step == 0 or step > _HALF:
            return 0
        self._last[device_id] = seq
        if step <= self._max_gap:
            return step - 1
        return 0
