-- 0010: the registry drives the MQTT broker's access control (docs/operations.md, "Security").
--
-- Mosquitto: carewatch pushes every change to the broker's dynamic security plugin and reconciles it
-- (carewatch.broker). EMQX: the broker reads the two views below itself (deploy/emqx/carewatch.hocon).

-- A caregiver app's MQTT login, like device_credentials: PBKDF2-SHA512 in mosquitto_passwd's
-- "$7$iterations$salt$hash" layout; the password is shown once when issued.
CREATE TABLE app_credentials (
    caregiver_id  text PRIMARY KEY REFERENCES caregivers ON DELETE CASCADE,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

-- Registry changes a broker has not applied yet (it was unreachable or refused them). Written after the
-- registry change committed; retried by `carewatch run` and cleared by `carewatch broker sync`. Ids
-- only: never a password.
CREATE TABLE broker_pending (
    username    text PRIMARY KEY,
    since       timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 1,
    last_error  text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every active MQTT login of the registry, in the form EMQX's PostgreSQL authenticator checks with
-- password_hash_algorithm {name = pbkdf2, mac_fun = sha512, iterations = 101, dk_length = 64}:
-- password_hash is the lower-case hex of the derived key, salt the raw salt bytes (bytea: EMQX hashes
-- the column's bytes as they are, and the salt of a $7$ hash is binary). A decommissioned device or a
-- revoked login is simply absent.
CREATE VIEW mqtt_accounts AS
SELECT c.username,
       encode(decode(split_part(c.password_hash, '$', 5), 'base64'), 'hex') AS password_hash,
       decode(split_part(c.password_hash, '$', 4), 'base64') AS salt,
       split_part(c.password_hash, '$', 3)::integer AS iterations,
       false AS is_superuser,
       'device'::text AS kind
FROM device_credentials c
JOIN devices d USING (device_id)
WHERE c.revoked_at IS NULL AND d.decommissioned_at IS NULL
UNION ALL
SELECT a.username,
       encode(decode(split_part(a.password_hash, '$', 5), 'base64'), 'hex'),
       decode(split_part(a.password_hash, '$', 4), 'base64'),
       split_part(a.password_hash, '$', 3)::integer,
       false,
       'app'::text
FROM app_credentials a
WHERE a.revoked_at IS NULL;

-- What each active login may do, topics relative to the topic root (the EMQX query prefixes it, e.g.
-- 'care/v1/' || topic): the same rules as carewatch.broker.roles. Anything not listed is denied
-- (authorization.no_match = deny).
CREATE VIEW mqtt_acl AS
SELECT a.username, 'allow'::text AS permission, rule.action, rule.topic
FROM mqtt_accounts a
JOIN device_credentials c ON c.username = a.username AND a.kind = 'device'
CROSS JOIN LATERAL (VALUES
    ('publish', 'dev/' || c.device_id || '/telemetry'),
    ('publish', 'dev/' || c.device_id || '/event'),
    ('publish', 'dev/' || c.device_id || '/status'),
    ('subscribe', 'dev/' || c.device_id || '/cmd')
) AS rule (action, topic)
UNION ALL
SELECT a.username, 'allow', rule.action, rule.topic
FROM mqtt_accounts a
JOIN app_credentials ac ON ac.username = a.username AND a.kind = 'app'
CROSS JOIN LATERAL (VALUES
    ('publish', 'app/' || ac.caregiver_id || '/replies'),
    ('subscribe', 'app/' || ac.caregiver_id || '/alerts'),
    ('subscribe', 'app/' || ac.caregiver_id || '/acks')
) AS rule (action, topic);
