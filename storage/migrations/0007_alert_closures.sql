-- 0007: the detector runner reads the alerts resolved since its last look (Engine.alert_closed): a
-- resolved alert ends the detector latch that raised it, so it cannot hide the next incident.
CREATE INDEX alerts_resolved_idx ON alerts (resolved_at) WHERE resolved_at IS NOT NULL;
