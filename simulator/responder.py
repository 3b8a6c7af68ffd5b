"""The simulated call buttons' side of check-ins: they hear ``checkin`` commands and residents press.

A responder subscribes (QoS 1) to ``{root}/dev/+/cmd`` for the call buttons of a simulated fleet, and for
each command decides with :class:`simulator.answers.ResidentAnswers` whether and when the resident
presses; a press publishes the ``checkin_ok`` event with the command's ``checkin_id`` on the button's
``event`` topic, as a real button would. Commands past their ``expires`` are ignored, as the protocol
says. On a real fleet each button does this itself; one subscriber stands in for many in tests and
the demo (with the broker's ACL a real button reads only its own ``cmd`` topic).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from schemas.device import DeviceCommand
from simulator.answers import ResidentAnswers
from simulator.publisher import MqttTarget

log = logging.getLogger(__name__)


class CheckinResponder:
    def __init__(
        self,
        *,
        target: MqttTarget,
        topic_root: str,
        households: Mapping[str, str],
        answers: ResidentAnswers,
    ) -> None:
        """``households``: call button id → household id (the buttons this responder speaks for)."""
        self._root = topic_root.rstrip("/")
        self._households = dict(households)
        self.answers = answers
        self._client = target.client(f"sim-responder-{uuid.uuid4().hex[:8]}")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._target = target
        self._attempts: dict[str, int] = {}
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        self.commands: list[DeviceCommand] = []
        self.pressed: list[tuple[str, str]] = []  # (device, checkin_id)

    def start(self) -> CheckinResponder:
        self._client.connect(self._target.host, self._target.port)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        with self._lock:
            for timer in self._timers:
                timer.cancel()
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        client.subscribe(f"{self._root}/dev/+/cmd", qos=1)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        device_id = message.topic.split("/")[-2]
        household_id = self._households.get(device_id)
        if household_id is None:
            return
        try:
            command = DeviceCommand.model_validate(json.loads(message.payload))
        except (ValueError, ValidationError):
            log.warning("call button %s: unreadable command ignored", device_id)
            return
        if command.expires <= datetime.now(UTC):
            return  # held by the broker past its end: the protocol says ignore it
        with self._lock:
            self.commands.append(command)
            attempt = self._attempts.get(command.checkin_id, 0) + 1
            self._attempts[command.checkin_id] = attempt
        delay = self.answers.decide(household_id, command.checkin_id, attempt)
        if delay is None:
            return
        delay = min(delay, max((command.expires - datetime.now(UTC)).total_seconds() - 1.0, 0.0))
        timer = threading.Timer(delay, self._press, (device_id, command.checkin_id))
        timer.daemon = True
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def _press(self, device_id: str, checkin_id: str) -> None:
        now = datetime.now(UTC)
        body = {
            "ts": now.isoformat(timespec="milliseconds"),
            "seq": int(time.time() * 1000) % 2**32,
            "event": "checkin_ok",
            "checkin_id": checkin_id,
        }
        self._client.publish(f"{self._root}/dev/{device_id}/event", json.dumps(body), qos=1)
        with self._lock:
            self.pressed.append((device_id, checkin_id))
