"""Two dispatchers (each with several workers) on one database never send a notification twice."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime

import psycopg

from alerting.channels import WebhookChannel
from alerting.dispatcher import Dispatcher
from alerting.service import AlertingConfig, apply_findings
from carewatch.webhook_receiver import WebhookReceiver
from schemas.kinds import AlertKind
from storage import outbox
from tests.alerting.helpers import Member, finding, provision

HOMES = 150  # x 2 caregivers (tiers 1 and 2, notified at once) = 300 notifications


def test_two_dispatchers_never_double_send(database_url: str) -> None:
    hook = WebhookReceiver(secret=secrets.token_hex(16)).start()
    config = AlertingConfig()
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        with conn.transaction():
            for i in range(HOMES):
                provision(
                    conn,
                    f"hh-cc-{i}",
                    [
                        Member(f"cc-fam-{i}", "family", 1, hook.url, hook.secret),
                        Member(f"cc-staff-{i}", "committee_staff", 2, hook.url, hook.secret),
                    ],
                )
        with conn.transaction():
            apply_findings(conn, [finding(f"hh-cc-{i}", AlertKind.SOS, now) for i in range(HOMES)], now, config)
        workers = [
            Dispatcher(
                conninfo=database_url,
                channels={"webhook": WebhookChannel(timeout_s=5)},
                config=config,
                poll_s=0.05,
                workers=2,
                visit_check_every_s=None,
            )
            for _ in range(2)
        ]
        threads = [threading.Thread(target=worker.run, daemon=True) for worker in workers]
        try:
            for thread in threads:
                thread.start()
            assert hook.wait_for(2 * HOMES, timeout=60)
            deadline = time.monotonic() + 10
            while outbox.pending_count(conn) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            for worker in workers:
                worker.stop()
            for thread in threads:
                thread.join(timeout=10)
            hook.stop()
        time.sleep(0.2)  # any straggler request would have arrived by now
        keys = [d.idempotency_key for d in hook.deliveries]
        assert len(keys) == len(set(keys)) == 2 * HOMES
        assert hook.repeats == 0
        attempts = conn.execute("SELECT count(*), max(attempt) FROM delivery_attempts").fetchone()
        assert attempts == (2 * HOMES, 1)
        assert conn.execute("SELECT count(*) FROM notifications WHERE status <> 'sent'").fetchone() == (0,)
