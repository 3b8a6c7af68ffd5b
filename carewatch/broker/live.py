"""The registry drives a running Mosquitto: login changes pushed right after commit, misses retried.

``LiveBroker.apply`` is what the API calls after it committed a login change (``api.broker``): it
brings those logins to the registry's state through the dynamic security plugin (``sync.apply``) and
answers ``applied``. When the broker is unreachable or refuses, nothing is lost silently:

1. the miss is logged (ids only) and recorded in ``broker_pending`` (PostgreSQL), so it survives a
   restart and shows in ``carewatch broker sync``;
2. a new plaintext password of that request is held **in memory only** (never written anywhere), so the
   retry can still give the broker that password;
3. ``run_retries`` (a thread of ``carewatch run``) applies pending logins again every ``retry_s``; when
   the plaintext is gone (the process restarted), the login fails closed: disabled at the broker and
   reported until it is rotated or the broker is restored from the registry's hashes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

import psycopg

from carewatch.broker.dynsec import DynsecAdmin, DynsecError
from carewatch.broker.sync import AccessConfig, apply, desired_accounts
from schemas.kinds import BrokerApplied
from storage import broker_access
from storage.auth import verify_device_password

log = logging.getLogger(__name__)

# Plaintexts held for retries; beyond this many the oldest are dropped (those logins then fail closed).
_MAX_HELD = 10_000


class LiveBroker:
    """Implements ``api.broker.BrokerAccess`` against Mosquitto's dynamic security plugin."""

    def __init__(self, *, admin: DynsecAdmin, config: AccessConfig, clock: Callable[[], datetime]) -> None:
        self._admin = admin
        self._config = config
        self._clock = clock
        self._held: dict[str, tuple[str, str]] = {}
        self._held_lock = threading.Lock()

    def apply(self, conn: psycopg.Connection, usernames: Sequence[str], passwords: Mapping[str, str]) -> BrokerApplied:
        started = self._clock()
        if passwords:
            self._hold(conn, passwords)
        try:
            with self._held_lock:
                held = dict(self._held)
            report = apply(conn, self._admin, self._config, usernames, held)
        except (DynsecError, psycopg.Error) as exc:
            self._record(conn, usernames, str(exc), started)
            return BrokerApplied.PENDING
        settled = report.settled(usernames)
        self._forget(settled)
        with conn.transaction():
            broker_access.clear_pending(conn, settled, before=started)
        for change, error in report.failed:
            log.error("broker: %s %s failed: %s", change.action.value, change.name, error)
        for item in report.unresolved:
            log.error("broker: login %s unresolved: %s", item.username, item.reason)
        missed = [name for name in usernames if name not in settled]
        if missed:
            self._record(conn, missed, "; ".join(error for _, error in report.failed) or "unresolved", started)
            return BrokerApplied.PENDING
        return BrokerApplied.APPLIED

    def retry_pending(self, conn: psycopg.Connection) -> int:
        """Apply every pending login again; return how many are still pending."""
        usernames = broker_access.pending_usernames(conn)
        if usernames:
            self.apply(conn, usernames, {})
        return len(broker_access.pending_usernames(conn))

    def run_retries(self, conninfo: str, stop: threading.Event, retry_s: float) -> None:
        """Retry pending logins every ``retry_s`` until ``stop`` is set (a thread of ``carewatch run``)."""
        conn: psycopg.Connection | None = None
        while not stop.wait(retry_s):
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
                left = self.retry_pending(conn)
                if left:
                    log.warning("broker: %d login change(s) still pending", left)
            except psycopg.Error as exc:
                log.error("broker: retrying pending logins failed on the database: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        self._admin.close()

    def _hold(self, conn: psycopg.Connection, passwords: Mapping[str, str]) -> None:
        # Hold a plaintext only with the fingerprint of the hash it matches: a later rotation (another
        # request) must never get an older password.
        accounts = {account.username: account for account in desired_accounts(conn, self._config, list(passwords))}
        with self._held_lock:
            for username, password in passwords.items():
                account = accounts.get(username)
                if account and account.password_hash and verify_device_password(password, account.password_hash):
                    self._held[username] = (account.fingerprint, password)
            while len(self._held) > _MAX_HELD:
                self._held.pop(next(iter(self._held)))

    def _forget(self, usernames: Sequence[str]) -> None:
        with self._held_lock:
            for username in usernames:
                self._held.pop(username, None)

    def _record(self, conn: psycopg.Connection, usernames: Sequence[str], error: str, now: datetime) -> None:
        log.error("broker: %d login change(s) not applied (%s); recorded, will retry", len(usernames), error[:200])
        try:
            with conn.transaction():
                for username in usernames:
                    broker_access.record_pending(conn, username, error, now)
        except psycopg.Error:
            log.exception("broker: could not record pending login changes (run `carewatch broker sync`)")
