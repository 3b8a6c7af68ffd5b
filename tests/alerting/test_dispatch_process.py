"""The dispatcher outside the process that queues notifications: woken by NOTIFY, supervised as a child.

Real database and a real webhook receiver. The poll interval is set far beyond the test's timeouts, so
a delivery within them can only come from the ``notifications_queued`` NOTIFY.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from alerting.channels import WebhookChannel
from alerting.dispatcher import Dispatcher
from alerting.service import AlertingConfig
from carewatch.dispatch_process import DispatcherProcess
from carewatch.settings import Settings
from carewatch.webhook_receiver import WebhookReceiver
from tests.alerting.helpers import Member, finding, open_alert, provision
from tests.support import wait_until

CONFIG = AlertingConfig(delivery_deadline=timedelta(seconds=30))
NEVER_POLL_S = 120.0


def _family(prefix: str, hook: WebhookReceiver) -> list[Member]:
    return [Member(f"{prefix}-family", "family", 1, hook.url, hook.secret)]


def _new_for(hook: WebhookReceiver, alert_id: int) -> list[str]:
    return [d.body["caregiver_id"] for d in hook.deliveries if d.body["alert_id"] == alert_id]


def test_listening_dispatcher_is_woken_by_another_connections_insert(
    conn: psycopg.Connection, database_url: str, receiver: WebhookReceiver
) -> None:
    worker = Dispatcher(
        conninfo=database_url,
        channels={"webhook": WebhookChannel(timeout_s=5)},
        config=CONFIG,
        poll_s=NEVER_POLL_S,
        visit_check_every_s=None,
        listen=True,
    )
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)  # the first poll is over; from now on only a NOTIFY wakes it
        provision(conn, "hh-listen", _family("listen", receiver))
        alert_id = open_alert(conn, finding("hh-listen", at=datetime.now(UTC)), datetime.now(UTC), CONFIG)
        assert wait_until(lambda: _new_for(receiver, alert_id), timeout=10) == ["listen-family"]
    finally:
        worker.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_dispatcher_process_is_restarted_after_sigkill_and_delivers(
    conn: psycopg.Connection, database_url: str, receiver: WebhookReceiver
) -> None:
    settings = Settings(dispatch_poll_s=NEVER_POLL_S, dispatch_workers=2, app_channel=False, log_level="WARNING")
    supervised = DispatcherProcess(settings, "mqtt://127.0.0.1:1", database_url)
    supervised.start()
    try:
        provision(conn, "hh-proc", _family("proc", receiver))
        first = open_alert(conn, finding("hh-proc", at=datetime.now(UTC)), datetime.now(UTC), CONFIG)
        assert wait_until(lambda: _new_for(receiver, first), timeout=30) == ["proc-family"]
        pid = supervised.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: supervised.restarts == 1 and supervised.alive and supervised.pid != pid, timeout=15)
        provision(conn, "hh-proc2", _family("proc2", receiver))
        second = open_alert(conn, finding("hh-proc2", at=datetime.now(UTC)), datetime.now(UTC), CONFIG)
        assert wait_until(lambda: _new_for(receiver, second), timeout=30) == ["proc2-family"]
    finally:
        supervised.stop()
    assert not supervised.alive
    assert _new_for(receiver, first) == ["proc-family"]  # the kill repeated nothing
