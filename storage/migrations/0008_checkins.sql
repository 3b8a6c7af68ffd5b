-- 0008: resident check-ins. An inactivity, routine-missed or continuous-flow alert first asks the
-- resident (a downlink command to the call button, a voice call or SMS to their phone); nobody is
-- paged while the alert is 'checking_in'. An answer (or any sign of life) resolves it; help, no answer
-- after the attempts, or the wait running out pages the care plan.

ALTER TABLE alerts DROP CONSTRAINT alerts_status_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_status_check
    CHECK (status IN ('checking_in', 'open', 'notified', 'claimed', 'resolved'));

-- When people were first asked to act (step 0 queued): at opening for most alerts, after the check-in
-- for one that asked the resident first; NULL if nobody was ever paged (the resident answered). Service
-- levels run from here.
ALTER TABLE alerts ADD COLUMN paged_at timestamptz;
UPDATE alerts SET paged_at = opened_at;

-- A call button's checkin_ok event names the check-in it answers.
ALTER TABLE events ADD COLUMN checkin_id text;

CREATE TABLE checkins (
    checkin_id     text PRIMARY KEY,   -- random: what the button echoes and the gateway calls back with
    alert_id       bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    household_id   text NOT NULL REFERENCES households ON DELETE CASCADE,
    kind           text NOT NULL,
    status         text NOT NULL DEFAULT 'waiting'
                   CHECK (status IN ('waiting', 'answered', 'unanswered', 'cancelled')),
    attempt        integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    attempts       integer NOT NULL CHECK (attempts >= 1),
    wait_s         integer NOT NULL CHECK (wait_s > 0),
    channels       text[] NOT NULL,
    started_at     timestamptz NOT NULL,
    attempt_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    answer         text CHECK (answer IN ('ok', 'help', 'away')),
    answered_via   text,
    answered_at    timestamptz,
    -- Every attempt and what came of it, for the evidence a caregiver reads when nobody answered.
    history        jsonb NOT NULL DEFAULT '[]'::jsonb
);
CREATE UNIQUE INDEX checkins_alert_idx ON checkins (alert_id);
CREATE INDEX checkins_household_idx ON checkins (household_id, started_at DESC);
CREATE INDEX checkins_started_idx ON checkins (started_at);

-- Check-in deliveries go through the same outbox as caregivers' notifications (retries, wake-ups,
-- dead-delivery handling), addressed to the resident: no caregiver, the check-in named instead.
ALTER TABLE notifications ALTER COLUMN caregiver_id DROP NOT NULL;
-- A check-in delivery not yet sent when the resident has answered is withdrawn, not sent late.
ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sent', 'dead', 'cancelled'));
ALTER TABLE notifications ADD COLUMN checkin_id text REFERENCES checkins ON DELETE CASCADE;
ALTER TABLE notifications ADD CONSTRAINT notifications_recipient_check
    CHECK ((caregiver_id IS NULL) <> (checkin_id IS NULL));
CREATE INDEX notifications_checkin_idx ON notifications (checkin_id) WHERE checkin_id IS NOT NULL;

-- The resident's own phone for check-ins (voice call or SMS), and the language spoken to them.
ALTER TABLE residents
    ADD COLUMN phone  text NOT NULL DEFAULT '',
    ADD COLUMN locale text NOT NULL DEFAULT 'zh-CN';
