-- 0016: the neighbourhood committee (居委会) a household belongs to, under its district. The district's
-- monthly report (docs/reports.md) gives its figures per district and per committee; '' means not yet
-- assigned (shown as such in the report). Set when a household is registered or with
-- PATCH /api/v1/households/{id}.
ALTER TABLE households ADD COLUMN committee text NOT NULL DEFAULT '';
CREATE INDEX households_committee_idx ON households (district, committee, household_id);
