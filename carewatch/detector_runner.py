"""The live shell around the pure detector engines: committed records in, alerts out, per partition.

Records come from the database, not from the ingest: the commit-ordered feed (storage.feed) gives this
node the rows of the partitions it holds, whichever node's ingest (or standalone ``python -m ingest``
worker) committed them. Two cursors: ``events`` is read at once when an event's NOTIFY arrives (or the
local ingest says it committed: a hint only, :meth:`wake`), ``telemetry`` every ``feed_poll_s`` once the
readings of its previous read are done. A single runner thread takes every urgent record (events,
status) first and readings in rounds of whole uploads, feeds them to the engine of their partition,
ticks the engines in processing time, and writes findings as alerts in one transaction per round, under
the fence of the partitions' leases (a node that lost a lease writes nothing for it), then wakes the
dispatcher.

Partitions (carewatch.partitions): the lease keeper thread says which this node holds. A partition new
to this node is restored from its snapshots and replays its rows from the position stored with them up
to the node's feed position (carewatch.partition_state); one that is gone is dropped; one offered for
hand-over is snapshotted and released. Snapshots are stored every ``snapshot_every_s`` and on stop. A
finding that pages (``notify_again``) is written only once per key (storage.detector_state
``first_time_findings``): the records a dead node processed after its last snapshot are replayed by the
next owner without paging twice. Device health (``last_seen_at``) is written by each partition's owner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import groupby
from operator import attrgetter
from typing import Any

import psycopg

from alerting.service import AlertingConfig, apply_findings
from carewatch import partition_state
from carewatch.partition_state import Partition
from carewatch.partitions import LeaseKeeper, partition_of
from detectors import DetectorSuiteConfig, HouseholdSettings
from detectors.engine import DEV
from schemas.findings import Finding
from schemas.intake import Accepted
from schemas.records import MeterSample, Record, StatusReport
from storage import detector_state, feed, leases
from storage.alerts import closed_since
from storage.devices import active_devices, get_devices, record_last_seen, record_status
from storage.feed import EVENTS, TELEMETRY, FeedPosition
from storage.registry import household_settings

log = logging.getLogger(__name__)

# Readings per round: whole uploads (a device's run of readings), at most UPLOADS_PER_ROUND of them and
# about READINGS_PER_ROUND readings. An sos waits for at most one round of readings: 200 hourly uploads
# of four go through the per-reading path in ~10 ms, ~100 daily uploads of 96 through the fleet path
# (their days screened together, ~70 us per meter-day; one or two meters per call cost ~430 us) in
# ~10 ms, and 10,000 readings that all need the per-reading path (a program rule) in ~100 ms.
UPLOADS_PER_ROUND = 200
READINGS_PER_ROUND = 10_000
MAX_PENDING_READINGS = 200_000
# Feed cursors: events (woken by their NOTIFY, read at once) and telemetry (polled when the readings of
# the previous read are done). Each has its own position; an sos never waits behind a telemetry read.
CURSORS: dict[str, tuple[str, ...]] = {"events": EVENTS, "telemetry": TELEMETRY}
# After a reconnect the node rereads this many transaction ids: a failover can hand out again ids the
# old primary had used for transactions it never replicated (storage.feed). Rereading is harmless.
REWIND_XIDS = 1_000
FINDINGS_KEPT = timedelta(days=2)
# Resolved alerts are read back from a little before the last look: a resolution committed late (its
# resolved_at older than one seen) is not missed; applying one twice changes nothing.
CLOSURE_MARGIN = timedelta(minutes=2)
# A runner that has never read closures (a new install, or state from before closures existed) reads
# this far back from its watermark once: latches of alerts resolved before then are old enough to
# have ended by water use or by the next alert.
FIRST_CLOSURE_LOOKBACK = timedelta(days=30)
CLOSURES_PER_READ = 5_000
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


def household_view_settings(settings: dict[str, Any], timezone: str, alerting: AlertingConfig) -> HouseholdSettings:
    """The detectors' settings of a household: its JSON, and the lead its check-in policy needs (the
    backstop and the silence rule raise that much earlier, so an unanswered check-in still pages in time)."""
    lead = alerting.checkins.lead(settings.get("checkin") or {})
    return replace(HouseholdSettings.from_json(settings, timezone=timezone), checkin_lead_s=lead.total_seconds())


def _utcnow() -> datetime:
    return datetime.now(UTC)


def default_node_id() -> str:
    """``host-pid``: unique among the nodes running now (a tenure is a token, never the name alone)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def finding_key(finding: Finding) -> str:
    """What makes a paging finding the same one again: the device event it came from, in effect."""
    return "|".join(
        (finding.detector, finding.kind.value, finding.action.value, finding.household_id,
         finding.device_id or "", finding.at.isoformat())
    )  # fmt: skip


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
        leases: LeaseKeeper | None = None,
        feed_poll_s: float = 0.1,
    ) -> None:
        self._conninfo = conninfo
        self._config = config
        self._alerting = alerting
        self._on_alerts = on_alerts
        self._tick_s = tick_s
        self._snapshot_every_s = snapshot_every_s
        self._refresh_every_s = refresh_every_s
        self._feed_poll_s = feed_poll_s
        self._clock = clock
        self.leases = leases or LeaseKeeper(conninfo=conninfo, node_id=default_node_id())
        # Urgent records (events, status) and meter readings wait apart: the runner takes every urgent
        # record first and readings in chunks, so an sos waits for at most one chunk of readings.
        self._pending = threading.Condition()
        self._urgent: deque[Record] = deque()
        self._bulk: deque[list[MeterSample]] = deque()  # runs of one device's readings, in arrival order
        self._bulk_readings = 0
        self._woken = False  # an event committed (NOTIFY) or the local ingest committed: read the feed
        self._stopping = threading.Event()
        self._parts: dict[int, Partition] = {}
        # Partitions whose findings are being committed or whose load is replaying: if the database
        # goes meanwhile, these (and only these) reload from their snapshots (see _loop).
        self._writing: set[int] = set()
        self._loading: set[int] = set()
        self._known: set[str] = set()
        self._last_seen: dict[str, datetime] = {}
        self._status: list[StatusReport] = []  # status reports since the last flush (device health)
        self._watermark: datetime | None = None
        # The node's feed positions: what has been read (queued), and what every owned engine has done.
        self._read: dict[str, FeedPosition] = {}
        self._done: dict[str, FeedPosition] = {}
        self._first: dict[str, FeedPosition] = {}  # where this node started: for a partition never stored
        self._closures_from: datetime | None = None
        self._telemetry_read_at = 0.0
        self.caught_up_at: float | None = None  # monotonic time the feed last had nothing left to read
        self.findings_total = 0
        self.errors_total = 0
        self.fenced_total = 0
        self.loaded_total = 0

    # -- what other threads call -------------------------------------------------------------------

    def wake(self) -> None:
        """Something committed (an event's NOTIFY, the local ingest): read the feed now."""
        with self._pending:
            self._woken = True
            self._pending.notify_all()

    def submit(self, committed: list[Accepted]) -> None:
        """The local ingest committed these messages: a hint to read the feed (which has them) now."""
        self.wake()

    def replay_recent(self) -> None:
        """An ingest process died: nothing to do but read the feed, which has all it committed."""
        self.wake()

    @property
    def watermark(self) -> datetime | None:
        """The newest receive time processed (None before the first record)."""
        return self._watermark

    @property
    def partitions(self) -> list[int]:
        """The partitions this node's engines hold now (loaded and caught up with the feed)."""
        return sorted(self._parts)

    @property
    def feed_lag_s(self) -> float | None:
        """Seconds since the feed last had nothing left to read (None before the first read)."""
        return None if self.caught_up_at is None else max(0.0, time.monotonic() - self.caught_up_at)

    def stop(self) -> None:
        self._stopping.set()
        with self._pending:
            self._pending.notify_all()

    def submit_records(self, records: Sequence[Record]) -> None:
        """Queue records read from the feed (urgent ones apart from readings); blocks while detection is
        far behind (only the runner thread reads the feed, so this never waits in practice)."""
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

    # -- the thread --------------------------------------------------------------------------------

    def run(self) -> None:
        """Thread body: the lease keeper and the NOTIFY listener run beside it until it stops."""
        conn = self._connect_with_retry()
        if conn is None:
            return
        self.leases.start()
        listener = threading.Thread(target=self._listen, name="feed-listener", daemon=True)
        listener.start()
        try:
            try:
                self._start_feed(conn, rewind=False)
                # The loop replaces the connection when it loses it: the last snapshot goes through
                # the one it ends with (the first may be long closed), and that is the one to close.
                conn = self._loop(conn)
                with contextlib.suppress(psycopg.Error):
                    self._flush_last_seen(conn)
                    self._snapshot(conn)
            finally:
                conn.close()
        except psycopg.Error as exc:
            log.warning("detector runner could not store its last snapshot (%s); the next owner replays", exc)
        finally:
            self.leases.stop()  # releases every lease: the other nodes take over at once
            listener.join(timeout=5)

    def _loop(self, conn: psycopg.Connection) -> psycopg.Connection:
        """Rounds until stopped; returns the connection it ended with."""
        last_tick = last_snapshot = last_refresh = time.monotonic()
        while not self._stopping.is_set():
            batch: list[Record] = []
            try:
                self._sync_partitions(conn)
                self._read_feed(conn)
                urgent, bulk = self._take(timeout=self._feed_poll_s)
                batch = [*urgent, *bulk]
                if urgent:
                    self._round(conn, urgent, tick=False)
                if bulk:
                    self._round(conn, bulk, tick=False)
                self._note_done()
                now_mono = time.monotonic()
                if now_mono - last_tick >= self._tick_s:
                    last_tick = now_mono
                    self._apply_closures(conn)
                    self._round(conn, [], tick=True)
                    self._flush_last_seen(conn)
                if now_mono - last_refresh >= self._refresh_every_s:
                    last_refresh = now_mono
                    self._refresh_registry(conn, self._parts)
                if now_mono - last_snapshot >= self._snapshot_every_s:
                    last_snapshot = now_mono
                    self._snapshot(conn)
            except psycopg.OperationalError as exc:
                # The feed rewinds and what was not committed is read again (a failover may reuse
                # transaction ids; storage.feed). The engines stay: a record they already processed
                # comes again and is ignored (a reading not newer than the last) or pages once (the
                # finding's key). Only partitions whose findings were being written (their engines
                # moved on, but the alerts may not have been committed) or that were being loaded
                # (their replay did not finish) reload from their snapshots.
                # Reloading everything made every sos after a database failover wait for the whole
                # node's snapshots and replay (seconds).
                dirty = self._writing | self._loading
                log.warning("detector runner lost the database (%s); reloading %d partition(s) whose"
                            " write or load was in flight", exc, len(dirty))  # fmt: skip
                reconnected = self._reconnect(conn)
                if reconnected is None:
                    return conn  # stopping while the database was away: closed already
                conn = reconnected
                self._drop(dirty)
                self._start_feed(conn, rewind=True)
            except Exception:
                # A detector bug must not stop detection for the whole fleet: log it loudly, count
                # it (visible in metrics and readiness) and go on with the next round.
                self.errors_total += 1
                log.exception("detector round failed on %d record(s); continuing", len(batch))
        return conn

    def _take(self, timeout: float) -> tuple[list[Record], list[MeterSample]]:
        """Every pending urgent record, and the oldest readings (:func:`take_uploads`)."""
        with self._pending:
            self._pending.wait_for(
                lambda: bool(self._urgent or self._bulk) or self._woken or self._stopping.is_set(), timeout
            )
            urgent = list(self._urgent)
            self._urgent.clear()
            bulk = take_uploads(self._bulk)
            self._bulk_readings -= len(bulk)
            self._pending.notify_all()
        return urgent, bulk

    # -- the feed ----------------------------------------------------------------------------------

    def _start_feed(self, conn: psycopg.Connection, *, rewind: bool) -> None:
        with self._pending:
            self._urgent.clear()
            self._bulk.clear()
            self._bulk_readings = 0
        if rewind and self._done:
            self._read = {cursor: pos.rewound(REWIND_XIDS) for cursor, pos in self._done.items()}
        else:
            now = feed.current_position(conn)
            self._read = dict.fromkeys(CURSORS, now)
            self._first = dict(self._read)
        self._done = dict(self._read)
        if self._closures_from is None:
            self._closures_from = self._clock()

    def _read_feed(self, conn: psycopg.Connection) -> None:
        """Read what became visible: events whenever woken or due, telemetry when the readings of its
        previous read are done and it is due (or woken)."""
        with self._pending:
            woken, self._woken = self._woken, False
            telemetry_free = not self._bulk
        owned = sorted(self._parts)
        due = time.monotonic() - self._telemetry_read_at >= self._feed_poll_s
        if not (woken or due):
            return
        cursors = ["events", "telemetry"] if telemetry_free else ["events"]
        caught_up = True
        for cursor in cursors:
            with feed.snapshot_transaction(conn):
                result = feed.read(conn, self._read[cursor], owned, tables=CURSORS[cursor])
            self._read[cursor] = result.position
            caught_up = caught_up and result.caught_up
            if result.rows:
                self.submit_records([row.record for row in result.rows])
            if cursor == "telemetry":
                self._telemetry_read_at = time.monotonic()
            elif result.rows:
                # Events first: evaluate them now, read telemetry in the very next iteration.
                self.wake()
                return
        if caught_up and telemetry_free:
            self.caught_up_at = time.monotonic()
        if not caught_up:
            self.wake()  # more to read at once (a backlog is read max_xids at a time)

    def _note_done(self) -> None:
        """When nothing read is waiting any more, every engine has processed up to the read position."""
        with self._pending:
            if self._urgent or self._bulk:
                return
        self._done = dict(self._read)
        for part in self._parts.values():
            part.positions = dict(self._done)

    def _listen(self) -> None:
        """Wake the runner on every event committed anywhere (migration 0018's NOTIFY)."""
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute("LISTEN carewatch_feed")
                    self.wake()  # anything committed while not listening
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.wake()
            except psycopg.Error as exc:
                log.warning("feed listener lost the database (%s); retrying", exc)
                self._stopping.wait(1.0)

    # -- partitions --------------------------------------------------------------------------------

    def _sync_partitions(self, conn: psycopg.Connection) -> None:
        """Follow the lease keeper: drop what is gone, hand over what is offered, load what is new."""
        held = self.leases.tenures()
        gone = [p for p, part in self._parts.items() if held.get(p) != part.token]
        for number in gone:
            log.warning("partition %d is no longer this node's: dropped", number)
            del self._parts[number]
        offered = self.leases.offered() & set(self._parts)
        if offered:
            tenures = {p: self._parts[p].token for p in offered}
            self._snapshot(conn, offered)
            for number in offered:
                self._parts.pop(number, None)
            self.leases.handed_over(tenures)
            self.leases.wake(conn)  # released now, not at the keeper's next renewal
        new = {p: token for p, token in held.items() if p not in self._parts and p not in offered}
        if new:
            self._load(conn, new)

    def _load(self, conn: psycopg.Connection, tenures: dict[int, int]) -> None:
        started = time.monotonic()
        self._loading = set(tenures)
        loaded = [
            partition_state.load(conn, number, token, self._config, self._first, self._read, CURSORS)
            for number, token in sorted(tenures.items())
        ]
        parts = {item.partition.number: item.partition for item in loaded}
        self._refresh_registry(conn, parts)
        now = self._clock()
        for item in loaded:
            part = item.partition
            self._parts[part.number] = part
            self._closures_for(conn, part, now)
            records = [row.record for row in item.replay]
            for start in range(0, len(records), READINGS_PER_ROUND):
                self._round(conn, records[start : start + READINGS_PER_ROUND], tick=False)
        self._snapshot(conn, parts)  # its position is stored from the start: a successor never guesses
        self._loading = set()
        self.loaded_total += len(loaded)
        replayed = sum(len(item.replay) for item in loaded)
        log.info(
            "node %s loaded partitions %s: %d record(s) replayed in %.2fs",
            self.leases.node_id,
            leases.ranges(tenures),
            replayed,
            time.monotonic() - started,
        )

    def _drop(self, numbers: Iterable[int]) -> None:
        """Forget these partitions' engines: they reload from their snapshots at the next sync."""
        for number in numbers:
            self._parts.pop(number, None)
        self._writing, self._loading = set(), set()

    def _part_of(self, household_id: str) -> Partition | None:
        return self._parts.get(partition_of(household_id))

    # -- rounds ------------------------------------------------------------------------------------

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
        self._status.extend(record for record in urgent if isinstance(record, StatusReport))
        for device_id, received_at in heard.items():
            seen = self._last_seen.get(device_id)
            if seen is None or received_at > seen:
                self._last_seen[device_id] = received_at
        if heard:
            newest = max(heard.values())
            self._watermark = newest if self._watermark is None else max(self._watermark, newest)

    def _evaluate(self, conn: psycopg.Connection, records: Sequence[Record], *, tick: bool) -> None:
        now = self._clock()
        findings: list[Finding] = []
        by_partition: dict[int, list[Record]] = {}
        for record in records:
            by_partition.setdefault(partition_of(record.household_id), []).append(record)
        for number, part_records in by_partition.items():
            part = self._parts.get(number)
            if part is not None:  # else dropped since it was read: its new owner has the records
                findings.extend(part.engine.process(part_records))
        if tick:
            for part in self._parts.values():
                findings.extend(part.engine.tick(now))
        if findings:
            self._write(conn, findings, now)

    def _write(self, conn: psycopg.Connection, findings: list[Finding], now: datetime) -> None:
        """Findings as alerts in one transaction, only for the partitions still this node's (the fence
        holds their lease rows until commit), a paging finding only the first time its key is seen."""
        numbers = {partition_of(finding.household_id) for finding in findings}
        tenures = {n: self._parts[n].token for n in numbers if n in self._parts}
        self._writing = set(tenures)  # if the database goes now, these reload (see _loop)
        with conn.transaction():
            valid = leases.fenced(conn, self.leases.node_id, tenures)
            kept = [f for f in findings if partition_of(f.household_id) in valid]
            paging = {finding_key(f): partition_of(f.household_id) for f in kept if f.notify_again}
            fresh = detector_state.first_time_findings(conn, paging)
            kept = [f for f in kept if not f.notify_again or finding_key(f) in fresh]
            changed = apply_findings(conn, kept, now, self._alerting) if kept else []
        self._writing = set()
        refused = numbers - valid
        if refused:
            self.fenced_total += len(findings) - sum(1 for f in findings if partition_of(f.household_id) in valid)
            log.warning("node %s lost partitions %s: their findings are not written", self.leases.node_id,
                        leases.ranges(refused))  # fmt: skip
            for number in refused:
                self._parts.pop(number, None)
            self.leases.lost(refused)
        self.findings_total += len(kept)
        for finding in kept:
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

    # -- closures, registry, health, snapshots -----------------------------------------------------

    def _apply_closures(self, conn: psycopg.Connection) -> None:
        """End the detector latches of alerts resolved since the last look (a resolved alert must not
        leave a latch that hides the next incident; ``Engine.alert_closed``)."""
        since = (self._closures_from or self._clock()) - CLOSURE_MARGIN
        self._closures_from = self._read_closures(conn, since, self._parts)

    def _closures_for(self, conn: psycopg.Connection, part: Partition, now: datetime) -> None:
        """A partition just loaded: the closures since its snapshot (or a month back, the first time)."""
        since = (part.closures_from - CLOSURE_MARGIN) if part.closures_from else now - FIRST_CLOSURE_LOOKBACK
        self._read_closures(conn, since, {part.number: part})

    def _read_closures(self, conn: psycopg.Connection, since: datetime, parts: dict[int, Partition]) -> datetime:
        newest = since + CLOSURE_MARGIN
        while True:
            closures = closed_since(conn, since, limit=CLOSURES_PER_READ)
            for closure in closures:
                part = parts.get(partition_of(closure.household_id))
                if part is not None:
                    part.engine.alert_closed(closure)
            if closures:
                newest = max(newest, closures[-1].closed_at)
            if len(closures) < CLOSURES_PER_READ or closures[-1].closed_at == since:
                return newest
            since = closures[-1].closed_at

    def _flush_last_seen(self, conn: psycopg.Connection) -> None:
        """Device health for the API, written in one statement every few seconds, not per round."""
        if not self._last_seen and not self._status:
            return
        pending, self._last_seen = self._last_seen, {}
        reports, self._status = self._status, []
        with conn.transaction():
            record_last_seen(conn, pending.items())
            record_status(conn, reports)

    def _learn_devices(self, conn: psycopg.Connection, device_ids: Iterable[str]) -> None:
        unknown = set(device_ids) - self._known
        if not unknown:
            return
        for device in get_devices(conn, unknown).values():
            part = self._part_of(device.household_id)
            if part is not None:
                part.engine.upsert_device(device)
                self._known.add(device.device_id)

    def _refresh_registry(self, conn: psycopg.Connection, parts: dict[int, Partition]) -> None:
        """Pick up devices and household settings (away periods, thresholds) changed through the API."""
        if not parts:
            return
        for household_id, timezone, settings in household_settings(conn):
            part = parts.get(partition_of(household_id))
            if part is None:
                continue
            try:
                part.engine.set_household(household_id, household_view_settings(settings, timezone, self._alerting))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("household %s has invalid detector settings (%s); using defaults", household_id, exc)
        active = active_devices(conn)
        for device in active:
            part = parts.get(partition_of(device.household_id))
            if part is not None and (device.device_id not in self._known or parts is not self._parts):
                part.engine.upsert_device(device)
                self._known.add(device.device_id)
        # Decommissioned (or erased: storage.erasure) devices: no more offline alerts, and their learned
        # state is not written back after the erasure deleted it.
        gone = sorted(self._known - {device.device_id for device in active})
        for device_id in gone:
            for part in parts.values():
                part.engine.remove_device(device_id)
            self._known.discard(device_id)
        if gone:
            with conn.transaction():
                detector_state.delete_snapshots(conn, [f"{DEV}:{device_id}" for device_id in gone])
            log.info("detectors forgot %d decommissioned device(s)", len(gone))

    def _snapshot(self, conn: psycopg.Connection, numbers: Iterable[int] | None = None) -> None:
        """Store the changed state of the partitions (all held by default), under their fence."""
        chosen = {n: self._parts[n] for n in (self._parts if numbers is None else numbers) if n in self._parts}
        if not chosen:
            return
        now = self._clock()
        with conn.transaction():
            valid = leases.fenced(conn, self.leases.node_id, {n: p.token for n, p in chosen.items()})
            for number in sorted(valid):
                state = partition_state.snapshot_state(chosen[number], self._closures_from)
                detector_state.save_partition_snapshots(conn, number, state, now)
            detector_state.prune_findings(conn, now - FINDINGS_KEPT)
        refused = set(chosen) - valid
        if refused:
            for number in refused:
                self._parts.pop(number, None)
            self.leases.lost(refused)

    def _connect_with_retry(self) -> psycopg.Connection | None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:
                log.warning("detector runner cannot reach the database (%s); retrying in %.1fs", exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, 1.0)  # soon after the database is back (see ingest.writer)
        return None

    def _reconnect(self, conn: psycopg.Connection) -> psycopg.Connection | None:
        try:
            conn.close()
        finally:
            fresh = self._connect_with_retry()
        return fresh
