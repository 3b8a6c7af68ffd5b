"""``carewatch broker ...``: reconcile a running Mosquitto with the registry, or write its file.

- ``carewatch broker sync``: reads the whole broker's dynamic security and the registry, changes the
  broker to match, prints one line per change and a closing count, and exits 1 when a change failed or
  a login could not be resolved (see ``sync.py``), 2 when the broker cannot be reached at all.
- ``carewatch broker dynsec-config [--output FILE]``: the plugin's file from the registry, hashes and
  all (``dynsec_file.py``): for a new broker, or to restore one before it starts.

Both need ``CAREWATCH_DATABASE_URL`` and ``CAREWATCH_BROKER_ADMIN_PASSWORD``; ``sync`` also the broker
(``CAREWATCH_BROKER_ADMIN_URL``, else ``CAREWATCH_MQTT_URL``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg

from carewatch.broker.dynsec import DynsecAdmin, DynsecError
from carewatch.broker.dynsec_file import dynsec_json
from carewatch.broker.endpoints import access_config, admin_url
from carewatch.broker.sync import desired_accounts, sync
from carewatch.settings import Settings
from schemas.mqtt_endpoint import MqttEndpoint
from storage import broker_access


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="broker_command", required=True)
    commands.add_parser("sync", help="reconcile the running broker's dynamic security with the registry")
    config = commands.add_parser("dynsec-config", help="write the dynamic security plugin's file from the registry")
    config.add_argument("--output", type=Path, default=None, help="file to write (default: standard output)")


def _need(value: str | None, name: str) -> str:
    if not value:
        raise SystemExit(f"carewatch broker: {name} is not set")
    return value


def run(args: argparse.Namespace, settings: Settings) -> int:
    database_url = _need(settings.database_url, "CAREWATCH_DATABASE_URL")
    _need(settings.broker_admin_password, "CAREWATCH_BROKER_ADMIN_PASSWORD")
    if args.broker_command == "dynsec-config":
        return _write_config(args.output, settings, database_url)
    broker_url = _need(settings.broker_admin_url or settings.mqtt_url, "CAREWATCH_MQTT_URL")
    url = _need(admin_url(settings, broker_url), "CAREWATCH_BROKER_ADMIN_PASSWORD")
    print(f"broker sync: {MqttEndpoint.parse(url).redacted()} (dynamic security)", flush=True)
    with psycopg.connect(database_url, autocommit=True) as conn:
        started = conn.execute("SELECT now()").fetchone()
        try:
            with DynsecAdmin(mqtt_url=url) as admin:
                report = sync(conn, admin, access_config(settings))
        except DynsecError as exc:
            print(f"broker sync: failed: {exc}", flush=True)
            return 2
        if started is not None:
            # Pending changes the sync settled are done (those recorded while it ran stay).
            with conn.transaction():
                settled = report.settled(broker_access.pending_usernames(conn, limit=1_000_000))
                broker_access.clear_pending(conn, settled, before=started[0])
    *changes, counts = report.lines()
    for line in changes:
        print(line)
    print(f"broker sync: {counts}", flush=True)
    return 0 if report.ok else 1


def _write_config(output: Path | None, settings: Settings, database_url: str) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        accounts = desired_accounts(conn, access_config(settings))
    text = dynsec_json(
        accounts, admin_username=settings.broker_admin_username, admin_password=settings.broker_admin_password or ""
    )
    if output is None:
        sys.stdout.write(text + "\n")
        return 0
    # Password hashes inside: readable by the owner only (chown it to the broker's user).
    output.write_text("", encoding="utf-8")
    os.chmod(output, 0o600)
    output.write_text(text + "\n", encoding="utf-8")
    print(f"broker dynsec-config: {len(accounts)} accounts written to {output}", file=sys.stderr)
    return 0
