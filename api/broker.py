"""The seam between the registry's API and the MQTT broker's access control.

Routes that change an MQTT login (provisioning, rotation, decommissioning a device; a caregiver app's
login) commit the registry first, then call ``BrokerAccess.apply`` with the usernames they changed and
any new plaintext password (which exists only in that request). The implementation pushes the change
to the broker at once and must not raise: when the broker misses it, it records that and retries, and
says so in its answer (``schemas.kinds.BrokerApplied``). The composition root passes the real one
(``carewatch.broker.live.LiveBroker``); without it, ``NoBroker`` answers ``unmanaged``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import psycopg

from schemas.kinds import BrokerApplied


class BrokerAccess(Protocol):
    def apply(
        self, conn: psycopg.Connection, usernames: Sequence[str], passwords: Mapping[str, str]
    ) -> BrokerApplied: ...


class NoBroker:
    """carewatch does not drive the broker (the embedded demo broker; EMQX reads the registry itself)."""

    def apply(self, conn: psycopg.Connection, usernames: Sequence[str], passwords: Mapping[str, str]) -> BrokerApplied:
        return BrokerApplied.UNMANAGED
