"""Faults: the whole system (``carewatch run`` and its children, Mosquitto with persistence, PostgreSQL)
streams a known fleet through each fault, and the database and the caregivers' receiver prove that no
message and no alert was lost or doubled.

    python bench/faults.py [--scenarios a,b,...] [--quick] [--keep] [--list]

Each scenario starts from scratch on this machine, on spare loopback ports under a temporary directory,
never the machine's shared servers: a private PostgreSQL 15 (initdb/pg_ctl from
/usr/lib/postgresql/15/bin), a private Mosquitto 2 with carewatch's configuration and persistence
(carewatch/mosquitto.conf, the same message settings and ``autosave_interval`` as deploy/mosquitto), the
caregivers' signed webhook in its own process, ``carewatch run`` and a fleet publishing meter readings
and incidents (``sos`` presses and smoke alarms placed with the simulator's ground truth,
simulator.scenarios) over MQTT QoS 1 with persistent sessions. The scenarios (bench/harness/faults.py
says what each proves):

    broker_sigterm    Mosquitto restarted with SIGTERM mid-stream
    broker_sigkill    Mosquitto killed with SIGKILL mid-stream (what the autosave interval can lose)
    postgres_restart  PostgreSQL restarted (fast shutdown) mid-stream
    postgres_sigkill  PostgreSQL's processes SIGKILLed mid-stream (a crash), started again
    ingest_sigkill    the ingest child SIGKILLed mid-batch (at 10x rate)
    dispatcher_kill   the dispatcher child SIGKILLed with a webhook request in flight
    run_sigkill       carewatch run's process group SIGKILLed and started again
    network_cut       every connection to the broker reset and refused for a minute (a TCP proxy)
    network_cut_carewatch  the same for carewatch's connections only (devices go on; the broker queues)
    burst             ten times the normal rate for a minute
    disk_full         the database's filesystem (a tmpfs tablespace) full, then space given back

``--quick`` shortens every phase (the network cut and the burst last 15 s instead of 60 s, the full disk
10 s instead of 30 s; the line before the last says so). Per-scenario figures come first; the last line:

    faults: scenarios=<n> passed=<n> lost=<n> duplicated_alerts=<n> missed_alerts=<n>

Targets: passed = scenarios, lost = duplicated_alerts = missed_alerts = 0. Exit 0 when met, 1 when not,
2 when something it needs is missing (mosquitto, PostgreSQL 15's binaries).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, ``bench/`` is sys.path[0], where ``bench/ingest.py`` would shadow the ``ingest``
# package: put the repository root there instead.
if Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import signal

from bench.harness.faults import FULL, MEASUREMENTS, QUICK, SCENARIOS, run_scenario
from bench.harness.services import missing_binaries


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated names (default: all)")
    parser.add_argument("--quick", action="store_true", help="short phases (cut and burst 15 s, full disk 10 s)")
    parser.add_argument("--keep", action="store_true", help="keep every scenario's work directory")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args()
    if args.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:<24} {scenario.what}")
        for scenario in MEASUREMENTS.values():
            print(f"{scenario.name:<24} {scenario.what} (a measurement of a known loss, run only when named)")
        return 0
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    known = {**SCENARIOS, **MEASUREMENTS}
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; --list shows them")
    missing = missing_binaries()
    if missing:
        print(f"faults: cannot run: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    timing = QUICK if args.quick else FULL
    print(f"timing: {'quick' if args.quick else 'full'}: {timing}", flush=True)
    results = []
    for name in names:
        scenario = known[name]
        print(f"{name}: {scenario.what} ...", flush=True)
        result = run_scenario(scenario, timing, keep=args.keep)
        results.append(result)
        print(result.line(), flush=True)
    if args.quick:
        print(f"(quick: the network cut lasted {timing.cut_s:.0f} s, the burst {timing.burst_s:.0f} s, the full"
              f" disk {timing.hold_s:.0f} s; the full run uses {FULL.cut_s:.0f}, {FULL.burst_s:.0f} and"
              f" {FULL.hold_s:.0f} s)")  # fmt: skip
    passed = sum(r.passed for r in results)
    lost = sum(r.lost for r in results)
    duplicated = sum(r.duplicated_alerts for r in results)
    missed = sum(r.missed_alerts for r in results)
    print(f"faults: scenarios={len(results)} passed={passed} lost={lost} duplicated_alerts={duplicated}"
          f" missed_alerts={missed}")  # fmt: skip
    return 0 if passed == len(results) and lost == duplicated == missed == 0 else 1


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what it started (finally blocks)
    sys.exit(main())
