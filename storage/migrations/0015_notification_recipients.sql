-- 0015: an outbox row goes to exactly one kind of recipient. 0008 (check-ins) allowed a caregiver or a
-- check-in; 0014 (messaging robots) added group chats. Now: a check-in's row names only the check-in;
-- any other row names a caregiver (through their own robot if group_id is set) or a group chat.
ALTER TABLE notifications DROP CONSTRAINT notifications_recipient_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_recipient_check CHECK (
    (checkin_id IS NOT NULL AND caregiver_id IS NULL AND group_id IS NULL)
    OR (checkin_id IS NULL AND (caregiver_id IS NOT NULL OR group_id IS NOT NULL))
);
