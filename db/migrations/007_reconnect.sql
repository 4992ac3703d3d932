-- Reconnection: one job per (person, platform) request, one row per target
-- with its outcome, and the one-time links the bots hand out in DMs.

create table reconnect_job (
  id integer generated always as identity primary key,
  person_id integer not null references person (id) on delete cascade,
  platform text not null check (platform in ('bluesky', 'fediverse')),
  -- queued: waiting for a worker; running: a worker holds it;
  -- waiting: resumes at wait_until (budget, rate limit);
  -- needs_authorization: paused until the person authorizes (again);
  -- done / cancelled: finished.
  state text not null default 'queued'
    check (state in ('queued', 'running', 'waiting', 'needs_authorization', 'done', 'cancelled')),
  -- What was asked, for the reports: 'all', 'first', 'named'.
  request text not null check (request in ('all', 'first', 'named')),
  -- The identity whose DM channel gets the progress and the summary.
  notify_identity_id integer references identity (id) on delete set null,
  reason text,
  wait_until timestamptz,
  attempts integer not null default 0,
  progress_sent_at timestamptz,
  summary_sent_at timestamptz,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  updated_at timestamptz not null default now()
);
-- At most one open job per person and platform: a new request joins it.
create unique index reconnect_job_open on reconnect_job (person_id, platform)
  where state not in ('done', 'cancelled');
create index reconnect_job_unfinished on reconnect_job (state) where state not in ('done', 'cancelled');

create table reconnect_target (
  job_id integer not null references reconnect_job (id) on delete cascade,
  target_person_id integer not null references person (id) on delete cascade,
  -- Order asked (list order for `reconnect N`).
  position integer not null,
  -- Set by a writer before its network write (Bluesky rkey, Mastodon account
  -- id): how a later run recognises a follow a dead run already made.
  marker text,
  outcome text check (outcome in
    ('followed', 'requested', 'already_following', 'not_found', 'gone', 'blocked', 'failed')),
  reason text,
  done_at timestamptz,
  primary key (job_id, target_person_id)
);
create index reconnect_target_todo on reconnect_target (job_id, position) where outcome is null;
create index reconnect_target_person on reconnect_target (target_person_id);

-- One-time links sent by DM: connect (authorize an account) and export
-- (Mastodon's following_accounts.csv). Only a hash of the token is kept.
create table web_link (
  token_hash bytea primary key,
  purpose text not null check (purpose in ('connect', 'export')),
  person_id integer not null references person (id) on delete cascade,
  identity_id integer not null references identity (id) on delete cascade,
  expires_at timestamptz not null,
  used_at timestamptz,
  created_at timestamptz not null default now()
);
create index web_link_person on web_link (person_id);
