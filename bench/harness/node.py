"""``carewatch run`` as a subprocess in its own process group, the way a supervisor runs it.

A SIGKILL of the group takes its children (ingest, dispatcher) with it, as a dead host would; the
children are found through ``/proc`` to kill one of them alone: the ingest child is the one
holding MQTT connections to the broker (its two lanes), the dispatcher the other.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from bench.harness.services import process_children
from carewatch.embedded import free_port

PARTITIONS = 64


class Node:
    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name, self.workdir = name, workdir
        self.api_port = free_port()
        self.env = {**env, "CAREWATCH_NODE_ID": name, "CAREWATCH_API_PORT": str(self.api_port),
                    "CAREWATCH_MQTT_CLIENT_ID": f"cw-{name}"}  # fmt: skip
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_files(self) -> list[Path]:
        return [self.workdir / f"{self.name}-{n}.log" for n in range(1, self.starts + 1)]

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"{self.name}-{self.starts}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from carewatch.cli import main; raise SystemExit(main(['run']))"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL the whole process group (``carewatch run`` and its children)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def children(self, broker_port: int) -> tuple[int | None, int | None]:
        """(ingest pid, dispatcher pid) of the running node, by their connections to ``broker_port``."""
        if self.process is None:
            return None, None
        counted = [(_connections_to(pid, broker_port), pid) for pid in process_children(self.process.pid)]
        counted.sort(reverse=True)
        ingest = counted[0][1] if counted and counted[0][0] > 0 else None
        dispatcher = next((pid for _, pid in counted if pid != ingest), None)
        return ingest, dispatcher

    def partitions(self) -> int | None:
        """How many partitions its detectors hold, from its ``/readyz`` (None if it does not answer)."""
        try:
            body = httpx.get(f"http://127.0.0.1:{self.api_port}/readyz", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        for check in body.get("checks", []):
            if check["name"] == "partitions":
                found = re.search(r"holds (\d+)/", check["detail"])
                return int(found.group(1)) if found else None
        return None


def _connections_to(pid: int, port: int) -> int:
    """How many TCP connections process ``pid`` has open to ``port`` on this host (from ``/proc``)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    count = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count
