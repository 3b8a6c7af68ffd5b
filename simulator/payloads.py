"""Protocol v1 payload encoders for the simulator's hot path, and ``SimMessage``.

``schemas.device`` is the one definition of every payload; these functions write the same JSON by hand
because building a pydantic model per message would cost more than everything else the generator does
(tests validate every kind against the models, see ``tests/simulator/test_payloads.py``).

Encoding choices, picked to exercise both timestamp forms the protocol allows:
- water meters (compact NB-IoT firmware) send ``ts`` as integer epoch milliseconds;
- smoke alarms and call buttons send RFC 3339 local time with the ``+08:00`` offset.
Keys are always in the order ``ts, seq, ...`` and there is no whitespace, so output is byte-stable.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from schemas.device import SEQ_MODULUS
from simulator.timefmt import from_ms, rfc3339_local


def _ts(ts_ms: int, epoch: bool) -> str:
    return str(ts_ms) if epoch else f'"{rfc3339_local(ts_ms)}"'


def _litres(value: float) -> str:
    # One decimal (0.1 L resolution, like a typical meter's last dial), via integers: float rounding
    # and formatting were the generator's single largest cost.
    tenths = int(value * 10 + 0.5)
    return f"{tenths // 10}.{tenths % 10}"


def meter_reading(ts_ms: int, seq: int, register_l: float) -> bytes:
    return f'{{"ts":{ts_ms},"seq":{seq % SEQ_MODULUS},"register_l":{_litres(register_l)}}}'.encode()


def meter_batch(ts_ms: int, seq: int, readings: Sequence[tuple[int, float]]) -> bytes:
    body = ",".join(f'{{"ts":{t},"register_l":{_litres(r)}}}' for t, r in readings)
    return f'{{"ts":{ts_ms},"seq":{seq % SEQ_MODULUS},"readings":[{body}]}}'.encode()


def status_tail(*, battery_pct: int, rssi_dbm: int, fw: str) -> str:
    """The constant part of a device's heartbeat, precomputed by the engine (it changes rarely)."""
    return f',"online":true,"battery_pct":{battery_pct},"rssi_dbm":{rssi_dbm},"fw":{json.dumps(fw)}}}'


def heartbeat(ts_ms: int, seq: int, *, epoch: bool, tail: str) -> bytes:
    """``status`` with ``online: true``: ``ts`` and ``seq`` followed by ``status_tail(...)``."""
    return f'{{"ts":{_ts(ts_ms, epoch)},"seq":{seq % SEQ_MODULUS}{tail}'.encode()


def status(
    ts_ms: int,
    seq: int,
    *,
    online: bool,
    epoch: bool,
    battery_pct: int | None = None,
    rssi_dbm: int | None = None,
    fw: str | None = None,
) -> bytes:
    parts = [f'"ts":{_ts(ts_ms, epoch)}', f'"seq":{seq % SEQ_MODULUS}', f'"online":{"true" if online else "false"}']
    if battery_pct is not None:
        parts.append(f'"battery_pct":{battery_pct}')
    if rssi_dbm is not None:
        parts.append(f'"rssi_dbm":{rssi_dbm}')
    if fw is not None:
        parts.append(f'"fw":{json.dumps(fw)}')
    return ("{" + ",".join(parts) + "}").encode()


def event(ts_ms: int, seq: int, kind: str, note: str | None = None) -> bytes:
    """A smoke alarm or call button ``event`` (RFC 3339 time); ``note`` only for call buttons."""
    text = f'{{"ts":{_ts(ts_ms, False)},"seq":{seq % SEQ_MODULUS},"event":"{kind}"'
    if note is not None:
        text += f',"note":{json.dumps(note, ensure_ascii=False)}'
    return (text + "}").encode()


class SimMessage(NamedTuple):
    """One message as a device publishes it.

    ``at_ms`` is the simulated instant of publishing (epoch ms; ``device_time`` as a datetime), which
    is what pacing uses. It differs from the payload's ``ts`` for late batches, delayed or skewed
    messages. ``retain`` is set for ``status`` as the protocol requires. ``kind`` names what the
    message is (``meter_reading``, ``meter_batch``, ``status``, ``will``, ``smoke_alarm``,
    ``call_sos``, ``fault_malformed``, ...) for summaries and tests; it is not sent.

    A named tuple rather than a frozen dataclass: millions are made, and tuple construction is the
    cheapest immutable value Python has.
    """

    topic: str
    payload: bytes
    at_ms: int
    kind: str
    retain: bool = False

    @property
    def device_time(self) -> datetime:
        return from_ms(self.at_ms)

    @property
    def device_id(self) -> str:
        parts = self.topic.split("/")
        return parts[-2] if len(parts) >= 3 else ""

    def to_json_line(self) -> str:
        """``{"topic": ..., "payload": ...}``: the payload as text when it is UTF-8 JSON text.

        Payloads that are not valid UTF-8 (a deliberate fault) are written as ``payload_b64``.
        """
        try:
            text = self.payload.decode()
        except UnicodeDecodeError:
            return json.dumps({"topic": self.topic, "payload_b64": base64.b64encode(self.payload).decode()})
        return json.dumps({"topic": self.topic, "payload": text}, ensure_ascii=False)
