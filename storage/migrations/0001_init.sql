-- carewatch schema v1. Plain PostgreSQL; TimescaleDB features are layered on by storage.timescale
-- when the extension is available. Every time-series table's unique key includes its time column so
-- that it can become a hypertable unchanged.

CREATE TABLE households (
    household_id   text PRIMARY KEY,
    name           text NOT NULL,
    address        text NOT NULL DEFAULT '',
    district       text NOT NULL DEFAULT '',
    timezone       text NOT NULL DEFAULT 'Asia/Shanghai',
    settings       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX households_district_idx ON households (district, household_id);

CREATE TABLE residents (
    resident_id    text PRIMARY KEY,
    household_id   text NOT NULL REFERENCES households ON DELETE CASCADE,
    name           text NOT NULL,
    birth_year     integer,
    medical_notes  text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX residents_household_idx ON residents (household_id);

CREATE TABLE caregivers (
    caregiver_id   text PRIMARY KEY,
    name           text NOT NULL,
    phone          text NOT NULL DEFAULT '',
    email          text NOT NULL DEFAULT '',
    webhook_url    text,
    webhook_secret text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Care plan: ordered contacts per household. tier 1 is notified first.
CREATE TABLE care_plan_contacts (
    household_id   text NOT NULL REFERENCES households ON DELETE CASCADE,
    caregiver_id   text NOT NULL REFERENCES caregivers ON DELETE CASCADE,
    role           text NOT NULL,
    tier           integer NOT NULL DEFAULT 1 CHECK (tier >= 1),
    PRIMARY KEY (household_id, caregiver_id)
);
CREATE INDEX care_plan_contacts_caregiver_idx ON care_plan_contacts (caregiver_id);

CREATE TABLE devices (
    device_id           text PRIMARY KEY CHECK (device_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    device_type         text NOT NULL CHECK (device_type IN ('water_meter', 'smoke_alarm', 'call_button')),
    household_id        text NOT NULL REFERENCES households ON DELETE RESTRICT,
    expected_interval_s integer NOT NULL CHECK (expected_interval_s > 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    decommissioned_at   timestamptz,
    -- Health, maintained by the detector runner (one writer, so no lock contention with ingest).
    -- Sequence gaps are computed from message_receipts when asked, which stays right with several
    -- ingest processes sharing one subscription.
    last_seen_at        timestamptz,
    online              boolean,
    battery_pct         integer,
    rssi_dbm            integer,
    fw                  text
);
CREATE INDEX devices_household_idx ON devices (household_id);

-- Every accepted message, once: the idempotency key of ingest (device, seq, device time).
CREATE TABLE message_receipts (
    device_id      text NOT NULL,
    seq            bigint NOT NULL,
    ts             timestamptz NOT NULL,
    channel        text NOT NULL,
    received_at    timestamptz NOT NULL,
    clock_skewed   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (device_id, seq, ts)
);
CREATE INDEX message_receipts_received_idx ON message_receipts (received_at);
CREATE INDEX message_receipts_device_received_idx ON message_receipts (device_id, received_at);

CREATE TABLE readings (
    device_id      text NOT NULL,
    ts             timestamptz NOT NULL,
    register_l     double precision NOT NULL,
    received_at    timestamptz NOT NULL,
    PRIMARY KEY (device_id, ts)
);

CREATE TABLE events (
    device_id      text NOT NULL,
    ts             timestamptz NOT NULL,
    seq            bigint NOT NULL,
    kind           text NOT NULL,
    note           text,
    received_at    timestamptz NOT NULL,
    PRIMARY KEY (device_id, ts, seq)
);

CREATE TABLE status_reports (
    device_id      text NOT NULL,
    ts             timestamptz NOT NULL,
    seq            bigint NOT NULL,
    online         boolean NOT NULL,
    battery_pct    integer,
    rssi_dbm       integer,
    fw             text,
    received_at    timestamptz NOT NULL,
    PRIMARY KEY (device_id, ts, seq)
);

-- Everything that was not accepted, kept for inspection with its reason.
CREATE TABLE rejects (
    reject_id      bigint GENERATED ALWAYS AS IDENTITY,
    received_at    timestamptz NOT NULL,
    topic          text NOT NULL,
    device_id      text,
    reason         text NOT NULL,
    detail         text NOT NULL,
    payload        bytea NOT NULL,
    payload_size   integer NOT NULL,
    PRIMARY KEY (reject_id, received_at)
);
CREATE INDEX rejects_reason_idx ON rejects (reason, received_at DESC);

CREATE TABLE alerts (
    alert_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    household_id   text NOT NULL REFERENCES households ON DELETE CASCADE,
    device_id      text,
    kind           text NOT NULL,
    severity       text NOT NULL,
    status         text NOT NULL DEFAULT 'open'
                   CHECK (status IN ('open', 'notified', 'claimed', 'resolved')),
    detector       text NOT NULL,
    evidence       text NOT NULL,
    details        jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at     timestamptz NOT NULL,
    opened_at      timestamptz NOT NULL DEFAULT now(),
    occurrences    integer NOT NULL DEFAULT 1,
    last_occurrence_at timestamptz NOT NULL DEFAULT now(),
    first_notified_at timestamptz,
    -- Escalation: the step of the severity's policy reached, and when the next step is due unless claimed.
    escalation_level integer NOT NULL DEFAULT 0,
    next_escalation_at timestamptz,
    claimed_by     text REFERENCES caregivers,
    claimed_at     timestamptz,
    resolved_by    text,
    resolved_at    timestamptz,
    outcome        text,
    resolution_note text
);
-- One open alert per household and kind; repeats attach to it.
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (household_id, kind) WHERE status <> 'resolved';
CREATE INDEX alerts_status_idx ON alerts (status, severity, opened_at DESC);
CREATE INDEX alerts_household_idx ON alerts (household_id, opened_at DESC);
CREATE INDEX alerts_escalation_due_idx ON alerts (next_escalation_at) WHERE next_escalation_at IS NOT NULL;

-- The alert timeline: every transition with who and when.
CREATE TABLE alert_events (
    alert_event_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id       bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    at             timestamptz NOT NULL DEFAULT now(),
    actor          text NOT NULL,
    action         text NOT NULL,
    detail         text NOT NULL DEFAULT ''
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, at);

-- Transactional outbox: written with the alert, delivered by the dispatcher.
CREATE TABLE notifications (
    notification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id       bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    caregiver_id   text NOT NULL REFERENCES caregivers ON DELETE CASCADE,
    channel        text NOT NULL,
    idempotency_key text NOT NULL UNIQUE,
    body           jsonb NOT NULL,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'dead')),
    attempts       integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    deadline       timestamptz NOT NULL,
    sent_at        timestamptz,
    last_error     text
);
CREATE INDEX notifications_due_idx ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_alert_idx ON notifications (alert_id);

CREATE TABLE delivery_attempts (
    notification_id bigint NOT NULL REFERENCES notifications ON DELETE CASCADE,
    attempt        integer NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    ok             boolean NOT NULL,
    detail         text NOT NULL DEFAULT '',
    PRIMARY KEY (notification_id, attempt)
);

-- Detector snapshots, keyed by detector and device/household.
CREATE TABLE detector_state (
    state_key      text PRIMARY KEY,
    state          jsonb NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
