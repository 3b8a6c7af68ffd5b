"""A cache of the device registry for the ingest hot path.

Device ids of a batch are resolved before decoding (``resolve``), inside the writer's retry loop, so a
database outage delays messages instead of turning them into ``unknown_device`` rejects. Known devices
are re-read after ``positive_ttl_s`` (a decommissioned device stops being accepted), unknown ones after
``negative_ttl_s`` (a device provisioned a moment ago is accepted soon).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import psycopg

from schemas.records import DeviceInfo
from storage.devices import get_devices


class RegistryCache:
    def __init__(self, *, positive_ttl_s: float = 60.0, negative_ttl_s: float = 2.0) -> None:
        self._positive_ttl_s = positive_ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._entries: dict[str, tuple[DeviceInfo | None, float]] = {}

    def resolve(self, conn: psycopg.Connection, device_ids: Iterable[str]) -> None:
        """Make sure every id is cached and fresh; one query for all the stale ones."""
        now = time.monotonic()
        stale = set()
        for device_id in device_ids:
            entry = self._entries.get(device_id)
            if entry is None:
                stale.add(device_id)
                continue
            info, fetched = entry
            ttl = self._positive_ttl_s if info is not None else self._negative_ttl_s
            if now - fetched > ttl:
                stale.add(device_id)
        if not stale:
            return
        found = get_devices(conn, stale)
        for device_id in stale:
            self._entries[device_id] = (found.get(device_id), now)

    def get(self, device_id: str) -> DeviceInfo | None:
        entry = self._entries.get(device_id)
        return entry[0] if entry else None
