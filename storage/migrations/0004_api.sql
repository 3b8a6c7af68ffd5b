-- 0004: what the monitoring API needs: API tokens, the audit log, device MQTT credentials, an alert
-- change feed for live updates (works across processes: any writer's change lands in alert_changes and
-- wakes listeners with NOTIFY), and indexes for the API's keyset-paginated lists.

-- API tokens: only the SHA-256 of the secret is stored; the token itself is shown once when minted.
CREATE TABLE api_tokens (
    token_id      text PRIMARY KEY,
    secret_sha256 text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'caregiver', 'device_provisioner')),
    subject       text NOT NULL,
    district      text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    CHECK (role <> 'operator' OR district IS NOT NULL)
);
CREATE INDEX api_tokens_subject_idx ON api_tokens (role, subject);

-- Who did or saw what, when, from where. Ids only: no names, phone numbers or addresses.
CREATE TABLE audit_log (
    audit_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL,
    token_id      text NOT NULL,
    role          text NOT NULL,
    subject       text NOT NULL,
    action        text NOT NULL,
    resource      text NOT NULL,
    resource_id   text NOT NULL DEFAULT '',
    client        text NOT NULL DEFAULT '',
    detail        text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_subject_idx ON audit_log (subject, audit_id DESC);
CREATE INDEX audit_log_resource_idx ON audit_log (resource, resource_id, audit_id DESC);

-- A device's MQTT login. The password is shown once at provisioning; PBKDF2-SHA512 hash stored in the
-- "$7$iterations$salt$hash" layout of mosquitto_passwd so a broker password file can be generated.
CREATE TABLE device_credentials (
    device_id     text PRIMARY KEY REFERENCES devices ON DELETE CASCADE,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

-- Alert change feed: one row per insert/update of an alert, whoever wrote it (detectors, dispatcher,
-- API, another process). The SSE stream reads it by change_id and is woken by NOTIFY.
CREATE TABLE alert_changes (
    change_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id      bigint NOT NULL,
    household_id  text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_changes_at_idx ON alert_changes (at);

CREATE FUNCTION carewatch_alert_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_changes (alert_id, household_id) VALUES (NEW.alert_id, NEW.household_id);
    -- A constant payload: PostgreSQL folds identical notifications of one transaction into one.
    PERFORM pg_notify('carewatch_alert_changes', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER alerts_changed AFTER INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION carewatch_alert_changed();

-- Keyset pages of alerts, newest first, by status and by household.
CREATE INDEX alerts_status_id_idx ON alerts (status, alert_id DESC);
CREATE INDEX alerts_household_id_idx ON alerts (household_id, alert_id DESC);
-- Households of a district (operators' scope) are served by households_district_idx (0001).
-- Readings by device and time are served by the readings primary key (device_id, ts).
CREATE INDEX devices_health_idx ON devices (household_id, device_id) WHERE decommissioned_at IS NULL;
