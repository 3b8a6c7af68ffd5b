"""The outbox dispatcher: delivers pending notifications and drives escalation timers.

Each delivery runs in its own short transaction: lock one due row (``FOR UPDATE SKIP LOCKED``, so
several dispatchers in one or many processes never send the same row at once), send it, record the
attempt, then mark it sent, schedule a retry with exponential backoff, or mark it dead past its
deadline. If a worker dies after sending but before committing, the row stays pending and is sent again
with the same idempotency key: at most a retry, never a second distinct message. A dead delivery of a
critical alert escalates the alert at once.

Escalation timers live in ``alerts.next_escalation_at``, so they survive restarts; every poll moves the
due ones on (``alerting.service.escalate_due``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import psycopg

from alerting.channels import Channel, Delivery
from alerting.service import AlertingConfig, escalate_due, escalate_now
from storage import outbox

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def backoff(attempt: int, *, base_s: float = 1.0, cap_s: float = 60.0) -> timedelta:
    """Delay before retry number ``attempt`` (1-based): 1 s, 2 s, 4 s, ... capped."""
    return timedelta(seconds=min(cap_s, base_s * 2 ** (attempt - 1)))


class Dispatcher:
    def __init__(
        self,
        *,
        conninfo: str,
        channels: Mapping[str, Channel],
        config: AlertingConfig,
        poll_s: float = 0.2,
        clock: Clock = _utcnow,
        on_delivered: Callable[[int], None] | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._channels = channels
        self._config = config
        self._poll_s = poll_s
        self._clock = clock
        self._on_delivered = on_delivered
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self._conn: psycopg.Connection | None = None

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    def run(self) -> None:
        """Thread body: deliver and escalate until ``stop``; database trouble is retried, never fatal."""
        while not self._stopping.is_set():
            try:
                self.run_once()
            except psycopg.Error as exc:
                log.warning("dispatcher database error (%s); retrying", exc)
                self._close()
                self._stopping.wait(1.0)
            self.wake.wait(self._poll_s)
            self.wake.clear()
        self._close()

    def run_once(self) -> int:
        """Escalate what is due, then deliver every due notification; return deliveries attempted."""
        conn = self._connection()
        with conn.transaction():
            escalated = escalate_due(conn, self._clock(), self._config)
        if escalated:
            log.info("escalated %d alert(s)", escalated)
        attempted = 0
        while not self._stopping.is_set() and self._deliver_one(conn):
            attempted += 1
        return attempted

    def _deliver_one(self, conn: psycopg.Connection) -> bool:
        with conn.transaction():
            due = outbox.lock_next_due(conn, self._clock())
            if due is None:
                return False
            channel = self._channels.get(due.channel)
            attempt = due.attempts + 1
            if channel is None:
                ok, detail, permanent = False, f"no channel {due.channel!r} configured", True
            else:
                result = channel.send(
                    Delivery(
                        notification_id=due.notification_id,
                        idempotency_key=due.idempotency_key,
                        caregiver_id=due.caregiver_id,
                        body={**due.body, "notification_id": due.notification_id},
                        webhook_url=due.webhook_url,
                        webhook_secret=due.webhook_secret,
                    )
                )
                ok, detail, permanent = result.ok, result.detail, result.permanent
            now = self._clock()
            outbox.record_attempt(conn, due.notification_id, attempt, now, ok, detail)
            if ok:
                outbox.mark_sent(conn, due.notification_id, attempt, now)
                outbox.mark_alert_notified(conn, due.alert_id, now)
                log.info(
                    "alert %s: notification %s delivered to %s", due.alert_id, due.notification_id, due.caregiver_id
                )
            elif permanent or now + backoff(attempt) > due.deadline:
                outbox.mark_dead(conn, due.notification_id, attempt, detail)
                log.error(
                    "alert %s: notification %s to %s is dead: %s",
                    due.alert_id,
                    due.notification_id,
                    due.caregiver_id,
                    detail,
                )
                if due.severity == "critical":
                    escalate_now(conn, due.alert_id, now, f"delivery to {due.caregiver_id} failed", self._config)
            else:
                outbox.mark_retry(conn, due.notification_id, attempt, now + backoff(attempt), detail)
                log.warning(
                    "alert %s: notification %s attempt %d failed: %s",
                    due.alert_id,
                    due.notification_id,
                    attempt,
                    detail,
                )
        if ok and self._on_delivered is not None:
            self._on_delivered(due.alert_id)
        return True

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
