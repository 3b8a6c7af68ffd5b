"""The bounded hand-off between paho's network thread and the batch writer.

One producer (paho's network thread, in ``on_message``) and one consumer (the writer). ``queue.Queue``
takes a lock and notifies a condition on every ``put`` and every ``get``; at tens of thousands of
messages a second that was a measurable share of the ingest's CPU (both threads also contend for the
GIL). Here a ``deque`` carries the items (``append``/``popleft`` are atomic in CPython) and two events
signal only the transitions that matter: *empty → not empty* wakes a waiting writer, *full → not full*
wakes a blocked producer. The writer takes a whole batch in one call.

Back-pressure is the contract: ``put`` blocks while the inbox holds ``maxsize`` items, so paho stops
reading its socket and the broker keeps the messages (see ``mqtt_source``). Memory is bounded by
``maxsize`` messages (each at most the broker's ``max_packet_size``).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")

# How long a blocked producer sleeps before re-checking, in case a wake-up raced with its wait.
_RECHECK_S = 0.05


class Inbox(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._not_empty = threading.Event()
        self._not_full = threading.Event()
        self._not_full.set()

    def qsize(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Append ``item``; block while the inbox is full (back-pressure)."""
        items = self._items
        while len(items) >= self.maxsize:
            self._not_full.clear()
            # Re-check after clearing: the consumer may have drained in between (it sets the event
            # after taking), and the timeout covers the remaining race.
            if len(items) >= self.maxsize:
                self._not_full.wait(_RECHECK_S)
        items.append(item)
        if not self._not_empty.is_set():
            self._not_empty.set()

    def take(self, max_items: int, timeout: float) -> list[T]:
        """Up to ``max_items`` items, waiting at most ``timeout`` seconds for the first one."""
        items = self._items
        if not items:
            self._not_empty.clear()
            if not items:
                self._not_empty.wait(timeout)
        count = min(max_items, len(items))
        popleft = items.popleft
        taken = [popleft() for _ in range(count)]
        if taken and not self._not_full.is_set():
            self._not_full.set()
        return taken
