-- An event whose answer keeps failing for a reason of its own (not the
-- network, not the bot's session) is tried a few times, then given up:
-- `failures` counts those tries, and 'failed' marks the event given up, so
-- the mentions and messages after it are answered instead of waiting forever.
alter table bluesky_event add column failures integer not null default 0;
alter table bluesky_event drop constraint bluesky_event_state_check;
alter table bluesky_event add constraint bluesky_event_state_check
  check (state in ('claimed', 'released', 'done', 'skipped', 'failed'));
