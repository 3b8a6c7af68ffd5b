"""Test-suite configuration: the service fixtures live in plugin modules under ``tests/fixtures``.

Fixtures (see each module for how the service is chosen):

* ``mqtt_broker`` / ``mqtt_url`` (session) — a broker: ``CAREWATCH_TEST_MQTT_URL``, else a private
  Mosquitto with carewatch's configuration, else 127.0.0.1:1883, else amqtt in-process;
* ``topic_root`` (per test) — a unique topic root, ``test/<hex8>/care/v1``;
* ``pg_admin_url`` (session) — ``CAREWATCH_TEST_DATABASE_URL``, else the local PostgreSQL, else pgserver;
* ``template_database`` (session) — a database migrated once with ``storage.migrate``;
* ``database_url`` (module) — a fresh clone of the template for the test module.

``CAREWATCH_TEST_FORCE_EMBEDDED=1`` ignores the machine's services and uses amqtt and pgserver.
"""

pytest_plugins = [
    "tests.fixtures.fix_services",
    "tests.fixtures.fix_mqtt",
    "tests.fixtures.fix_db",
]
