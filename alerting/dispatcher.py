"""The outbox dispatcher: delivers pending notifications and drives escalation timers.

Each delivery runs in its own short transaction: lock one due row (``FOR UPDATE SKIP LOCKED``, so
several dispatchers in one or many processes never send the same row at once), send it, record the
attempt, then mark it sent, schedule a retry with exponential backoff, or mark it dead past its
deadline. If a worker dies after sending but before committing, the row stays pending and is sent again
with the same idempotency key: at most a retry, never a second distinct message. A dead delivery of a
critical alert escalates the alert at once (if the alert is still at that delivery's step) and is
listed for operators (``storage.outbox.list_dead``, ``GET /api/v1/deliveries/dead``).

Concurrency: one ``Dispatcher`` runs ``workers`` threads, each with its own connection, all taking rows
with ``SKIP LOCKED``; a slow channel (a webhook that takes seconds) then holds up one worker, not every
alert behind it. Only worker 0 moves escalation timers and checks overdue visits (other processes may
do the same: those rows are locked too). Workers share one ``Wakeup``. With ``listen`` a thread LISTENs
for the ``notifications_queued`` trigger, so a notification queued by any process (detectors, API,
another dispatcher's escalation) is sent at once instead of at the next poll; in one process the
detectors and the API may also set it directly.

Rate limits (messaging robots allow 20 messages a minute; SMS vendors throttle per phone number): a
robot's sends are admitted through a sliding window in the database shared by every dispatcher
(``storage.notify_groups.admit_robot_send``); a delivery that finds the window full is re-queued for
when a place frees up, without sending and without counting an attempt. When a destination itself
answers "too many" (``DeliveryResult.retry_after_s``: WeCom 45009, DingTalk 130101, HTTP 429, an SMS
vendor's flow control), the attempt is recorded, a robot is paused for every dispatcher
(``notify_groups.paused_until``) and the delivery is re-queued. Neither is a failure: the deadline
moves by the wait, so a delivery queued behind a busy robot is never marked dead for having waited;
only one still waiting ``RobotLimits.max_queue_s`` after it was queued is dead (and shows up for
operators like any other).

Escalation timers live in ``alerts.next_escalation_at``, so they survive restarts; every poll moves the
due ones on (``alerting.service.escalate_due``). Time comes from ``clock`` (tests inject one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

import psycopg

from alerting import checkins
from alerting.away import raise_away_followups
from alerting.channels import Channel, Delivery, DeliveryResult
from alerting.redaction import redacted, summary
from alerting.render import localized
from alerting.robots import RobotLimits
from alerting.service import SYSTEM_ACTOR, AlertingConfig, escalate_due, escalate_now
from alerting.visits import raise_overdue_visits
from i18n import recipient_language
from storage import alerts as alert_store
from storage import notify_groups, outbox

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def backoff(attempt: int, *, base_s: float = 1.0, cap_s: float = 60.0) -> timedelta:
    """Delay before retry number ``attempt`` (1-based): 1 s, 2 s, 4 s, ... capped."""
    return timedelta(seconds=min(cap_s, base_s * 2 ** (attempt - 1)))


class Wakeup:
    """A wake-up shared by several threads. A ``threading.Event`` cleared by one worker would swallow
    the wake meant for another; a generation counter lets each worker see every ``set`` it missed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def set(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Block until a ``set`` after generation ``seen`` or ``timeout``; return the current generation."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation != seen, timeout)
            return self._generation


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
        workers: int = 1,
        visit_check_every_s: float | None = 60.0,
        listen: bool = False,
        robot_limits: RobotLimits | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._channels = channels
        self._config = config
        self._poll_s = poll_s
        self._clock = clock
        self._on_delivered = on_delivered
        self._workers = max(1, workers)
        self._visit_check_every_s = visit_check_every_s
        self._last_visit_check = float("-inf")
        self._listen = listen
        self._robot_limits = robot_limits or RobotLimits()
        self.wake = Wakeup()
        self._stopping = threading.Event()
        self._conns: dict[int, psycopg.Connection] = {}

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    def close(self) -> None:
        """Close the connections of ``run_once`` callers (``run`` closes its own on the way out)."""
        for worker in list(self._conns):
            self._close(worker)

    def run(self) -> None:
        """Thread body: run ``workers`` delivery loops until ``stop``; database trouble is retried."""
        extra = [
            threading.Thread(target=self._loop, args=(index,), name=f"dispatcher-{index}", daemon=True)
            for index in range(1, self._workers)
        ]
        if self._listen:
            extra.append(threading.Thread(target=self._listen_loop, name="dispatcher-listen", daemon=True))
        for thread in extra:
            thread.start()
        self._loop(0)
        for thread in extra:
            thread.join(timeout=10)

    def _loop(self, worker: int) -> None:
        seen = self.wake.generation
        while not self._stopping.is_set():
            try:
                self._run_worker(worker)
            except psycopg.Error as exc:
                log.warning("dispatcher worker %d database error (%s); retrying", worker, exc)
                self._close(worker)
                self._stopping.wait(1.0)
            seen = self.wake.wait(seen, self._poll_s)
        self._close(worker)

    def _listen_loop(self) -> None:
        """Wake the workers on every NOTIFY of a queued notification, whichever process queued it."""
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    outbox.listen_queued(conn)
                    self.wake.set()  # anything queued while not listening
                    while not self._stopping.is_set():
                        if outbox.wait_for_queued(conn, 1.0):
                            self.wake.set()
            except psycopg.Error as exc:
                log.warning(
                    "dispatcher lost its LISTEN connection (%s); polling every %.1f s meanwhile", exc, self._poll_s
                )
                self._stopping.wait(1.0)

    def run_once(self) -> int:
        """Escalate what is due, then deliver every due notification; return deliveries attempted."""
        return self._run_worker(0)

    def _run_worker(self, worker: int) -> int:
        conn = self._connection(worker)
        if worker == 0:
            self._housekeeping(conn)
        attempted = 0
        while not self._stopping.is_set() and self._deliver_one(conn):
            attempted += 1
        return attempted

    def _housekeeping(self, conn: psycopg.Connection) -> None:
        now = self._clock()
        with conn.transaction():
            escalated = escalate_due(conn, now, self._config)
        if escalated:
            log.info("escalated %d alert(s)", escalated)
            self.wake.set()  # the other workers pick up the new notifications at once
        every = self._visit_check_every_s
        if every is not None and time.monotonic() - self._last_visit_check >= every:
            self._last_visit_check = time.monotonic()
            with conn.transaction():
                raised = raise_overdue_visits(conn, now, self._config)
                followups = raise_away_followups(conn, now, self._config)
            if raised:
                log.info("raised %d overdue-visit task(s)", raised)
            if followups:
                log.info("raised %d daily check-in(s) of announced absences", followups)
                self.wake.set()

    def _deliver_one(self, conn: psycopg.Connection) -> bool:
        with conn.transaction():
            due = outbox.lock_next_due(conn, self._clock())
            if due is None:
                return False
            channel = self._channels.get(due.channel)
            attempt = due.attempts + 1
            if channel is not None and due.group_id is not None:
                limits = self._robot_limits
                wait_s = notify_groups.admit_robot_send(
                    conn, due.group_id, limit=limits.per_window, window_s=limits.window_s + limits.margin_s
                )
                if wait_s > 0:  # the robot's window is full: queue behind it, nothing sent, no attempt
                    self._defer(conn, due, due.attempts, wait_s, "waiting for the robot's rate limit")
                    return True
            result: DeliveryResult | None = None
            if channel is None:
                ok, detail, permanent = False, f"no channel {due.channel!r} configured", True
            else:
                result = channel.send(_delivery(due))
                # Stored for operators, without the caregiver's addresses; only the summary is logged.
                detail = redacted(result.detail, due.phone, due.email, due.webhook_url, due.webhook_secret)
                ok, permanent = result.ok, result.permanent
            now = self._clock()
            outbox.record_attempt(conn, due.notification_id, attempt, now, ok, detail)
            if result is not None and not ok and not permanent and result.retry_after_s is not None:
                if due.group_id is not None:
                    notify_groups.pause_robot(conn, due.group_id, result.retry_after_s)
                self._defer(conn, due, attempt, result.retry_after_s, detail)
                return True
            retry_at = now + backoff(
                attempt,
                base_s=self._config.retry_base.total_seconds(),
                cap_s=self._config.retry_cap.total_seconds(),
            )
            if ok:
                outbox.mark_sent(conn, due.notification_id, attempt, now)
                if due.checkin_id is None:  # a check-in reaching the resident is not a caregiver notified
                    outbox.mark_alert_notified(conn, due.alert_id, now)
                log.info(
                    "alert %s: notification %s delivered to %s by %s",
                    due.alert_id,
                    due.notification_id,
                    due.recipient,
                    due.channel,
                )
            elif permanent or retry_at > due.deadline:
                self._dead(conn, due, attempt, detail, now)
            else:
                outbox.mark_retry(conn, due.notification_id, attempt, retry_at, detail)
                log.warning(
                    "alert %s: notification %s attempt %d failed: %s",
                    due.alert_id,
                    due.notification_id,
                    attempt,
                    summary(detail),
                )
        if ok and self._on_delivered is not None:
            self._on_delivered(due.alert_id)
        return True

    def _defer(
        self, conn: psycopg.Connection, due: outbox.DueNotification, attempts: int, wait_s: float, why: str
    ) -> None:
        """Re-queue after a rate-limit wait; the deadline moves by the wait, within ``max_queue_s``."""
        now = self._clock()
        next_at = now + timedelta(seconds=wait_s)
        queued_at = due.created_at or now
        deadline = min(due.deadline + timedelta(seconds=wait_s), queued_at + self._max_queue)
        deadline = max(deadline, due.deadline)
        if next_at > deadline:
            self._dead(conn, due, attempts, f"still rate limited after queueing {self._max_queue}: {why}", now)
            return
        outbox.defer(conn, due.notification_id, attempts, next_at, deadline, why)
        log.info(
            "alert %s: notification %s to %s by %s waits %.1f s (%s)",
            due.alert_id,
            due.notification_id,
            due.recipient,
            due.channel,
            wait_s,
            why,
        )

    @property
    def _max_queue(self) -> timedelta:
        return timedelta(seconds=self._robot_limits.max_queue_s)

    def _dead(
        self, conn: psycopg.Connection, due: outbox.DueNotification, attempt: int, detail: str, now: datetime
    ) -> None:
        outbox.mark_dead(conn, due.notification_id, attempt, detail)
        log.error(
            "alert %s: notification %s to %s by %s is dead after %d attempt(s): %s",
            due.alert_id,
            due.notification_id,
            due.recipient,
            due.channel,
            attempt,
            summary(detail),
        )
        alert_store.add_timeline(
            conn,
            due.alert_id,
            now,
            SYSTEM_ACTOR,
            "delivery_dead",
            f"{due.channel} to {due.recipient} after {attempt} attempt(s): {detail}",
        )
        if due.checkin_id is not None:
            checkins.delivery_died(conn, due.alert_id, due.checkin_id, now, self._config)
            self.wake.set()
            return
        if due.severity == "critical" and due.reason != "claimed_by_other":
            escalate_now(
                conn,
                due.alert_id,
                now,
                f"delivery to {due.recipient} failed",
                self._config,
                from_level=due.level,
            )
            self.wake.set()

    def _connection(self, worker: int) -> psycopg.Connection:
        conn = self._conns.get(worker)
        if conn is None or conn.closed:
            conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            self._conns[worker] = conn
        return conn

    def _close(self, worker: int) -> None:
        conn = self._conns.pop(worker, None)
        if conn is not None:
            conn.close()


def _delivery(due: outbox.DueNotification) -> Delivery:
    return Delivery(
        notification_id=due.notification_id,
        idempotency_key=due.idempotency_key,
        caregiver_id=due.caregiver_id or "",
        # In the recipient's language (their setting, else their household's zone's).
        body=localized(
            {**due.body, "notification_id": due.notification_id}, recipient_language(due.locale, due.timezone)
        ),
        webhook_url=due.webhook_url,
        webhook_secret=due.webhook_secret,
        email=due.email,
        phone=due.phone,
        group_id=due.group_id,
        robot_url=due.robot_url,
        robot_secret=due.robot_secret,
        locale=recipient_language(due.locale, due.timezone).value,
    )
