"""Check-ins to the resident's call button: a QoS 1 ``checkin`` command on ``{root}/dev/{device_id}/cmd``.

The body is a :class:`schemas.device.DeviceCommand` (``ts``, ``cmd``, ``checkin_id``, ``expires``); the
button beeps and blinks until ``expires`` and a press answers with a ``checkin_ok`` event carrying the
id, which comes back through ingest and the detectors as any event does. Delivered means the broker's
PUBACK: the broker then holds the command for the button's persistent session if it is briefly offline
(a command past ``expires`` is ignored by the device). The broker's ACL lets a device read only its own
``cmd`` topic, and only carewatch's dispatcher write there (docs/operations.md, "Security").
"""

from __future__ import annotations

from datetime import datetime

from alerting.app import mqtt_address, mqtt_client
from alerting.channels import Delivery, DeliveryResult
from schemas.device import DeviceCommand
from schemas.kinds import DeliveryChannel


class ButtonChannel:
    name = DeliveryChannel.BUTTON.value

    def __init__(self, *, mqtt_url: str, topic_root: str, timeout_s: float = 5.0) -> None:
        self._root = topic_root.rstrip("/")
        self._timeout_s = timeout_s
        self._client = mqtt_client("carewatch-downlink", mqtt_url)
        host, port = mqtt_address(mqtt_url)
        self._client.connect_async(host, port)
        self._client.loop_start()

    def topic(self, device_id: str) -> str:
        return f"{self._root}/dev/{device_id}/cmd"

    def send(self, delivery: Delivery) -> DeliveryResult:
        body = delivery.body
        device_id = body.get("device_id")
        if not isinstance(device_id, str) or not device_id:
            return DeliveryResult(False, "check-in delivery names no call button", permanent=True)
        command = DeviceCommand(
            ts=datetime.fromisoformat(body["ts"]),
            cmd="checkin",
            checkin_id=body["checkin_id"],
            expires=datetime.fromisoformat(body["expires"]),
        )
        try:
            info = self._client.publish(self.topic(device_id), command.model_dump_json(), qos=1)
            info.wait_for_publish(timeout=self._timeout_s)
        except (RuntimeError, ValueError, OSError) as exc:  # paho raises these when not connected
            return DeliveryResult(False, f"MQTT publish failed: {exc}"[:300])
        if not info.is_published():
            return DeliveryResult(False, "no PUBACK from the broker in time")
        return DeliveryResult(True, "command published (PUBACK)")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
