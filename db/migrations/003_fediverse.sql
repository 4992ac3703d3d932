-- The fediverse bot (bots/fediverse/): Fedify's key–value store and message
-- queue, the bot's key pairs, its followers, and the notes it has handled.

-- Fedify's key–value store (@fedify/postgres PostgresKvStore's table, created
-- here as an ordinary logged table so that a crash keeps it).
create table if not exists fedify_kv_v2 (
  key text[] primary key,
  value jsonb not null,
  created timestamptz default current_timestamp,
  ttl interval
);

-- Fedify's message queues (inbox, outbox, fanout). A worker leases a row
-- (locked_until) and deletes it only once handled: a process that stops or
-- dies mid-task leaves the row to be taken again.
create table fediverse_queue (
  id bigserial primary key,
  queue text not null,
  message jsonb not null,
  run_at timestamptz not null default now(),
  locked_until timestamptz,
  attempts integer not null default 0,
  created_at timestamptz not null default now()
);
create index fediverse_queue_next on fediverse_queue (queue, run_at, id);

-- The bot actor's key pairs, generated once; private keys sealed with SECRET_KEY.
create table fediverse_key (
  username text not null,
  algorithm text not null check (algorithm in ('RSASSA-PKCS1-v1_5', 'Ed25519')),
  public_jwk jsonb not null,
  private_sealed bytea not null,
  created_at timestamptz not null default now(),
  primary key (username, algorithm)
);

-- Accounts following the bot.
create table fediverse_follower (
  actor_uri text primary key,
  inbox text not null,
  shared_inbox text,
  follow_id text,
  created_at timestamptz not null default now()
);

-- Each note handled once, whatever redelivery, replay or Update comes later.
create table fediverse_inbound (
  note_id text primary key,
  activity_id text,
  actor_uri text not null,
  received_at timestamptz not null default now()
);
create index fediverse_inbound_received on fediverse_inbound (received_at);
