"""The live alert feed behind ``/api/v1/alerts/stream``: one watcher thread per app, many SSE clients.

Every insert or update of an alert, by any process (detectors, dispatcher, another API worker), adds a
row to ``alert_changes`` and sends ``NOTIFY carewatch_alert_changes`` (trigger, migration 0004). The
watcher thread holds one dedicated connection that LISTENs, wakes on a notification or every ``poll_s``
(so a lost notification only delays, never drops, a change), reads the new change rows, loads the
alerts' current state once, and hands each change to the subscribers allowed to see it.

Change ids are taken when a row is inserted but become visible when its transaction commits, so a
smaller id can appear after a larger one. The watcher therefore re-reads a window of ``REORDER_WINDOW``
ids below its high-water mark and skips the ids it already delivered.

Subscribers are asyncio queues on the server's event loop, fed with ``call_soon_threadsafe``. A client
too slow to drain its queue is dropped (its stream ends); it reconnects with ``Last-Event-ID`` and the
stream replays what it missed from ``alert_changes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from schemas.alerts import AlertPublic
from storage import alert_views
from storage.access import Scope

log = logging.getLogger(__name__)

CHANNEL = "carewatch_alert_changes"
REORDER_WINDOW = 200
QUEUE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class FeedItem:
    change_id: int
    alert: AlertPublic


# Put on a subscriber's queue to end its stream (feed closing, or the client fell behind).
END = FeedItem(change_id=-1, alert=None)  # type: ignore[arg-type]


@dataclass(eq=False)
class Subscription:
    loop: asyncio.AbstractEventLoop
    allows: Callable[[str, str], bool]  # (household_id, district) -> visible?
    queue: asyncio.Queue[FeedItem] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


def scope_predicate(scope: Scope, household_ids: frozenset[str] | None) -> Callable[[str, str], bool]:
    """Who sees a change: the same rule as ``storage.access.household_filter``."""
    if household_ids is not None:
        return lambda household_id, district: household_id in household_ids
    if scope.district is not None:
        wanted = scope.district
        return lambda household_id, district: district == wanted
    return lambda household_id, district: True


class AlertFeed:
    def __init__(self, *, conninfo: str, poll_s: float = 1.0) -> None:
        self._conninfo = conninfo
        self._poll_s = poll_s
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(self, loop: asyncio.AbstractEventLoop, allows: Callable[[str, str], bool]) -> Subscription:
        subscription = Subscription(loop=loop, allows=allows)
        with self._lock:
            self._subscribers.add(subscription)
            if self._thread is None and not self._stop.is_set():
                # Started on first use: the app may be served with lifespan events off (runtime.Pipeline).
                self._thread = threading.Thread(target=self._run, name="alert-feed", daemon=True)
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(subscription)

    def close(self) -> None:
        """Stop the watcher and end every open stream (so a server can shut down promptly)."""
        self._stop.set()
        with self._lock:
            subscribers, self._subscribers = list(self._subscribers), set()
            thread = self._thread
        for subscription in subscribers:
            self._offer(subscription, END)
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch()
            except psycopg.Error as exc:
                log.warning("alert feed lost its database connection (%s); reconnecting", exc)
                self._stop.wait(2.0)

    def _watch(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            # Changes committed before the watcher started are history (a client asks for them with
            # Last-Event-ID), so the re-read window never reaches below this floor.
            floor = high = alert_views.latest_change_id(conn)
            delivered: deque[int] = deque(maxlen=4 * REORDER_WINDOW)
            while not self._stop.is_set():
                changes = [
                    c
                    for c in alert_views.changes_after(conn, max(high - REORDER_WINDOW, floor))
                    if c.change_id not in delivered
                ]
                if changes:
                    self._publish(conn, changes)
                    delivered.extend(c.change_id for c in changes)
                    high = max(high, *(c.change_id for c in changes))
                # Wake on NOTIFY or after poll_s; the notifications' payloads are not needed.
                for _ in conn.notifies(timeout=self._poll_s, stop_after=1):
                    pass

    def _publish(self, conn: psycopg.Connection, changes: list[alert_views.AlertChange]) -> None:
        # One transaction often changes an alert several times (opened, then escalation set): send its
        # current state once, under the newest change id.
        newest = {c.alert_id: c for c in changes}
        rows = alert_views.get_alerts(conn, sorted(newest))
        with self._lock:
            subscribers = list(self._subscribers)
        for change in sorted(newest.values(), key=lambda c: c.change_id):
            row: dict[str, Any] | None = rows.get(change.alert_id)
            if row is None:
                continue
            item = FeedItem(change_id=change.change_id, alert=AlertPublic.model_validate(row))
            for subscription in subscribers:
                if subscription.allows(change.household_id, change.district):
                    self._offer(subscription, item)

    def _offer(self, subscription: Subscription, item: FeedItem) -> None:
        def put() -> None:
            try:
                subscription.queue.put_nowait(item)
            except asyncio.QueueFull:
                log.warning("alert stream subscriber fell behind; ending its stream")
                self.unsubscribe(subscription)
                with contextlib.suppress(asyncio.QueueEmpty):
                    subscription.queue.get_nowait()
                subscription.queue.put_nowait(END)

        with contextlib.suppress(RuntimeError):  # the subscriber's loop is already closed
            subscription.loop.call_soon_threadsafe(put)
