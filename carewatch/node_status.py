"""What a node tells operators about its share of a cluster: ``/readyz`` checks and Prometheus metrics.

- ``partitions``: the detection partitions this node holds (loaded and detecting), how many nodes are
  alive, and whether its leases were renewed lately (a node that cannot renew is about to lose them);
- ``feed``: how far behind the commit-ordered feed its detectors are (seconds since nothing was left to
  read; a node that falls a minute behind is not ready);
- ``database_role``: the server this node writes to (``host:port``), that it is a primary (carewatch
  connects with ``target_session_attrs=read-write``, so after a failover this names the new one) and
  its synchronous standbys as the primary reports them (``pg_stat_replication``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from psycopg_pool import ConnectionPool

from carewatch.detector_runner import DetectorRunner
from carewatch.partitions import PARTITIONS
from schemas.api import ReadyCheck
from storage.leases import ranges

MAX_FEED_LAG_S = 60.0


def readiness_checks(runner: DetectorRunner, pool: ConnectionPool) -> list[Callable[[], ReadyCheck]]:
    keeper = runner.leases

    def partitions() -> ReadyCheck:
        owned = runner.partitions
        renewed = keeper.renewed_at
        fresh = renewed is not None and time.monotonic() - renewed < 3 * keeper.renew_s + 1
        detail = (
            f"node {keeper.node_id} holds {len(owned)}/{PARTITIONS}: {ranges(owned)};"
            f" {keeper.nodes} node(s) alive; leases {'renewed' if fresh else 'NOT renewed lately'}"
        )
        return ReadyCheck(name="partitions", ok=fresh, detail=detail)

    def feed() -> ReadyCheck:
        lag = runner.feed_lag_s
        if lag is None:
            return ReadyCheck(name="feed", ok=False, detail="not read yet")
        return ReadyCheck(name="feed", ok=lag < MAX_FEED_LAG_S, detail=f"{lag:.1f}s behind")

    def database_role() -> ReadyCheck:
        with pool.connection(timeout=2) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(), coalesce(host(inet_server_addr()), 'local socket'),"
                " inet_server_port(), current_setting('synchronous_standby_names'),"
                " (SELECT string_agg(application_name || ' ' || sync_state, ', ') FROM pg_stat_replication)"
            ).fetchone()
        assert row is not None  # noqa: S101 - a SELECT without FROM returns one row
        standby, host, port, wanted, standbys = row
        role = "standby (read-only)" if standby else "primary"
        detail = f"{role} at {host}:{port}; synchronous standbys {wanted or 'none'}; replicas: {standbys or 'none'}"
        return ReadyCheck(name="database_role", ok=not standby, detail=detail)

    return [partitions, feed, database_role]


class NodeMetrics(Collector):
    """``carewatch_partitions_owned``, ``carewatch_partition_owned{partition}``, ``carewatch_nodes_alive``,
    ``carewatch_feed_lag_seconds``, ``carewatch_detector_fenced_findings_total``,
    ``carewatch_detector_partition_loads_total``, ``carewatch_detector_errors_total``."""

    def __init__(self, runner: DetectorRunner) -> None:
        self._runner = runner

    def collect(self) -> Iterable[Metric]:
        runner = self._runner
        owned = set(runner.partitions)
        yield GaugeMetricFamily("carewatch_partitions_owned", "Detection partitions this node holds", len(owned))
        per = GaugeMetricFamily(
            "carewatch_partition_owned", "1 for each partition this node holds", labels=["partition", "node"]
        )
        for number in sorted(owned):
            per.add_metric([str(number), runner.leases.node_id], 1)
        yield per
        yield GaugeMetricFamily(
            "carewatch_nodes_alive", "carewatch nodes alive (lease heartbeats)", runner.leases.nodes
        )
        lag = runner.feed_lag_s
        yield GaugeMetricFamily(
            "carewatch_feed_lag_seconds",
            "Seconds since this node's detectors last had nothing left to read in the feed",
            -1.0 if lag is None else lag,
        )
        yield CounterMetricFamily(
            "carewatch_detector_fenced_findings",
            "Findings not written because the partition's lease was no longer this node's",
            runner.fenced_total,
        )
        yield CounterMetricFamily(
            "carewatch_detector_partition_loads", "Partitions restored and replayed by this node", runner.loaded_total
        )
        yield CounterMetricFamily("carewatch_detector_errors", "Detector rounds that failed", runner.errors_total)
