"""Pacing simulated time against the wall clock, and the publish loop that uses it.

``speed`` is simulated seconds per real second (``1.0`` is real time, ``1440`` is a day a minute,
``None`` is as fast as possible). Messages before ``live_from_ms`` are a backfill and go out at once
(device timestamps in the past, as late NB-IoT data would); from then on a message simulated at ``t``
is published at ``wall0 + (t - live_from_ms) / speed``. Pacing follows ``SimMessage.at_ms`` (device
time), so a message that a fault delayed is also published late.

While waiting, the loop keeps servicing the network (PUBACKs, keep-alive pings), which a real-time run
needs because it can sit idle for minutes between messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from simulator.payloads import SimMessage


class Sink(Protocol):
    """Where paced messages go: a publisher (``simulator.publisher``) or a file writer."""

    def publish(self, message: SimMessage) -> None: ...

    def poll(self, timeout_s: float) -> None: ...


class Pacer:
    """Maps simulated instants to wall-clock deadlines (see the module docstring)."""

    def __init__(
        self, speed: float | None, *, live_from_ms: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError("speed must be positive (or None for as fast as possible)")
        self.speed = speed
        self.live_from_ms = live_from_ms
        self.clock = clock
        self._wall0: float | None = None

    def wait_s(self, at_ms: int) -> float:
        """Seconds to wait before publishing a message simulated at ``at_ms`` (<= 0: now)."""
        if self.speed is None:
            return 0.0
        if self.live_from_ms is None:
            # No explicit live moment: the first message defines it.
            self.live_from_ms = at_ms
        if at_ms < self.live_from_ms:
            return 0.0
        now = self.clock()
        if self._wall0 is None:
            self._wall0 = now
        return self._wall0 + (at_ms - self.live_from_ms) / 1000 / self.speed - now


def drive(
    messages: Iterable[SimMessage],
    sink: Sink,
    pacer: Pacer,
    *,
    on_message: Callable[[SimMessage], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    poll_every: int = 256,
) -> int:
    """Publish ``messages`` to ``sink`` paced by ``pacer``; returns how many were published."""
    count = 0
    for message in messages:
        wait = pacer.wait_s(message.at_ms)
        while wait > 0:
            sink.poll(min(wait, 0.5))
            if should_stop is not None and should_stop():
                return count
            wait = pacer.wait_s(message.at_ms)
        sink.publish(message)
        count += 1
        if count % poll_every == 0:
            sink.poll(0)
            if should_stop is not None and should_stop():
                return count
        if on_message is not None:
            on_message(message)
    return count
