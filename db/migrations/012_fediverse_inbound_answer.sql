-- A note's claim is no longer the end of it: a process can die between
-- claiming a note and queueing its replies. The claim now records when it
-- was taken, the replies once the engine has written them, and when they
-- were queued. An unanswered claim older than a lease is taken over by the
-- next delivery (or retry) of the note, which sends the saved replies, or
-- runs the message again if none were saved.
alter table fediverse_inbound
  add column claimed_at timestamptz not null default now(),
  add column replies jsonb,
  add column answered_at timestamptz;
-- Notes handled before this migration were answered.
update fediverse_inbound set claimed_at = received_at, answered_at = received_at;
