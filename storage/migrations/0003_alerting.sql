-- Alerting v2: care-plan details, declines, visits, and what the outbox needs for service levels.
-- Additive only: every new column has a default, so the foundation's code keeps working.

-- Care plan contacts: channels (NULL = webhook if the caregiver has one), working hours (NULL = always),
-- keyholder/access notes, medical-notes access (NULL = by role), and order within a tier.
ALTER TABLE care_plan_contacts
    ADD COLUMN position       integer NOT NULL DEFAULT 0,
    ADD COLUMN channels       text[],
    ADD COLUMN working_hours  jsonb,
    ADD COLUMN keyholder      boolean NOT NULL DEFAULT false,
    ADD COLUMN access_notes   text NOT NULL DEFAULT '',
    ADD COLUMN medical_access boolean;

ALTER TABLE households
    ADD COLUMN visit_interval_days integer NOT NULL DEFAULT 30 CHECK (visit_interval_days BETWEEN 1 AND 366),
    ADD COLUMN access_notes        text NOT NULL DEFAULT '';

-- Which policy step and why a notification was sent: service levels and "everyone declined" need it.
ALTER TABLE notifications
    ADD COLUMN level  integer,
    ADD COLUMN reason text NOT NULL DEFAULT 'new';
CREATE INDEX notifications_dead_idx ON notifications (created_at DESC) WHERE status = 'dead';

-- A caregiver who cannot take an alert at a step. When all asked at the step decline, it escalates.
CREATE TABLE alert_declines (
    alert_id     bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    caregiver_id text NOT NULL REFERENCES caregivers ON DELETE CASCADE,
    level        integer NOT NULL,
    at           timestamptz NOT NULL,
    note         text NOT NULL DEFAULT '',
    PRIMARY KEY (alert_id, level, caregiver_id)
);

-- Home visits logged by caregivers; an overdue one becomes a visit_overdue alert for the care team.
CREATE TABLE visits (
    visit_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    household_id text NOT NULL REFERENCES households ON DELETE CASCADE,
    caregiver_id text NOT NULL REFERENCES caregivers ON DELETE RESTRICT,
    visited_at   timestamptz NOT NULL,
    note         text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX visits_household_idx ON visits (household_id, visited_at DESC);

-- Service-level queries scan by period.
CREATE INDEX alerts_opened_idx ON alerts (opened_at);
