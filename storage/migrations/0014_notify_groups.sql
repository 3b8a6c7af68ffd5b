-- 0014: messaging-robot destinations (WeCom / 政务微信 group robots, DingTalk custom robots) as data.
--
-- A notify group is one robot in one group chat (a 居委会 duty group, a street office's group). It serves
-- households of its district: at every escalation step whose tiers include the group's tier it receives
-- the alert, and it receives the claim notice, so the group sees who took it. A caregiver may also
-- choose a group robot as their own channel (care-plan contact channel 'wecom' or 'dingtalk'): the
-- message then goes to that group and mentions them.
CREATE TABLE notify_groups (
    group_id      text PRIMARY KEY CHECK (group_id ~ '^[A-Za-z0-9_-]{1,64}$'),
    kind          text NOT NULL CHECK (kind IN ('wecom', 'dingtalk')),
    district      text NOT NULL,
    name          text NOT NULL,
    -- The robot's webhook (its key or access_token is in the URL: a secret, never returned by the API).
    webhook_url   text NOT NULL,
    -- DingTalk 加签 secret (SEC...); WeCom robots have none.
    secret        text,
    -- The escalation tier the group joins in every household it serves (2: committee staff).
    tier          integer NOT NULL DEFAULT 2 CHECK (tier BETWEEN 1 AND 9),
    locale        text NOT NULL DEFAULT 'zh-CN',
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- The vendor answered "too many messages": nothing goes to this robot before then (all dispatchers).
    paused_until  timestamptz
);
CREATE INDEX notify_groups_district_idx ON notify_groups (district, group_id);

CREATE TABLE notify_group_households (
    group_id      text NOT NULL REFERENCES notify_groups ON DELETE CASCADE,
    household_id  text NOT NULL REFERENCES households ON DELETE CASCADE,
    PRIMARY KEY (group_id, household_id)
);
CREATE INDEX notify_group_households_household_idx ON notify_group_households (household_id);

-- A caregiver's own choice of robot (used when their care-plan contact lists 'wecom' or 'dingtalk').
ALTER TABLE caregivers ADD COLUMN robot_group_id text REFERENCES notify_groups ON DELETE SET NULL;

-- A notification goes to a caregiver, to a group, or to a caregiver through a group robot.
ALTER TABLE notifications
    ALTER COLUMN caregiver_id DROP NOT NULL,
    ADD COLUMN group_id text REFERENCES notify_groups ON DELETE CASCADE;
-- Who a row goes to (a caregiver, a group chat, or a resident's check-in) is checked by 0015.

-- Robot sends of the last minutes, by robot: the rate limit shared by every dispatcher thread and
-- process (a sliding window over the database clock). Old rows are pruned as new ones are admitted.
CREATE TABLE robot_sends (
    group_id      text NOT NULL REFERENCES notify_groups ON DELETE CASCADE,
    at            timestamptz NOT NULL
);
CREATE INDEX robot_sends_group_at_idx ON robot_sends (group_id, at);
