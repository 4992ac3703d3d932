-- The shared graph store: people, their identities, X follow edges, matches,
-- link codes and (encrypted) authorizations.

create table person (
  id integer generated always as identity primary key,
  -- null: detect from each message, else DEFAULT_LANGUAGE
  language text check (language ~ '^[a-z]{2}$'),
  notify boolean not null default true,
  auto_reconnect boolean not null default false,
  announce_me boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- How an identity became known, strongest first. An 'archive' identity was
-- only claimed by an uploaded X archive: it serves its uploader's own matching
-- and is never offered to anybody else as a match target.
create type verification as enum ('platform', 'dm', 'archive');

create table identity (
  id integer generated always as identity primary key,
  person_id integer not null references person (id) on delete cascade,
  platform text not null check (platform in ('x', 'bluesky', 'fediverse')),
  -- x: numeric account id; bluesky: DID; fediverse: actor URI.
  -- May be null for a fediverse account known only by its acct until it writes.
  stable_id text,
  -- x: username; bluesky: handle; fediverse: acct user@host (host lower-cased)
  handle text,
  -- fediverse: the instance's API base URL (where its Mastodon API lives)
  api_base text,
  verified_by verification not null,
  x_id bigint generated always as (case when platform = 'x' then stable_id::bigint end) stored,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check (stable_id is not null or handle is not null),
  check (platform <> 'x' or stable_id ~ '^[1-9][0-9]{0,18}$'),
  check (platform <> 'bluesky' or stable_id ~ '^did:[a-z]+:[a-zA-Z0-9._:%-]+$'),
  unique (platform, stable_id)
);
create index identity_person on identity (person_id);
create index identity_handle on identity (platform, lower(handle));
create unique index identity_fediverse_acct on identity (lower(handle)) where platform = 'fediverse';
create unique index identity_x_id on identity (x_id) include (person_id, verified_by) where x_id is not null;

-- Who followed whom on X, deduplicated. Both directions are indexed: a
-- person's followings (matching) and an account's followers (fan-out).
create table x_follow (
  follower bigint not null,
  followed bigint not null,
  primary key (follower, followed),
  check (follower > 0 and followed > 0)
);
create index x_follow_followed on x_follow (followed, follower);

-- Person P followed person T on X, and T has a verified identity on platform.
-- Materialized so that reading a person's matches never touches x_follow.
create type match_state as enum ('pending', 'followed', 'already_following', 'failed', 'ignored');

create table match (
  person_id integer not null references person (id) on delete cascade,
  platform text not null check (platform in ('bluesky', 'fediverse')),
  target_person_id integer not null references person (id) on delete cascade,
  state match_state not null default 'pending',
  reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (person_id, platform, target_person_id),
  check (person_id <> target_person_id)
);
create index match_target on match (target_person_id);

-- Single-use, expiring codes that bind another identity to a person. Only a
-- hash of the code is kept.
create table link_code (
  code_hash bytea primary key,
  person_id integer not null references person (id) on delete cascade,
  -- the identity the code is meant to be redeemed from, when known
  platform text check (platform in ('x', 'bluesky', 'fediverse')),
  handle text,
  expires_at timestamptz not null,
  used_at timestamptz,
  created_at timestamptz not null default now()
);
create index link_code_person on link_code (person_id);

-- What lets the service act for a person on one of their accounts. The
-- payload is AES-256-GCM ciphertext (store/secrets.ts): nothing in plain text.
create table account_authorization (
  identity_id integer primary key references identity (id) on delete cascade,
  kind text not null check (kind in ('bluesky-oauth', 'bluesky-app-password', 'mastodon-oauth')),
  payload bytea not null,
  expires_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
