-- Ingest, schema v2: meter consumption derived from cumulative registers, at query time.
--
-- A water meter reports a cumulative register, not a flow. Consumption between two readings is the
-- difference of their registers, in device-time order (late readings are placed where they belong,
-- because readings are keyed and ordered by ts, not by arrival). Two things break the naive difference:
--
--   * the register goes backwards (battery swap, meter replaced, firmware reset): the difference would
--     be negative;
--   * the register jumps forward by more than water can physically flow in the elapsed time (a meter
--     swapped for one with a higher register, a corrupted reading): the difference would be huge.
--
-- Either starts a new *series*: the reading that starts a series has no consumption (NULL: unknown,
-- not zero), and differences are taken within a series only. So consumption is never negative and
-- never more than max_flow_l_per_s * elapsed + slack_l. The default bound, 1.5 L/s + 10 L, is above
-- the permanent flow of the DN15/DN20 meters used in homes (Q4 = 3.125 / 5 m3/h = 0.87 / 1.39 L/s).
--
-- meter_consumption(device, from, to) returns the readings with ts in [from, to), plus the last
-- reading before `from` so that the first reading of the range gets its difference; that earlier
-- reading is marked in_range = false. Each call reads one index range of readings (device_id, ts).

CREATE FUNCTION meter_consumption(
    p_device_id text,
    p_from timestamptz,
    p_to timestamptz,
    max_flow_l_per_s double precision DEFAULT 1.5,
    slack_l double precision DEFAULT 10.0
)
RETURNS TABLE (
    device_id text,
    ts timestamptz,
    register_l double precision,
    series integer,
    consumption_l double precision,
    in_range boolean
)
LANGUAGE sql STABLE
AS $$
    WITH points AS (
        (SELECT r.ts, r.register_l FROM readings r
          WHERE r.device_id = p_device_id AND r.ts < p_from ORDER BY r.ts DESC LIMIT 1)
        UNION ALL
        (SELECT r.ts, r.register_l FROM readings r
          WHERE r.device_id = p_device_id AND r.ts >= p_from AND r.ts < p_to)
    ), steps AS (
        SELECT ts, register_l,
               register_l - lag(register_l) OVER w AS delta,
               extract(epoch FROM ts - lag(ts) OVER w) AS elapsed_s
          FROM points WINDOW w AS (ORDER BY ts)
    ), marked AS (
        SELECT ts, register_l, delta,
               (delta IS NULL OR delta < 0 OR delta > max_flow_l_per_s * elapsed_s + slack_l) AS starts_series
          FROM steps
    ), numbered AS (
        SELECT ts, register_l, delta, starts_series,
               (sum(CASE WHEN starts_series THEN 1 ELSE 0 END) OVER (ORDER BY ts))::integer - 1 AS series
          FROM marked
    )
    SELECT p_device_id, ts, register_l, series,
           CASE WHEN starts_series THEN NULL ELSE delta END,
           ts >= p_from
      FROM numbered
     ORDER BY ts
$$;

COMMENT ON FUNCTION meter_consumption(text, timestamptz, timestamptz, double precision, double precision) IS
    'Per-reading litres from register differences; a backwards or impossible jump starts a new series (NULL consumption).';
