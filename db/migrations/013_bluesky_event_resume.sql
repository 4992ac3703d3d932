-- An answer in progress survives its worker: the replies the engine wrote
-- are kept with the event's claim, and how far sending got (chat pieces
-- sent; for a mention, 1 once its DM is sent). A retry, or the worker that
-- takes a stale claim over, sends the rest without running the message again.
alter table bluesky_event
  add column replies jsonb,
  add column sent integer not null default 0;
-- 'released': a delivery failed; the next poll takes the event up again.
alter table bluesky_event drop constraint bluesky_event_state_check;
alter table bluesky_event add constraint bluesky_event_state_check
  check (state in ('claimed', 'released', 'done', 'skipped'));
