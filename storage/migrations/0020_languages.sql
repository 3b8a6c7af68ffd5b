-- Languages (issue 18). Evidence as data beside its English text: the text columns stay filled (old
-- readers, search), the jsonb holds what the detector saw (schemas.evidence.Evidence) so an alert
-- re-renders in any language. NULL: written before evidence was data (the text is all there is).
ALTER TABLE alerts ADD COLUMN evidence_data jsonb;
ALTER TABLE alert_events ADD COLUMN detail_data jsonb;

-- A caregiver's language for notifications ('en', 'zh-CN'); NULL: from the household's time zone
-- (Chinese for homes in mainland China). Validated by the API, not here, so adding a language needs
-- no migration.
ALTER TABLE caregivers ADD COLUMN locale text;
