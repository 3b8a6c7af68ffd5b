-- 0005: wake dispatchers in any process the moment a notification is queued. The detectors, the API
-- (claims) and escalation all insert notifications; a dispatcher that runs in its own process (the
-- default: off the ingest's GIL) LISTENs and delivers at once instead of at its next poll.
CREATE FUNCTION carewatch_outbox_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A constant payload: PostgreSQL folds identical notifications of one transaction into one.
    PERFORM pg_notify('carewatch_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER notifications_queued AFTER INSERT ON notifications
    FOR EACH STATEMENT EXECUTE FUNCTION carewatch_outbox_queued();
