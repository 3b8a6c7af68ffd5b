"""The bounded fault suite: the scenario code of bench/faults.py on short streams, in CI.

Each case builds the whole system from scratch (a private PostgreSQL and a private Mosquitto on spare
loopback ports, ``carewatch run`` with its children, the webhook receiver, the fleet), injects one fault
and asserts what bench/faults.py proves: nothing the broker acknowledged is lost, nothing stored twice,
every ground-truth incident alerted once and delivered. About 30 s per case on two cores; the
broker SIGKILL, the network cut, the burst and the full disk run in bench/faults.py (a minute each, or root).

Skipped, with the missing part named, only when Mosquitto or PostgreSQL 15's binaries are absent.
"""

from __future__ import annotations

import pytest

from bench.harness.faults import SCENARIOS, Timing, run_scenario
from bench.harness.services import missing_binaries

MISSING = missing_binaries()

pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=f"the fault suite needs {', '.join(MISSING)}"),
    pytest.mark.services,
    pytest.mark.slow,
]

CI = Timing(meters=30, rate=30.0, incident_every_s=1.0, lead_s=2.5, tail_s=2.5, outage_s=2.0, converge_s=60.0)


@pytest.mark.parametrize(
    "name", ["ingest_sigkill", "run_sigkill", "broker_sigterm", "dispatcher_kill", "postgres_restart"]
)
def test_nothing_lost_nothing_doubled(name: str) -> None:
    result = run_scenario(SCENARIOS[name], CI)
    assert not result.error, result.line()
    assert result.acked > 0, result.line()
    assert result.incidents > 0, result.line()
    assert result.lost == 0, result.line()
    assert result.stored_twice == 0, result.line()
    assert result.duplicated_alerts == 0, result.line()
    assert result.missed_alerts == 0, result.line()
    assert result.undelivered == 0, result.line()
    assert result.passed, result.line()
    if name == "dispatcher_kill":
        # The delivery in flight when the dispatcher died was made again, under the same idempotency key.
        assert result.repeats >= 1, result.line()
