-- What the conversation engine remembers about each sender between messages,
-- shared by every process: a per-sender message counter (rate limit), when
-- the next "I didn't understand" hint may be sent, a pending `forget`, and
-- failed link-code attempts. Senders are keyed by a SHA-256 of
-- "platform:stable id", never by the id itself; rows are dropped with the
-- person (forget) and purged when idle.
create table conversation_sender (
  sender_key bytea primary key,
  window_start timestamptz not null,
  window_count integer not null default 0,
  hint_until timestamptz,
  forget_asked_at timestamptz,
  code_failures integer not null default 0,
  code_failures_since timestamptz,
  updated_at timestamptz not null default now()
);
create index conversation_sender_updated on conversation_sender (updated_at);
