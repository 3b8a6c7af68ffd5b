"""Who may do what on the broker: one role per device, per caregiver app and per carewatch service.

Topics (``root`` is ``Settings.topic_root``, ``care/v1`` by default; docs/protocol.md):

- device ``{id}`` (role ``dev.{id}``): publishes ``{root}/dev/{id}/telemetry``, ``event``, ``status``;
  subscribes to and receives ``{root}/dev/{id}/cmd`` only;
- caregiver app ``app.{cg}`` (role ``app.{cg}``): publishes ``{root}/app/{cg}/replies``; subscribes to
  and receives ``{root}/app/{cg}/alerts`` and ``{root}/app/{cg}/acks``;
- ``carewatch.ingest``: publishes nothing; reads ``{root}/dev/#``, also as ``$share/{group}/...``;
- ``carewatch.dispatcher``: publishes ``{root}/dev/+/cmd``, ``{root}/app/+/alerts`` and
  ``{root}/app/+/acks``; reads ``{root}/app/+/replies``;
- ``carewatch.simulator`` (staging): publishes ``{root}/dev/+/telemetry``, ``event``, ``status`` as any
  device; reads ``{root}/dev/+/cmd``.

Mosquitto 2.0's dynamic security has no ``%u`` substitution in ACL topics (eclipse-mosquitto/mosquitto
#2222; added in 2.1, #3191), so each device and app gets a role of its own with literal topics. Device
ids cannot contain ``.`` (``schemas.api.Identifier``), so the ``carewatch.*`` and ``app.*`` usernames
never collide with a device's.
"""

from __future__ import annotations

from enum import StrEnum

from carewatch.broker.model import Acl, AclType, Role
from storage.broker_access import app_username

DEVICE_CHANNELS = ("telemetry", "event", "status")
DOWNLINK = "cmd"


class Service(StrEnum):
    INGEST = "ingest"
    DISPATCHER = "dispatcher"
    SIMULATOR = "simulator"


def service_username(service: Service) -> str:
    return f"carewatch.{service.value}"


def device_role_name(device_id: str) -> str:
    return f"dev.{device_id}"


def _reads(*topics: str, literal: bool = False) -> list[Acl]:
    kind = AclType.SUBSCRIBE_LITERAL if literal else AclType.SUBSCRIBE_PATTERN
    return [acl for topic in topics for acl in (Acl(kind, topic), Acl(AclType.RECEIVE, topic))]


def _writes(*topics: str) -> list[Acl]:
    return [Acl(AclType.SEND, topic) for topic in topics]


def device_role(root: str, device_id: str) -> Role:
    base = f"{root}/dev/{device_id}"
    acls = _writes(*(f"{base}/{channel}" for channel in DEVICE_CHANNELS)) + _reads(f"{base}/{DOWNLINK}", literal=True)
    return Role(device_role_name(device_id), frozenset(acls))


def app_role(root: str, caregiver_id: str) -> Role:
    base = f"{root}/app/{caregiver_id}"
    acls = _writes(f"{base}/replies") + _reads(f"{base}/alerts", f"{base}/acks", literal=True)
    return Role(app_username(caregiver_id), frozenset(acls))


def service_role(root: str, service: Service) -> Role:
    if service is Service.INGEST:
        # Any share group: the ingest's group is a setting (mqtt_share_group).
        acls = [*_reads(f"{root}/dev/#"), Acl(AclType.SUBSCRIBE_PATTERN, f"$share/+/{root}/dev/#")]
    elif service is Service.DISPATCHER:
        acls = _writes(f"{root}/dev/+/{DOWNLINK}", f"{root}/app/+/alerts", f"{root}/app/+/acks") + _reads(
            f"{root}/app/+/replies"
        )
    else:
        acls = _writes(*(f"{root}/dev/+/{channel}" for channel in DEVICE_CHANNELS)) + _reads(f"{root}/dev/+/{DOWNLINK}")
    return Role(service_username(service), frozenset(acls))
