-- 0006: an aggregate that applies meter_consumption's series rule (0002) to the readings of one group,
-- so that TimescaleDB's continuous aggregate readings_hourly can store each hour's use exactly as the
-- raw path computes it. A continuous aggregate cannot use window functions (lag), so the rule is
-- applied by an ordered aggregate instead: meter_steps_l(ts, register_l ORDER BY ts) is the sum of the
-- differences between consecutive readings of the group that do not start a new series (backwards, or
-- more than 1.5 L/s * elapsed + 10 L: 0002's default bound, written with the same types so that the
-- comparison rounds the same way).
-- The step into the group's first reading (from the previous hour) is added at query time
-- (storage/readings.py). Plain SQL: it exists in plain-PostgreSQL mode too, where nothing uses it.

CREATE TYPE meter_steps_state AS (ts timestamptz, register_l double precision, used_l double precision);

CREATE FUNCTION meter_steps_next(
    state meter_steps_state,
    p_ts timestamptz,
    p_register_l double precision
)
RETURNS meter_steps_state
LANGUAGE sql IMMUTABLE
AS $$
    -- The columns make the row: no type name in the body, because a refresh runs it with search_path
    -- set to pg_catalog, where meter_steps_state is not found.
    SELECT
        p_ts,
        p_register_l,
        CASE
            WHEN state IS NULL THEN 0.0::double precision
            WHEN p_register_l - (state).register_l < 0
              OR p_register_l - (state).register_l
                 > 1.5::double precision * extract(epoch FROM p_ts - (state).ts) + 10.0::double precision
            THEN (state).used_l
            ELSE (state).used_l + (p_register_l - (state).register_l)
        END
$$;

CREATE FUNCTION meter_steps_used(state meter_steps_state) RETURNS double precision
LANGUAGE sql IMMUTABLE
AS $$ SELECT (state).used_l $$;

-- Only meaningful with ORDER BY ts inside the call; not parallel-safe (no combine function) on purpose.
CREATE AGGREGATE meter_steps_l(timestamptz, double precision) (
    SFUNC = meter_steps_next,
    STYPE = meter_steps_state,
    FINALFUNC = meter_steps_used
);

COMMENT ON AGGREGATE meter_steps_l(timestamptz, double precision) IS
    'Litres between consecutive readings (call with ORDER BY ts), by meter_consumption''s series rule.';
