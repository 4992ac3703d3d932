-- The Bluesky bot's own state, shared by every process that runs it.
-- bluesky_account: per bot account (DID, or the configured handle before the
-- first login), the saved session (sealed with SECRET_KEY: access and refresh
-- tokens are credentials) so a restart resumes it instead of logging in again,
-- and where the bot has got to in its notifications and in the chat log.
create table bluesky_account (
  account text primary key,
  session bytea,
  notifications_seen_at timestamptz,
  chat_cursor text,
  profile_version integer not null default 0,
  updated_at timestamptz not null default now()
);

-- Every mention and chat message the bot took on, so that an event seen twice
-- (overlapping polls, a restart, two replicas) is answered once. A claim that
-- was never completed (the process died mid-answer) can be taken again after
-- a while.
create table bluesky_event (
  account text not null,
  event_id text not null,
  kind text not null check (kind in ('mention', 'chat')),
  state text not null check (state in ('claimed', 'done', 'skipped')),
  claimed_at timestamptz not null default now(),
  done_at timestamptz,
  primary key (account, event_id)
);
create index bluesky_event_done on bluesky_event (done_at);
