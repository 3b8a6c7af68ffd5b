"""``python -m ingest``: a standalone ingest worker (no detectors, alerting or API in the process).

For scaling the ingest out (several workers sharing ``$share/<group>/...``, see docs/ingest.md) and
for the crash tests, which SIGKILL it. Configuration is carewatch's: ``CAREWATCH_MQTT_URL``,
``CAREWATCH_DATABASE_URL``, ``CAREWATCH_TOPIC_ROOT``, ``CAREWATCH_MQTT_CLIENT_ID`` (stable and unique
per worker), ``CAREWATCH_MQTT_SHARE_GROUP`` and the ``CAREWATCH_INGEST_*`` settings. The database must
already be migrated (``carewatch db migrate``). Committed messages are not handed to detectors here,
and no detector reads them from the database as they arrive (only on a restart's replay): a standalone
worker scales storage only. For detection, scale the ingest inside ``carewatch run`` with
``CAREWATCH_INGEST_PROCESSES=N`` (child processes on one shared subscription, all feeding its detectors).

Prints ``ingest: ready`` on stdout once connected to the broker; SIGTERM/SIGINT stop it cleanly
(the batch in hand is committed and acknowledged, or left to the broker to redeliver).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from prometheus_client import CollectorRegistry, start_http_server

from carewatch.broker.endpoints import service_mqtt_url
from carewatch.broker.roles import Service
from carewatch.child import tune_gc
from carewatch.runtime import ingest_config
from carewatch.settings import load_settings
from ingest.service import IngestService
from schemas.intake import Accepted

log = logging.getLogger("ingest")


def _discard(batch: list[Accepted]) -> None:
    """Committed messages need no hand-off in a standalone worker."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics on this port")
    args = parser.parse_args(argv)
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if not settings.mqtt_url or not settings.database_url:
        log.error("CAREWATCH_MQTT_URL and CAREWATCH_DATABASE_URL must be set")
        return 2
    registry = CollectorRegistry()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    service = IngestService(
        config=ingest_config(settings),
        # Its own broker login and TLS files (carewatch.broker.endpoints).
        mqtt_url=service_mqtt_url(settings, settings.mqtt_url, Service.INGEST),
        database_url=settings.database_url,
        on_committed=_discard,
        registry=registry,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    tune_gc()
    service.start()
    if service.connected.wait(30):
        sys.stdout.write("ingest: ready\n")
        sys.stdout.flush()
    stop.wait()
    service.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
