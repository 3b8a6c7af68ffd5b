-- Several carewatch nodes, all active (issue 17): detection partitioned by household, each partition
-- owned by one node at a time through a lease with a fencing token, and a commit-ordered feed of the
-- committed records that every node's detectors read (storage/feed.py, storage/leases.py).

-- The partition of a household: the first 32 bits of md5(household_id), modulo 64. The same rule in
-- Python is carewatch.partitions.partition_of (a test checks that both agree). 64 is fixed: changing it
-- moves households between partitions and needs every node stopped.
CREATE FUNCTION carewatch_partition(household_id text) RETURNS smallint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (('x' || substr(md5(household_id), 1, 8))::bit(32)::bigint % 64)::smallint;

-- Nodes announce themselves here every second; a node whose alive_until passed is gone. Balancing
-- counts the living ones (each aims at ceil(64 / nodes) partitions).
CREATE TABLE detector_nodes (
    node_id        text PRIMARY KEY,
    alive_until    timestamptz NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    api_url        text NOT NULL DEFAULT ''
);

-- One lease per partition. Expiry runs on the database's clock (node clocks never matter). Every
-- acquisition takes a new token from the sequence, so a token names one tenure: a node writes
-- findings only in a transaction that finds (partition, its token) still its own, with the lease row
-- locked FOR SHARE, so a takeover waits for that write and then sees it.
CREATE SEQUENCE detector_lease_token;
CREATE TABLE detector_leases (
    partition      smallint PRIMARY KEY CHECK (partition >= 0 AND partition < 64),
    owner          text,
    token          bigint NOT NULL DEFAULT 0,
    expires_at     timestamptz NOT NULL DEFAULT '-infinity',
    acquired_at    timestamptz
);
INSERT INTO detector_leases (partition) SELECT generate_series(0, 63);

-- Snapshots carry their partition, so a node that takes a partition over loads only its keys.
ALTER TABLE detector_state ADD COLUMN partition smallint;
UPDATE detector_state SET partition = carewatch_partition(substr(state_key, 4)) WHERE state_key LIKE 'hh:%';
UPDATE detector_state s SET partition = carewatch_partition(d.household_id)
    FROM devices d WHERE s.state_key = 'dev:' || d.device_id;
-- The single runner's state (watermark by receive time) becomes every partition's starting point.
INSERT INTO detector_state (state_key, state, updated_at, partition)
    SELECT '__runner__:' || p, s.state, s.updated_at, p
    FROM detector_state s CROSS JOIN generate_series(0, 63) AS p WHERE s.state_key = '__runner__';
DELETE FROM detector_state WHERE state_key = '__runner__';
CREATE INDEX detector_state_partition_idx ON detector_state (partition);

-- Findings a node has applied, so that the replay after a takeover (the records the dead owner had
-- processed since its last snapshot) never pages twice for the same sos or fire. Kept two days.
CREATE TABLE detector_findings (
    finding_key    text PRIMARY KEY,
    partition      smallint NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX detector_findings_recorded_idx ON detector_findings (recorded_at);

-- The feed: every stored record carries the id of the transaction that wrote it. A reader keeps
-- (lo, pending): every transaction below lo has been read except those still running then (pending);
-- it reads the rows of transactions that became visible since, in one snapshot (storage/feed.py), so
-- a transaction that commits late (after a later one) is read when it commits, never skipped. The
-- column is nullable with a default (no table rewrite; rows from before this migration are not fed).
ALTER TABLE readings ADD COLUMN feed_xid xid8;
ALTER TABLE readings ALTER COLUMN feed_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX readings_feed_idx ON readings (feed_xid);
ALTER TABLE events ADD COLUMN feed_xid xid8;
ALTER TABLE events ALTER COLUMN feed_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX events_feed_idx ON events (feed_xid);
ALTER TABLE status_reports ADD COLUMN feed_xid xid8;
ALTER TABLE status_reports ALTER COLUMN feed_xid SET DEFAULT pg_current_xact_id();
CREATE INDEX status_reports_feed_idx ON status_reports (feed_xid);

-- Events (sos, smoke alarms) wake the readers at commit: one NOTIFY per statement, not per row, and
-- events are rare. Telemetry is polled.
CREATE FUNCTION carewatch_feed_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('carewatch_feed', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_feed_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION carewatch_feed_notify();
