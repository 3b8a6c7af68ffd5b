"""The caregiver app over MQTT: alerts pushed to ``{root}/app/{caregiver_id}/alerts``, replies read from
``{root}/app/{caregiver_id}/replies`` and answered on ``{root}/app/{caregiver_id}/acks``.

``AppChannel`` publishes a notification body at QoS 1 and counts it delivered when the broker's PUBACK
arrives (the broker then holds it for the app's persistent session). ``AppReplyListener`` subscribes to
every caregiver's replies (``+``), validates each with ``schemas.alerts.AppReply`` and applies it as a
claim or a decline in one transaction, exactly as the API does. The topic names the caregiver, so the
broker's ACLs must let each app publish only under its own id (``pattern write .../app/%u/replies``);
the listener also refuses a caregiver who is not on the alert's care plan. Bad replies are logged and
answered with ``ok: false``; they never stop the listener.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from alerting.channels import Delivery, DeliveryResult
from alerting.service import AlertError, AlertingConfig, claim_alert, decline_alert
from schemas.alerts import AppReply, ReplyAction
from schemas.mqtt_endpoint import MqttEndpoint
from storage import alerts as store

log = logging.getLogger(__name__)


def mqtt_address(mqtt_url: str) -> tuple[str, int]:
    endpoint = MqttEndpoint.parse(mqtt_url)
    return endpoint.host, endpoint.port


def mqtt_client(prefix: str, mqtt_url: str | None = None) -> mqtt.Client:
    """An MQTT 3.1.1 client with a unique id; with ``mqtt_url``, its login and TLS set from the URL."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311
    )
    if mqtt_url is not None:
        endpoint = MqttEndpoint.parse(mqtt_url)
        if endpoint.username is not None:
            client.username_pw_set(endpoint.username, endpoint.password)
        context = endpoint.ssl_context()
        if context is not None:
            client.tls_set_context(context)
    return client


class AppChannel:
    name = "app"

    def __init__(self, *, mqtt_url: str, topic_root: str, timeout_s: float = 5.0) -> None:
        self._root = topic_root.rstrip("/")
        self._timeout_s = timeout_s
        self._client = mqtt_client("carewatch-app-push", mqtt_url)
        host, port = mqtt_address(mqtt_url)
        self._client.connect_async(host, port)
        self._client.loop_start()

    def topic(self, caregiver_id: str) -> str:
        return f"{self._root}/app/{caregiver_id}/alerts"

    def send(self, delivery: Delivery) -> DeliveryResult:
        payload = json.dumps(delivery.body, separators=(",", ":"), sort_keys=True)
        try:
            info = self._client.publish(self.topic(delivery.caregiver_id), payload, qos=1)
            info.wait_for_publish(timeout=self._timeout_s)
        except (RuntimeError, ValueError, OSError) as exc:  # paho raises these when not connected
            return DeliveryResult(False, f"MQTT publish failed: {exc}"[:300])
        if not info.is_published():
            return DeliveryResult(False, "no PUBACK from the broker in time")
        return DeliveryResult(True, "published (PUBACK)")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class AppReplyListener:
    """Applies claim/decline replies from caregiver apps. Runs in paho's network thread."""

    def __init__(
        self,
        *,
        mqtt_url: str,
        topic_root: str,
        conninfo: str,
        config: AlertingConfig,
        clock: Callable[[], datetime],
        on_changed: Callable[[int], None] = lambda alert_id: None,
    ) -> None:
        self._root = topic_root.rstrip("/")
        self._conninfo = conninfo
        self._config = config
        self._clock = clock
        self._on_changed = on_changed
        self._conn: psycopg.Connection | None = None
        self.subscribed = threading.Event()
        self.handled = 0
        self._client = mqtt_client("carewatch-app-replies", mqtt_url)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._address = mqtt_address(mqtt_url)

    def start(self) -> AppReplyListener:
        self._client.connect_async(*self._address)
        self._client.loop_start()
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        if self._conn is not None:
            self._conn.close()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe(f"{self._root}/app/+/replies", qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        caregiver_id = message.topic[len(self._root) + 1 :].split("/")[1]
        try:
            reply = AppReply.model_validate_json(message.payload)
        except ValidationError as exc:
            # Neither the payload nor the error's text: a reply may carry a note the caregiver typed.
            log.warning(
                "caregiver %s: invalid app reply (%d bytes, %d error(s))",
                caregiver_id,
                len(message.payload),
                exc.error_count(),
            )
            self._ack(caregiver_id, None, None, ok=False, detail="invalid reply")
            return
        try:
            ok, detail = self._apply(caregiver_id, reply)
        except psycopg.Error as exc:
            # The reply is lost to this listener; the app sees no ack and can resend (claims are idempotent).
            log.error("caregiver %s: reply to alert %s failed on the database: %s", caregiver_id, reply.alert_id, exc)
            self._close()
            ok, detail = False, "database unavailable, try again"
        self.handled += 1
        self._ack(caregiver_id, reply.alert_id, reply.action, ok=ok, detail=detail)
        if ok:
            self._on_changed(reply.alert_id)

    def _apply(self, caregiver_id: str, reply: AppReply) -> tuple[bool, str]:
        conn = self._connection()
        now = self._clock()
        try:
            with conn.transaction():
                if not store.on_care_plan(conn, reply.alert_id, caregiver_id):
                    return False, "not on this alert's care plan"
                if reply.action is ReplyAction.CLAIM:
                    claim_alert(conn, reply.alert_id, caregiver_id, now, self._config)
                    detail = "claimed"
                else:
                    escalated = decline_alert(conn, reply.alert_id, caregiver_id, reply.note, now, self._config)
                    detail = "declined; escalated" if escalated else "declined"
        except AlertError as exc:
            return False, str(exc)
        log.info("alert %s: %s by caregiver %s over MQTT", reply.alert_id, detail, caregiver_id)
        return True, detail

    def _ack(
        self, caregiver_id: str, alert_id: int | None, action: ReplyAction | None, *, ok: bool, detail: str
    ) -> None:
        body = {"alert_id": alert_id, "action": action.value if action else None, "ok": ok, "detail": detail}
        self._client.publish(f"{self._root}/app/{caregiver_id}/acks", json.dumps(body), qos=1)

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
