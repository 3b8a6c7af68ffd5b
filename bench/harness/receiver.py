"""The caregivers' webhook endpoint in its own process, and provisioning of a benchmark's fleet.

A caregiver's endpoint is never inside carewatch's process, so it must not compete for carewatch's (or
the benchmark's) GIL. ``RemoteReceiver`` runs a ``carewatch.webhook_receiver.WebhookReceiver``
(signature checked, each idempotency key counted once, repeats counted apart) in a child process;
``delay_s`` makes it answer slowly after recording a delivery, so a dispatcher killed then dies
mid-delivery: the caregiver has the message, carewatch does not know it.
"""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.connection import Connection

import psycopg

from carewatch.webhook_receiver import WebhookReceiver


class SlowReceiver(WebhookReceiver):
    """Records a delivery (or a repeat), then waits ``delay_s`` before answering."""

    def __init__(self, *, secret: str, delay_s: float = 0.0) -> None:
        super().__init__(secret=secret)
        self.delay_s = delay_s

    def _accept(self, path: str, headers: dict[str, str], body: bytes) -> int:
        status = super()._accept(path, headers, body)
        if self.delay_s > 0:
            time.sleep(self.delay_s)
        return status


def _serve_receiver(secret: str, delay_s: float, pipe: Connection) -> None:
    """Child process: a receiver answering the parent's commands over ``pipe``."""
    receiver = SlowReceiver(secret=secret, delay_s=delay_s)
    receiver.start()
    pipe.send(receiver.url)
    while True:
        command, argument = pipe.recv()
        if command == "wait_for":
            pipe.send(receiver.wait_for(*argument))
        elif command == "results":
            pipe.send(([(d.body, d.received_unix) for d in receiver.deliveries], receiver.repeats))
        elif command == "keys":
            pipe.send(([(d.idempotency_key, d.body) for d in receiver.deliveries], receiver.repeats))
        elif command == "delay":
            receiver.delay_s = float(argument)
            pipe.send(True)
        else:
            receiver.stop()
            pipe.send(True)
            return


class RemoteReceiver:
    """The caregivers' webhook endpoint, in its own process."""

    def __init__(self, secret: str, delay_s: float = 0.0) -> None:
        self.secret = secret
        self._pipe, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_serve_receiver, args=(secret, delay_s, child), daemon=True)
        self._process.start()
        self.url: str = self._pipe.recv()

    def wait_for(self, count: int, timeout: float) -> bool:
        self._pipe.send(("wait_for", (count, timeout)))
        return bool(self._pipe.recv())

    def results(self) -> tuple[list[tuple[dict[str, object], float]], int]:
        """Distinct deliveries (body, arrival unix time) and how many repeats of a key arrived."""
        self._pipe.send(("results", None))
        deliveries, repeats = self._pipe.recv()
        return deliveries, repeats

    def keys(self) -> tuple[list[tuple[str, dict[str, object]]], int]:
        """Distinct deliveries (idempotency key, body) and how many repeats of a key arrived."""
        self._pipe.send(("keys", None))
        deliveries, repeats = self._pipe.recv()
        return deliveries, repeats

    def set_delay(self, delay_s: float) -> None:
        self._pipe.send(("delay", delay_s))
        self._pipe.recv()

    def stop(self) -> None:
        self._pipe.send(("stop", None))
        self._pipe.recv()
        self._process.join(timeout=10)


def provision(
    conn: psycopg.Connection, homes: int, meters: int, receiver: RemoteReceiver, *, smoke_alarms: bool = False
) -> None:
    """Households ``hh-i``, each with caregiver ``cg-i`` (the receiver's webhook) at tier 1 and call button
    ``b-i`` (and smoke alarm ``s-i``); meters ``m-j`` spread over the households."""
    with conn.cursor() as cur:
        with cur.copy("COPY households (household_id, name, district) FROM STDIN") as copy:
            for i in range(homes):
                copy.write_row((f"hh-{i}", f"home {i}", f"district-{i % 10}"))
        with cur.copy("COPY caregivers (caregiver_id, name, webhook_url, webhook_secret) FROM STDIN") as copy:
            for i in range(homes):
                copy.write_row((f"cg-{i}", f"caregiver {i}", f"{receiver.url}/{i}", receiver.secret))
        with cur.copy("COPY care_plan_contacts (household_id, caregiver_id, role, tier) FROM STDIN") as copy:
            for i in range(homes):
                copy.write_row((f"hh-{i}", f"cg-{i}", "volunteer", 1))
        with cur.copy("COPY devices (device_id, device_type, household_id, expected_interval_s) FROM STDIN") as copy:
            for i in range(homes):
                copy.write_row((f"b-{i}", "call_button", f"hh-{i}", 6 * 3600))
                if smoke_alarms:
                    copy.write_row((f"s-{i}", "smoke_alarm", f"hh-{i}", 6 * 3600))
            for i in range(meters):
                copy.write_row((f"m-{i}", "water_meter", f"hh-{i % homes}", 3600))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
