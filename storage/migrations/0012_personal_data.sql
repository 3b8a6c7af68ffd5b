-- 0012: erasure of a household's personal data on request (PIPL art. 47, GDPR art. 17). The rows stay
-- (alerts and their statistics, the audit trail and foreign keys need them) with their personal fields
-- scrubbed; erased_at says when, and that the blanks are deliberate (storage/erasure.py).
ALTER TABLE households ADD COLUMN erased_at timestamptz;
ALTER TABLE residents ADD COLUMN erased_at timestamptz;
-- A caregiver's contact fields are scrubbed when the last household they served is erased.
ALTER TABLE caregivers ADD COLUMN erased_at timestamptz;
