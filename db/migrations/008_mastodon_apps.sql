-- Mastodon OAuth apps: one per instance (POST /api/v1/apps), registered on
-- first use and reused for every person on that instance. The instance is
-- its origin lower-cased (`https://mastodon.social`); the client secret is
-- sealed with SECRET_KEY (context `mastodon-app:<instance>`).
create table mastodon_app (
  instance text primary key check (instance = lower(instance)),
  client_id text not null,
  client_secret_sealed bytea not null,
  redirect_uri text not null,
  -- The scopes the instance accepted for the app (space-separated); old
  -- instances only take `read write follow`.
  scopes text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
