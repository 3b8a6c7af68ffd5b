"""Per-device token buckets: a flooding device is rejected (``rate_limited``) without slowing others.

Pure: time is passed in. Buckets of devices not heard from for a while are forgotten so memory stays
bounded by the number of recently active devices.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, *, rate_per_s: float, burst: int, idle_forget_s: float = 3600.0) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._idle_forget_s = idle_forget_s
        self._buckets: dict[str, _Bucket] = {}
        self._last_sweep = 0.0

    def allow(self, device_id: str, now: float) -> bool:
        """Take one token for ``device_id`` at monotonic time ``now``; False means over the limit."""
        bucket = self._buckets.get(device_id)
        if bucket is None:
            bucket = self._buckets[device_id] = _Bucket(self._burst, now)
        else:
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
        if now - self._last_sweep > self._idle_forget_s:
            self._sweep(now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        stale = [key for key, b in self._buckets.items() if now - b.updated > self._idle_forget_s]
        for key in stale:
            del self._buckets[key]
