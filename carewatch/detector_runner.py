"""The live shell around the pure detector engine: committed records in, alerts out.

The ingest hands every committed batch to ``submit``; a single runner thread feeds the records to the
engine, ticks it in processing time (silence and deadline detectors), writes the findings as alerts in
one transaction per round, and wakes the dispatcher. Snapshots of the engine are stored every
``snapshot_every_s`` and on stop together with a watermark (the newest receive time processed); on start
the runner restores them and replays the records received since the watermark (minus a margin; the
engine ignores what it has already seen), so a restart neither re-raises an open alert nor forgets one
that was about to fire. Device health (``last_seen_at``) is written here too: one writer, no contention.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import attrgetter

import psycopg

from alerting.service import AlertingConfig, apply_findings
from detectors import DetectorSuiteConfig, Engine, HouseholdSettings
from detectors.engine import DEV
from schemas.findings import Finding
from schemas.intake import Accepted
from schemas.records import MeterSample, Record
from storage import detector_state
from storage.devices import active_devices, get_devices, record_last_seen
from storage.registry import household_settings
from storage.replay import load_records_received_since

log = logging.getLogger(__name__)

WATERMARK_KEY = "__runner__"
# Readings per round: whole uploads (a device's run of readings), at most UPLOADS_PER_ROUND of them and
# about READINGS_PER_ROUND readings. An sos waits for at most one round of readings: 200 hourly uploads
# of four go through the per-reading path in ~10 ms, ~100 daily uploads of 96 through the fleet path
# (their days screened together, ~70 us per meter-day; one or two meters per call cost ~430 us) in
# ~10 ms, and 10,000 readings that all need the per-reading path (a program rule) in ~100 ms.
UPLOADS_PER_ROUND = 200
READINGS_PER_ROUND = 10_000
MAX_PENDING_READINGS = 200_000
REPLAY_MARGIN = timedelta(minutes=2)
_device_id = attrgetter("device_id")
_received_at = attrgetter("received_at")


def uploads(readings: Sequence[MeterSample]) -> list[list[MeterSample]]:
    """Readings cut into uploads (runs of one device's readings), none longer than a round."""
    out: list[list[MeterSample]] = []
    for _, run in groupby(readings, _device_id):
        upload = list(run)
        out.extend(upload[i : i + READINGS_PER_ROUND] for i in range(0, len(upload), READINGS_PER_ROUND))
    return out


def take_uploads(pending: deque[list[MeterSample]]) -> list[MeterSample]:
    """One round's readings from the front of ``pending``: whole uploads, at most ``UPLOADS_PER_ROUND``
    of them and no more than ``READINGS_PER_ROUND`` readings past the first upload."""
    taken: list[MeterSample] = []
    for _ in range(min(UPLOADS_PER_ROUND, len(pending))):
        if taken and len(taken) + len(pending[0]) > READINGS_PER_ROUND:
            break
        taken.extend(pending.popleft())
    return taken


def _latest_by_device(records: Sequence[Record]) -> dict[str, datetime]:
    """The newest receive time of each device's records (an upload is a run of one device's records)."""
    latest: dict[str, datetime] = {}
    for device_id, run in groupby(records, _device_id):
        newest = max(map(_received_at, run))
        known = latest.get(device_id)
        if known is None or newest > known:
            latest[device_id] = newest
    return latest


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DetectorRunner:
    def __init__(
        self,
        *,
        conninfo: str,
        config: DetectorSuiteConfig,
        alerting: AlertingConfig,
        on_alerts: Callable[[list[int]], None],
        tick_s: float = 5.0,
        snapshot_every_s: float = 30.0,
        refresh_every_s: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._conninfo = conninfo
        self._config = config
        self._alerting = alerting
        self._on_alerts = on_alerts
        self._tick_s = tick_s
        self._snapshot_every_s = snapshot_every_s
        self._refresh_every_s = refresh_every_s
        self._clock = clock
        # Urgent records (events, status) and meter readings wait apart: the runner takes every urgent
        # record first and readings in chunks, so an sos waits for at most one chunk of readings.
        self._pending = threading.Condition()
        self._urgent: deque[Record] = deque()
        self._bulk: deque[list[MeterSample]] = deque()  # runs of one device's readings, in arrival order
        self._bulk_readings = 0
        self._stopping = threading.Event()
        self._replay_requested = threading.Event()
        self._engine: Engine | None = None
        self._known: set[str] = set()
        self._last_seen: dict[str, datetime] = {}
        self._watermark: datetime | None = None
        self.findings_total = 0
        self.errors_total = 0

    def submit(self, committed: list[Accepted]) -> None:
        """Called by the ingest after commit; blocks (back-pressure) if detection falls far behind."""
        self.submit_records([record for item in committed for record in item.records])

    def submit_records(self, records: Sequence[Record]) -> None:
        """The records of committed messages (from an ingest in another process); as ``submit``."""
        urgent = [r for r in records if not isinstance(r, MeterSample)]
        bulk = [r for r in records if isinstance(r, MeterSample)]
        cut = uploads(bulk)  # outside the lock: _take hands out whole uploads
        with self._pending:
            if bulk:
                self._pending.wait_for(lambda: self._bulk_readings < MAX_PENDING_READINGS or self._stopping.is_set())
                self._bulk.extend(cut)
                self._bulk_readings += len(bulk)
            self._urgent.extend(urgent)
            self._pending.notify_all()

    @property
    def watermark(self) -> datetime | None:
        """The newest receive time processed (None before the first record)."""
        return self._watermark

    def replay_recent(self) -> None:
        """Read back records received since the watermark (minus a margin) at the next round: an ingest
        process died and may have committed records it never handed over."""
        self._replay_requested.set()
        with self._pending:
            self._pending.notify_all()

    def stop(self) -> None:
        self._stopping.set()
        with self._pending:
            self._pending.notify_all()

    def run(self) -> None:
        """Thread body."""
        conn = self._connect_with_retry()
        if conn is None:
            return
        with conn:
            self._restore(conn)
            last_tick = last_snapshot = last_refresh = time.monotonic()
            while not self._stopping.is_set():
                urgent, bulk = self._take(timeout=min(self._tick_s, 0.5))
                batch = urgent + bulk
                now_mono = time.monotonic()
                try:
                    if self._replay_requested.is_set():
                        self._replay_requested.clear()
                        self._replay_since_watermark(conn)
                    if urgent:
                        self._round(conn, urgent, tick=False)
                    if bulk:
                        self._round(conn, bulk, tick=False)
                    if now_mono - last_tick >= self._tick_s:
                        last_tick = now_mono
                        self._round(conn, [], tick=True)
                        self._flush_last_seen(conn)
                    if now_mono - last_refresh >= self._refresh_every_s:
                        last_refresh = now_mono
                        self._refresh_registry(conn)
                    if now_mono - last_snapshot >= self._snapshot_every_s:
                        last_snapshot = now_mono
                        self._snapshot(conn)
                except psycopg.OperationalError as exc:
                    # Findings of this round were not committed; the engine state moved on, so replay
                    # from the stored watermark by restoring: nothing is lost, nothing doubled.
                    log.warning("detector runner lost the database (%s); restoring", exc)
                    conn = self._reconnect(conn)
                    if conn is None:
                        return
                    self._restore(conn)
                except Exception:
                    # A detector bug must not stop detection for the whole fleet: log it loudly, count
                    # it (visible in metrics and readiness) and go on with the next round.
                    self.errors_total += 1
                    log.exception("detector round failed on %d record(s); continuing", len(batch))
            self._flush_last_seen(conn)
            self._snapshot(conn)

    def _take(self, timeout: float) -> tuple[list[Record], list[MeterSample]]:
        """Every pending urgent record, and the oldest readings (:func:`take_uploads`)."""
        with self._pending:
            self._pending.wait_for(lambda: bool(self._urgent or self._bulk) or self._stopping.is_set(), timeout)
            urgent = list(self._urgent)
            self._urgent.clear()
            bulk = take_uploads(self._bulk)
            self._bulk_readings -= len(bulk)
            self._pending.notify_all()
        return urgent, bulk

    def _round(self, conn: psycopg.Connection, records: Sequence[Record], *, tick: bool) -> None:
        # Emergencies first: an sos or smoke event must not wait behind thousands of meter readings,
        # so events and status reports are evaluated and committed before the readings of the round.
        urgent = [record for record in records if not isinstance(record, MeterSample)]
        bulk = [record for record in records if isinstance(record, MeterSample)] if urgent else records
        # Per device, not per record: a round holds up to ~10,000 readings.
        heard = _latest_by_device(records)
        self._learn_devices(conn, heard.keys())
        if urgent:
            self._evaluate(conn, urgent, tick=False)
        if bulk or tick:
            self._evaluate(conn, bulk, tick=tick)
        for device_id, received_at in heard.items():
            seen = self._last_seen.get(device_id)
            if seen is None or received_at > seen:
                self._last_seen[device_id] = received_at
        if heard:
            newest = max(heard.values())
            self._watermark = newest if self._watermark is None else max(self._watermark, newest)

    def _evaluate(self, conn: psycopg.Connection, records: Sequence[Record], *, tick: bool) -> None:
        engine = self._engine
        assert engine is not None  # noqa: S101 - set by _restore before any round
        now = self._clock()
        findings: list[Finding] = engine.process(records) if records else []
        if tick:
            findings.extend(engine.tick(now))
        if not findings:
            return
        with conn.transaction():
            changed = apply_findings(conn, findings, now, self._alerting)
        self.findings_total += len(findings)
        for finding in findings:
            # Ids and kinds only: evidence can quote a note the resident typed (a service request).
            log.info(
                "finding %s for household %s (%s, device %s)",
                finding.kind.value,
                finding.household_id,
                finding.detector,
                finding.device_id or "-",
            )
        if changed:
            self._on_alerts(changed)

    def _flush_last_seen(self, conn: psycopg.Connection) -> None:
        """Device health for the API, written in one statement every few seconds, not per round."""
        if not self._last_seen:
            return
        pending, self._last_seen = self._last_seen, {}
        with conn.transaction():
            record_last_seen(conn, pending.items())

    def _learn_devices(self, conn: psycopg.Connection, device_ids: Iterable[str]) -> None:
        unknown = set(device_ids) - self._known
        if not unknown:
            return
        engine = self._engine
        assert engine is not None  # noqa: S101
        for device in get_devices(conn, unknown).values():
            engine.upsert_device(device)
            self._known.add(device.device_id)

    def _refresh_registry(self, conn: psycopg.Connection) -> None:
        """Pick up devices and household settings (away periods, thresholds) changed through the API."""
        engine = self._engine
        assert engine is not None  # noqa: S101
        for household_id, timezone, settings in household_settings(conn):
            try:
                engine.set_household(household_id, HouseholdSettings.from_json(settings, timezone=timezone))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("household %s has invalid detector settings (%s); using defaults", household_id, exc)
        active = active_devices(conn)
        for device in active:
            if device.device_id not in self._known:
                engine.upsert_device(device)
                self._known.add(device.device_id)
        # Decommissioned (or erased: storage.erasure) devices: no more offline alerts, and their learned
        # state is not written back after the erasure deleted it.
        gone = sorted(self._known - {device.device_id for device in active})
        for device_id in gone:
            engine.remove_device(device_id)
            self._known.discard(device_id)
        if gone:
            with conn.transaction():
                detector_state.delete_snapshots(conn, [f"{DEV}:{device_id}" for device_id in gone])
            log.info("detectors forgot %d decommissioned device(s)", len(gone))

    def _restore(self, conn: psycopg.Connection) -> None:
        snapshots = detector_state.load_snapshots(conn)
        runner_state = snapshots.pop(WATERMARK_KEY, {})
        engine = Engine(self._config, snapshots)
        self._engine = engine
        self._known = set()
        self._refresh_registry(conn)
        raw_watermark = runner_state.get("watermark")
        self._watermark = datetime.fromisoformat(raw_watermark) if raw_watermark else None
        log.info("detectors restored %d snapshot(s)", len(snapshots))
        self._replay_since_watermark(conn)

    def _replay_since_watermark(self, conn: psycopg.Connection) -> None:
        if self._watermark is None:
            return
        replay = load_records_received_since(conn, self._watermark - REPLAY_MARGIN)
        log.info("detectors replaying %d record(s) received since %s", len(replay), self._watermark.isoformat())
        if replay:
            self._round(conn, replay, tick=False)

    def _snapshot(self, conn: psycopg.Connection) -> None:
        engine = self._engine
        if engine is None:
            return
        snapshots = dict(engine.snapshots())
        if self._watermark is not None:
            snapshots[WATERMARK_KEY] = {"watermark": self._watermark.isoformat()}
        with conn.transaction():
            detector_state.save_snapshots(conn, snapshots, self._clock())

    def _connect_with_retry(self) -> psycopg.Connection | None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:
                log.warning("detector runner cannot reach the database (%s); retrying in %.1fs", exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)
        return None

    def _reconnect(self, conn: psycopg.Connection) -> psycopg.Connection | None:
        try:
            conn.close()
        finally:
            fresh = self._connect_with_retry()
        return fresh
