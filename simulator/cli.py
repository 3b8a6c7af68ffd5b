"""``carewatch simulate``: publish a simulated fleet over MQTT, or write it to a JSON-lines file.

    carewatch simulate --homes N --days D --seed S [--start TIME] [--speed X|max]
                       [--scenario SPEC ...] [--ground-truth FILE] [--output FILE]
                       [--mqtt-url mqtt://user:pass@host:port] [--tls --ca-file F ...]

``carewatch/cli.py`` registers the subcommand with ``add_arguments`` and calls ``run``. With
``--output`` nothing is published: each message becomes ``{"topic": ..., "payload": "<JSON text>"}``
in publish order (``payload_b64`` for the deliberately non-UTF-8 fault), and with ``--start`` fixed
the same seed gives byte-identical files. Progress goes to stderr; the summary (messages by kind,
incidents injected) to stdout, or to stderr when the messages themselves go to stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TextIO

from i18n import N_, cli_language, messages
from simulator.demo import DEMO_BACKFILL, demo_scenarios
from simulator.faults import FaultPlan
from simulator.fleet import Fleet, Simulation
from simulator.pacing import Pacer, drive
from simulator.payloads import SimMessage
from simulator.publisher import DevicePublisher, MqttTarget, PublishError, SharedPublisher
from simulator.scenarios import Incident, ScenarioError, ScenarioRequest, parse_scenarios
from simulator.timefmt import parse_time, to_ms

# Above this many devices, one connection per device costs more sockets than a test machine has.
_DEVICE_MODE_LIMIT = 2000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``carewatch simulate``'s options to ``parser``."""
    fleet = parser.add_argument_group("fleet and time")
    fleet.add_argument("--homes", type=int, default=30, help="number of homes (default 30)")
    fleet.add_argument("--days", type=float, default=1.0, help="simulated days (default 1)")
    fleet.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    fleet.add_argument("--start", help="simulated start, RFC 3339 with offset (default: now)")
    fleet.add_argument(
        "--speed", default=None, help="simulated seconds per real second, or 'max' (default 1; max with --output)"
    )
    fleet.add_argument("--id-prefix", default="sim", help="household/device id prefix (default 'sim')")
    fleet.add_argument("--topic-root", default="care/v1", help="MQTT topic root (default care/v1)")
    inject = parser.add_argument_group("incidents and faults")
    inject.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="SPEC",
        help="KIND[:home=H,at=T,for=D,device=wm|sa1|sa2|cb,rate=L/h,announced=yes], 'all' or 'demo'; repeatable",
    )
    inject.add_argument("--ground-truth", metavar="FILE", help="write injected incidents etc. as JSON lines")
    inject.add_argument("--faults", type=float, default=0.0, metavar="RATE", help="share of messages given a fault")
    inject.add_argument("--fault-kinds", metavar="K1,K2", help="fault kinds to use (default: all)")
    inject.add_argument(
        "--lossy-meters",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of water meters that lose transmissions (1 in 20, in runs of 4-25 h, never back-filled)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--output", metavar="FILE", help="write JSON lines here ('-' for stdout) instead of publishing")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    mqtt = parser.add_argument_group("MQTT")
    mqtt.add_argument(
        "--mqtt-url",
        default=os.environ.get("CAREWATCH_MQTT_URL", "mqtt://127.0.0.1:1883"),
        help="mqtt://user:pass@host:port or mqtts://... (default $CAREWATCH_MQTT_URL or local)",
    )
    mqtt.add_argument("--username", help="MQTT user name (overrides the URL)")
    mqtt.add_argument(
        "--password",
        default=os.environ.get("CAREWATCH_SIM_MQTT_PASSWORD"),
        help="MQTT password (default $CAREWATCH_SIM_MQTT_PASSWORD; overrides the URL)",
    )
    mqtt.add_argument("--tls", action="store_true", default=None, help="use TLS (implied by mqtts://)")
    mqtt.add_argument("--ca-file", help="CA bundle for the broker's certificate")
    mqtt.add_argument("--cert-file", help="client certificate (mutual TLS)")
    mqtt.add_argument("--key-file", help="client key (mutual TLS)")
    mqtt.add_argument(
        "--tls-insecure", action="store_true", default=None, help="do not verify the broker's certificate"
    )
    mqtt.add_argument(
        "--connection-mode",
        choices=["auto", "shared", "device"],
        default="auto",
        help=f"one connection per device, or shared (auto: per device up to {_DEVICE_MODE_LIMIT} devices)",
    )
    mqtt.add_argument("--connections", type=int, default=2, help="shared mode: connections (default 2)")
    mqtt.add_argument("--max-in-flight", type=int, default=20_000, help="unacknowledged messages per connection")


def run(args: argparse.Namespace) -> int:
    """Run ``carewatch simulate``; returns the process exit code."""
    try:
        sim, live_from = _build(args)
    except (ValueError, ScenarioError) as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    summary_to = sys.stderr if args.output == "-" else sys.stdout
    progress = _Progress(sim, enabled=not args.quiet)
    started = time.monotonic()
    try:
        if args.output:
            count = _write(sim, args.output, progress)
        else:
            speed = None if args.speed == "max" else float(args.speed or 1.0)
            count = _publish(sim, args, Pacer(speed, live_from_ms=live_from), progress)
    except PublishError as exc:
        progress.finish()
        print(f"simulate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        progress.finish()
        print(messages(cli_language()).gettext(N_("simulate: interrupted")), file=sys.stderr)
        count = sum(sim.counts.values())
    progress.finish()
    if args.ground_truth:
        sim.write_ground_truth(args.ground_truth)
    _summary(sim, count, time.monotonic() - started, summary_to)
    return 0


def _build(args: argparse.Namespace) -> tuple[Simulation, int | None]:
    now = datetime.now(UTC).replace(microsecond=0)
    start = datetime.fromtimestamp(parse_time(args.start) / 1000, tz=UTC) if args.start else now
    specs = [s for spec in args.scenario for s in spec.split(";") if s]
    demo = "demo" in specs
    live_from = None
    if demo:
        # The demo's live part starts at --start; its backfill (13 h) is replayed first, at once.
        live_from = to_ms(start)
        start -= DEMO_BACKFILL
    fleet = Fleet.generate(args.homes, args.seed, start, id_prefix=args.id_prefix)
    duration = timedelta(days=args.days) + (DEMO_BACKFILL if demo else timedelta())
    requests: list[Incident | ScenarioRequest] = [r for spec in specs if spec != "demo" for r in parse_scenarios(spec)]
    if demo:
        speed = 1.0 if args.speed in (None, "max") else float(args.speed)
        requests.extend(demo_scenarios(fleet, start + DEMO_BACKFILL, speed=speed))
    lossy = args.lossy_meters
    faults = FaultPlan.parse(args.faults, args.fault_kinds, lossy) if args.faults > 0 or lossy > 0 else None
    return fleet.simulate(duration, scenarios=requests, faults=faults, topic_root=args.topic_root), live_from


def _write(sim: Simulation, path: str, progress: _Progress) -> int:
    out: TextIO = sys.stdout if path == "-" else open(path, "w", encoding="utf-8")  # noqa: SIM115
    try:
        count = 0
        for message in sim:
            out.write(message.to_json_line() + "\n")
            count += 1
            if count % 4096 == 0:
                progress.update()
        return count
    finally:
        if out is not sys.stdout:
            out.close()


def _publish(sim: Simulation, args: argparse.Namespace, pacer: Pacer, progress: _Progress) -> int:
    target = MqttTarget.from_url(
        args.mqtt_url,
        username=args.username,
        password=args.password,
        tls=args.tls,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
        tls_insecure=args.tls_insecure,
    )
    devices = sim.devices
    mode = args.connection_mode
    if mode == "auto":
        mode = "device" if len(devices) <= _DEVICE_MODE_LIMIT else "shared"
    publisher: SharedPublisher | DevicePublisher
    if mode == "shared":
        prefix = f"{args.id_prefix}-sim-{os.getpid()}"
        publisher = SharedPublisher(
            target, client_id_prefix=prefix, connections=args.connections, max_in_flight=args.max_in_flight
        )
    else:
        publisher = DevicePublisher(target, devices, topic_root=args.topic_root)
    publisher.open()
    count = 0

    def tick(_: SimMessage) -> None:
        nonlocal count
        count += 1
        if count % 1024 == 0:
            progress.update()

    try:
        drive(sim, publisher, pacer, on_message=tick)
    finally:
        if not publisher.close():
            say = messages(cli_language())
            print(say.gettext(N_("simulate: some messages were not acknowledged before closing")), file=sys.stderr)
    return count


class _Progress:
    """A one-line progress bar on stderr (a line every 5 s when stderr is not a terminal)."""

    def __init__(self, sim: Simulation, *, enabled: bool) -> None:
        self.sim = sim
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def update(self) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < (0.25 if self.tty else 5.0):
            return
        self.last = now
        done = self.sim.progress()
        total = sum(self.sim.counts.values())
        rate = total / max(now - self.started, 1e-9)
        at = datetime.fromtimestamp(self.sim.position_ms / 1000, tz=UTC).isoformat(timespec="minutes")
        bar = "#" * int(done * 30)
        line = f"[{bar:<30}] {done:6.1%} sim {at} msgs {total:,} ({rate:,.0f}/s)"
        sys.stderr.write(("\r" + line) if self.tty else (line + "\n"))
        sys.stderr.flush()

    def finish(self) -> None:
        if self.enabled and self.tty and self.last:
            sys.stderr.write("\n")


def _summary(sim: Simulation, count: int, elapsed: float, out: TextIO) -> None:
    say = messages(cli_language())
    homes, devices = len(sim.homes), len(sim.devices)
    print(
        say(
            N_("simulate: {count} messages from {devices} devices in {homes} homes in {seconds} s"),
            count=say.number(count),
            devices=say.number(devices),
            homes=say.number(homes),
            seconds=say.number(elapsed, 1),
        ),
        file=out,
    )
    print(say.gettext(N_("messages by kind:")), file=out)
    for kind, n in sorted(sim.counts.items()):
        print(f"  {kind:<28} {say.number(n):>10}", file=out)
    injected = Counter(r.kind for r in sim.ground_truth() if r.category == "incident")
    faults = Counter(r.kind for r in sim.ground_truth() if r.category == "fault")
    print(say(N_("incidents injected: {count}"), count=sum(injected.values())), file=out)
    for kind, n in sorted(injected.items()):
        print(f"  {kind:<28} {say.number(n):>10}", file=out)
    if faults:
        print(say(N_("faults injected: {count}"), count=sum(faults.values())), file=out)
        for kind, n in sorted(faults.items()):
            print(f"  {kind:<28} {say.number(n):>10}", file=out)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m simulator.cli``) for use before the lead wires the subcommand."""
    parser = argparse.ArgumentParser(prog="carewatch simulate", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
