"""Benchmark: how many messages per second the simulator's load mode gets acknowledged by the broker.

    python bench/simulate.py [--url mqtt://127.0.0.1:1883] [--seconds 60] [--devices 100000]
                             [--processes N] [--connections 1] [--seed 1] [--wire raw|paho]

Each worker process generates its shard of one fleet (``Fleet.simulate(shard=(k, n))``: homes are
independent, so shards add up to exactly the whole fleet) as fast as possible and publishes it with
``SharedPublisher`` (QoS 1, bounded in-flight; by default on ``simulator.wire``, a minimal MQTT
client that batches writes and counts PUBACKs in bulk: about 3.5 times paho's rate here, see
docs/simulator.md). Generation happens inside the timed window: the figure is what a tester gets end
to end. The rate counts messages the broker acknowledged (PUBACK), divided
by the time from the common start until the last worker's acknowledgements are in.

Topics go under a fresh root ``bench/sim-<random>/...``; status messages are retained as the protocol
requires, so each worker clears its devices' retained status at the end (outside the timed window).

The last line is ``simulate: published_per_s=<n> devices=<n> processes=<n>``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.devices import build_home
from simulator.fleet import Fleet
from simulator.payloads import SimMessage
from simulator.publisher import MqttTarget, SharedPublisher

START = datetime(2026, 1, 5, tzinfo=UTC)


def _homes_for(devices: int, seed: int) -> int:
    """The smallest fleet with at least ``devices`` devices (homes have 3 or 4)."""
    homes = count = 0
    while count < devices:
        count += len(build_home(seed, homes, "sim").devices)
        homes += 1
    return homes


def _worker(k: int, args: argparse.Namespace, homes: int, root: str, ready: Any, results: Any) -> None:
    fleet = Fleet.generate(homes, args.seed, START)
    sim = fleet.simulate(timedelta(days=30), topic_root=root, shard=(k, args.processes))
    target = MqttTarget.from_url(args.url)
    publisher = SharedPublisher(
        target,
        client_id_prefix=f"bench-{root.rsplit('/', 1)[-1]}-{k}",
        connections=args.connections,
        max_in_flight=args.max_in_flight,
        wire=args.wire,
    )
    publisher.open()
    messages = iter(sim)
    # Boot the fleet before the clock starts: planning the first simulated day of every home (about
    # 1 ms a home) happens once per simulated day and would otherwise dominate a short run.
    first = next(messages)
    ready.wait()
    started = time.monotonic()
    deadline = started + args.seconds
    publisher.publish(first)
    count = 1
    for message in messages:
        publisher.publish(message)
        count += 1
        if count % 512 == 0:
            publisher.poll(0)
            if time.monotonic() >= deadline:
                break
    publisher.drain(60.0)
    finished = time.monotonic()
    acked = publisher.acked
    # Clear the retained status this shard left (an empty retained payload deletes it).
    for device in sim.devices:
        publisher.publish(SimMessage(device.topic(root, "status"), b"", 0, "clear", retain=True))
    publisher.close()
    results.put((k, acked, started, finished))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("CAREWATCH_MQTT_URL", "mqtt://127.0.0.1:1883"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--connections", type=int, default=1, help="MQTT connections per process")
    parser.add_argument("--max-in-flight", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--wire", choices=("raw", "paho"), default="raw", help="MQTT client (see simulator/wire.py)")
    args = parser.parse_args()

    homes = _homes_for(args.devices, args.seed)
    devices = sum(len(h.devices) for h in Fleet.generate(homes, args.seed, START).homes)
    root = f"bench/sim-{secrets.token_hex(4)}"
    print(f"bench: {homes:,} homes, {devices:,} devices, {args.processes} process(es), root {root}", file=sys.stderr)
    ready = mp.Barrier(args.processes)
    results: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    workers = [mp.Process(target=_worker, args=(k, args, homes, root, ready, results)) for k in range(args.processes)]
    for worker in workers:
        worker.start()
    outcomes = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    acked = sum(o[1] for o in outcomes)
    elapsed = max(o[3] for o in outcomes) - min(o[2] for o in outcomes)
    for k, n, s, f in sorted(outcomes):
        print(f"bench: worker {k}: {n:,} acknowledged in {f - s:.1f} s", file=sys.stderr)
    print(f"simulate: published_per_s={acked / elapsed:.0f} devices={devices} processes={args.processes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
