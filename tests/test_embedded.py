"""Embedded services and the service fixtures, exercised for real.

* QoS 1 round trips through the session broker (``mqtt_url``), and a backlog larger than Mosquitto's
  default queue limit queued for an offline persistent session — none of it may be lost;
* the amqtt fallback broker and the pgserver fallback database each start, work and stop;
* carewatch's broker configuration renders, and the production copy in ``deploy/`` keeps the same
  message-handling settings;
* ``database_url`` gives each module a fresh, migrated database isolated from the others.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

import storage
from carewatch import embedded
from tests.fixtures.fix_db import cloned_database
from tests.fixtures.fix_mqtt import MqttBroker, split_mqtt_url

REPO = Path(__file__).resolve().parent.parent


class Collector:
    """Messages received by a paho client, with a wait for a count."""

    def __init__(self) -> None:
        self.payloads: list[bytes] = []
        self._cond = threading.Condition()

    def on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.payloads.append(bytes(message.payload))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 20.0) -> list[bytes]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.payloads) >= count, timeout=timeout)
            return list(self.payloads)


def _client(url: str, client_id: str, *, clean: bool = True) -> mqtt.Client:
    """A connected, looping MQTT 3.1.1 client (3.1.1 so the same code runs against amqtt)."""
    host, port = split_mqtt_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
    connected = threading.Event()
    client.on_connect = lambda *_args: connected.set()
    client.connect(host, port, keepalive=30)
    client.loop_start()
    assert connected.wait(10), f"no CONNACK from {url}"
    return client


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _subscribe(client: mqtt.Client, topic: str) -> None:
    done = threading.Event()
    client.on_subscribe = lambda *_args: done.set()
    client.subscribe(topic, qos=1)
    assert done.wait(10), f"no SUBACK for {topic}"


def _publish_all(url: str, topic: str, payloads: list[bytes]) -> None:
    publisher = _client(url, f"pub-{uuid.uuid4().hex[:8]}")
    try:
        infos = [publisher.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(timeout=20)
            assert info.is_published()
    finally:
        _close(publisher)


def _qos1_round_trip(url: str, topic_root: str, count: int = 200) -> None:
    collector = Collector()
    subscriber = _client(url, f"sub-{uuid.uuid4().hex[:8]}")
    subscriber.on_message = collector.on_message
    try:
        _subscribe(subscriber, f"{topic_root}/dev/+/telemetry")
        sent = [f'{{"seq": {i}}}'.encode() for i in range(count)]
        _publish_all(url, f"{topic_root}/dev/meter-1/telemetry", sent)
        received = collector.wait_for(count)
    finally:
        _close(subscriber)
    assert sorted(received) == sorted(sent)


# --- the session broker ----------------------------------------------------------------------------


def test_qos1_round_trip_through_session_broker(mqtt_url: str, topic_root: str) -> None:
    _qos1_round_trip(mqtt_url, topic_root)


@pytest.fixture
def carewatch_broker(mqtt_broker: MqttBroker, tmp_path: Path) -> Iterator[str]:
    """A broker running carewatch's configuration: the session's if it does, else a private one."""
    if mqtt_broker.carewatch_config:
        yield mqtt_broker.url
        return
    with embedded.start_broker(tmp_path) as service:
        yield service.url


def test_offline_persistent_session_keeps_more_than_mosquittos_default_queue(
    carewatch_broker: str, topic_root: str
) -> None:
    """Mosquitto's default max_queued_messages (1000) drops the rest silently; carewatch's config must not."""
    count = 2500
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    topic = f"{topic_root}/dev/meter-2/telemetry"
    first = _client(carewatch_broker, client_id, clean=False)
    _subscribe(first, topic)
    _close(first)

    sent = [f'{{"seq": {i}}}'.encode() for i in range(count)]
    _publish_all(carewatch_broker, topic, sent)

    collector = Collector()
    host, port = split_mqtt_url(carewatch_broker)
    resumed = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False, protocol=mqtt.MQTTv311)
    resumed.on_message = collector.on_message
    resumed.connect(host, port, keepalive=30)
    resumed.loop_start()
    try:
        received = collector.wait_for(count, timeout=30)
    finally:
        _close(resumed)
        cleanup = _client(carewatch_broker, client_id, clean=True)  # discard the persistent session
        _close(cleanup)
    assert len(received) == count, f"lost {count - len(set(received))} of {count} queued QoS 1 messages"
    assert set(received) == set(sent)


# --- embedded fallbacks ----------------------------------------------------------------------------


def test_embedded_amqtt_broker_starts_works_and_stops(tmp_path: Path, topic_root: str) -> None:
    service = embedded.start_amqtt(tmp_path)
    with service:
        assert service.kind == "amqtt"
        assert service.url.startswith("mqtt://127.0.0.1:")
        _qos1_round_trip(service.url, topic_root, count=50)
    assert not service.running
    assert not embedded.port_answers(*split_mqtt_url(service.url))
    service.stop()  # idempotent


def test_start_broker_falls_back_to_amqtt_without_mosquitto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded, "find_mosquitto", lambda: None)
    with embedded.start_broker(tmp_path) as service:
        assert service.kind == "amqtt"


@pytest.mark.skipif(embedded.find_mosquitto() is None, reason="no mosquitto binary on this machine")
def test_embedded_mosquitto_runs_carewatch_config(tmp_path: Path, topic_root: str) -> None:
    service = embedded.start_broker(tmp_path)
    with service:
        assert service.kind == "mosquitto"
        conf = (service.workdir / "mosquitto.conf").read_text(encoding="utf-8")
        assert "max_queued_messages 0" in conf
        assert f"listener {split_mqtt_url(service.url)[1]} 127.0.0.1" in conf
        _qos1_round_trip(service.url, topic_root, count=50)
    assert not embedded.port_answers(*split_mqtt_url(service.url))
    assert (service.workdir / "mosquitto.db").exists(), "persistence is on: the database is saved on stop"


@pytest.mark.slow
def test_embedded_pgserver_starts_migrates_and_stops(tmp_path: Path) -> None:
    service = embedded.start_postgres(tmp_path, cleanup="delete")
    with service:
        assert service.kind == "pgserver"
        with psycopg.connect(service.url) as conn:
            row = conn.execute("SELECT current_user, 6 * 7").fetchone()
        assert row == ("postgres", 42)
        assert storage.migrate(service.url) == storage.StorageMode.POSTGRESQL
        with psycopg.connect(service.url) as conn:
            versions = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
        assert versions is not None
        assert versions[0] >= 1
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(service.url, connect_timeout=2)


# --- broker configuration --------------------------------------------------------------------------

_MESSAGE_HANDLING = (
    "persistence",
    "autosave_interval",
    "autosave_on_changes",
    "max_queued_messages",
    "max_queued_bytes",
    "queue_qos0_messages",
    "max_inflight_messages",
    "max_inflight_bytes",
    "persistent_client_expiration",
    "max_packet_size",
    "retain_available",
    "set_tcp_nodelay",
)


def _settings(text: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition(" ")
            settings.setdefault(key, value.strip())
    return settings


def test_broker_config_renders_without_markers(tmp_path: Path) -> None:
    text = embedded.render_mosquitto_conf(
        port=18830, persistence_dir=tmp_path, log_file=tmp_path / "m.log", user="root"
    )
    settings = _settings(text)
    assert settings["listener"] == "18830 127.0.0.1"
    assert settings["persistence_location"] == f"{tmp_path}/"
    assert settings["user"] == "root"
    assert settings["max_queued_messages"] == "0"
    assert settings["allow_anonymous"] == "true"


def test_production_broker_config_keeps_the_tested_message_handling(tmp_path: Path) -> None:
    tested = _settings(embedded.render_mosquitto_conf(port=1, persistence_dir=tmp_path, log_file=tmp_path))
    production = _settings((REPO / "deploy" / "mosquitto" / "carewatch.conf").read_text(encoding="utf-8"))
    for key in _MESSAGE_HANDLING:
        assert production.get(key) == tested.get(key), key
    assert production["allow_anonymous"] == "false"


# --- database fixture ------------------------------------------------------------------------------


def test_database_url_is_a_fresh_migrated_database(database_url: str, template_database: str) -> None:
    with psycopg.connect(database_url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
        versions = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert name is not None
    assert name[0].startswith("cw_")
    assert name[0] != template_database
    assert versions is not None
    assert versions[0] >= 1


def test_databases_are_isolated(database_url: str, pg_admin_url: str, template_database: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE only_in_this_module (x int)")
    with cloned_database(pg_admin_url, template_database) as other_url, psycopg.connect(other_url) as other:
        found = other.execute("SELECT to_regclass('only_in_this_module')").fetchone()
        migrated = other.execute("SELECT to_regclass('schema_migrations')").fetchone()
    assert found == (None,)
    assert migrated is not None
    assert migrated[0] is not None


def test_cloned_database_is_dropped_afterwards(pg_admin_url: str, template_database: str) -> None:
    with cloned_database(pg_admin_url, template_database) as url, psycopg.connect(url) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
    assert name is not None
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        left = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name[0],)).fetchone()
    assert left is None


def test_service_tests_are_marked(request: pytest.FixtureRequest, mqtt_url: str) -> None:
    assert request.node.get_closest_marker("services") is not None
    assert mqtt_url.startswith("mqtt://")
