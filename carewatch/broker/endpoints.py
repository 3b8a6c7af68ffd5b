"""Each carewatch service's broker URL, and the broker-access objects, from settings.

One ``CAREWATCH_MQTT_URL`` names the broker; each service connects to it with a login of its own
(``carewatch.ingest``, ``carewatch.dispatcher``, ``carewatch.simulator``; passwords from settings) and
the TLS files of ``mqtt_ca_file`` / ``mqtt_cert_file`` / ``mqtt_key_file``. The login and file paths
travel inside the URL (``schemas.mqtt_endpoint``), so child processes get them with the URL they
already receive. A URL that already carries a login keeps it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from carewatch.broker.dynsec import DynsecAdmin
from carewatch.broker.live import LiveBroker
from carewatch.broker.roles import Service, service_username
from carewatch.broker.sync import AccessConfig
from carewatch.settings import Settings
from schemas.mqtt_endpoint import MqttEndpoint

log = logging.getLogger(__name__)


def _password(settings: Settings, service: Service) -> str | None:
    return {
        Service.INGEST: settings.mqtt_ingest_password,
        Service.DISPATCHER: settings.mqtt_dispatcher_password,
        Service.SIMULATOR: settings.mqtt_simulator_password,
    }[service]


def _with_tls(settings: Settings, endpoint: MqttEndpoint) -> MqttEndpoint:
    return endpoint.with_tls_files(
        ca_file=settings.mqtt_ca_file, cert_file=settings.mqtt_cert_file, key_file=settings.mqtt_key_file
    )


def service_mqtt_url(settings: Settings, mqtt_url: str, service: Service) -> str:
    """``mqtt_url`` with the service's login (when its password is set) and the TLS files."""
    endpoint = _with_tls(settings, MqttEndpoint.parse(mqtt_url))
    password = _password(settings, service)
    if endpoint.username is None and password is not None:
        endpoint = endpoint.with_login(service_username(service), password)
    return endpoint.url()


def access_config(settings: Settings) -> AccessConfig:
    passwords = {service: password for service in Service if (password := _password(settings, service)) is not None}
    return AccessConfig(topic_root=settings.topic_root, service_passwords=passwords)


def admin_url(settings: Settings, mqtt_url: str) -> str | None:
    """The dynamic security admin's URL, or None when no admin password is configured."""
    if settings.broker_admin_password is None:
        return None
    endpoint = _with_tls(settings, MqttEndpoint.parse(settings.broker_admin_url or mqtt_url))
    return endpoint.with_login(settings.broker_admin_username, settings.broker_admin_password).url()


def live_broker(settings: Settings, mqtt_url: str) -> LiveBroker | None:
    """The registry's live link to the broker, or None when carewatch does not manage the broker."""
    url = admin_url(settings, mqtt_url)
    if url is None:
        log.info("broker access: not managed by carewatch (no broker_admin_password)")
        return None
    return LiveBroker(admin=DynsecAdmin(mqtt_url=url), config=access_config(settings), clock=lambda: datetime.now(UTC))
