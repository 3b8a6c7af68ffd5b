"""Helpers of the ingest tests: provisioning, a numbered message stream, and worker processes.

Workers run as ``python -m ingest`` child processes so that a test can SIGKILL one mid-batch, exactly
as the kernel's OOM killer or a power cut would, and start it again with the same client id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]


def provision(database_url: str, household: str, devices: dict[str, str]) -> None:
    """One household with ``{device_id: device_type}``."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO households (household_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (household, household)
        )
        for device_id, device_type in devices.items():
            conn.execute(
                "INSERT INTO devices (device_id, device_type, household_id, expected_interval_s)"
                " VALUES (%s, %s, %s, 900) ON CONFLICT DO NOTHING",
                (device_id, device_type, household),
            )


def meter_stream(topic_root: str, devices: list[str], count: int, *, start: int = 0) -> list[tuple[str, bytes]]:
    """``count`` distinct meter readings, round-robin over ``devices``; message k has seq k // len(devices)."""
    now = datetime.now(UTC)
    messages = []
    for k in range(start, start + count):
        device_id = devices[k % len(devices)]
        seq = k // len(devices)
        ts = now - timedelta(milliseconds=count - (k - start))
        body = {"ts": ts.isoformat(), "seq": seq, "register_l": 100.0 + seq}
        messages.append((f"{topic_root}/dev/{device_id}/telemetry", json.dumps(body).encode()))
    return messages


def count_receipts(database_url: str, device_prefix: str) -> tuple[int, int]:
    """(receipts, distinct (device, seq)) of devices whose id starts with ``device_prefix``."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (device_id, seq)) FROM message_receipts WHERE device_id LIKE %s",
            (device_prefix + "%",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


class Worker:
    """A ``python -m ingest`` child process; ``ready`` is set once it has subscribed."""

    def __init__(
        self,
        *,
        mqtt_url: str,
        database_url: str,
        topic_root: str,
        client_id: str,
        share_group: str = "",
        metrics_port: int = 0,
    ) -> None:
        env = dict(os.environ)
        env.update(
            {
                "CAREWATCH_MQTT_URL": mqtt_url,
                "CAREWATCH_DATABASE_URL": database_url,
                "CAREWATCH_TOPIC_ROOT": topic_root,
                "CAREWATCH_MQTT_CLIENT_ID": client_id,
                "CAREWATCH_MQTT_SHARE_GROUP": share_group,
                "CAREWATCH_INGEST_FLUSH_MS": "20",
                "CAREWATCH_DEVICE_RATE_PER_S": "100000",
                "CAREWATCH_DEVICE_RATE_BURST": "100000",
                "CAREWATCH_LOG_LEVEL": "WARNING",
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ingest", "--metrics-port", str(metrics_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready = threading.Event()
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip() == "ingest: ready":
                self.ready.set()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def wait_ready(self, timeout: float = 30.0) -> None:
        if not self.ready.wait(timeout):
            raise AssertionError(f"ingest worker not ready within {timeout}s: {''.join(self.stderr)[-2000:]}")

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no clean-up, no final commit, no acknowledgements
        self.process.wait(timeout=10)
        self._close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._close()

    def _close(self) -> None:
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def worker(**kwargs: Any) -> Iterator[Worker]:
    running = Worker(**kwargs)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def unique_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
