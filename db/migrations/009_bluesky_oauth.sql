-- Bluesky OAuth (ATProto OAuth, @atproto/oauth-client-node): what the client
-- keeps between requests and across replicas. Every secret is sealed with
-- SECRET_KEY (src/store/secrets.ts): DPoP keys, PKCE verifiers, tokens and the
-- client's own signing key are credentials.

-- The client's private signing key(s) for private_key_jwt client
-- authentication. Generated once and shared by every replica; the public parts
-- are served at /oauth/bluesky/jwks.json. One key is active (used to sign);
-- keeping retired ones published lets a rotation finish without breaking
-- sessions bound to them.
create table bluesky_oauth_key (
  kid text primary key,
  private_jwk bytea not null,
  active boolean not null default true,
  created_at timestamptz not null default now()
);
create unique index bluesky_oauth_key_one_active on bluesky_oauth_key (active) where active;

-- Authorization flows under way, keyed by the OAuth "state" parameter: short
-- lived, removed when the callback consumes them or when they expire.
create table bluesky_oauth_state (
  key text primary key,
  payload bytea not null,
  expires_at timestamptz not null
);
create index bluesky_oauth_state_expires on bluesky_oauth_state (expires_at);

-- One OAuth session per Bluesky account (DID). Tied to the identity row of
-- that DID, so deleting the identity (or the person, or linking it away)
-- deletes the session. A session stored before the identity exists (the
-- callback runs before the app records who authorized) is attached by the
-- trigger below as soon as the identity appears, and pruned if it never does.
create table bluesky_oauth_session (
  did text primary key check (did ~ '^did:[a-z]+:[a-zA-Z0-9._:%-]+$'),
  identity_id integer references identity (id) on delete cascade,
  payload bytea not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index bluesky_oauth_session_identity on bluesky_oauth_session (identity_id);
create index bluesky_oauth_session_unattached on bluesky_oauth_session (updated_at) where identity_id is null;

create function bluesky_oauth_session_attach() returns trigger language plpgsql as $$
begin
  update bluesky_oauth_session set identity_id = new.id
   where did = new.stable_id and identity_id is distinct from new.id;
  return null;
end;
$$;

create trigger identity_attach_bluesky_oauth_session
  after insert or update of stable_id, platform on identity
  for each row when (new.platform = 'bluesky' and new.stable_id is not null)
  execute function bluesky_oauth_session_attach();

-- Leases serialising token refreshes per account across processes: a refresh
-- token is single-use, so two replicas refreshing at once would lose the
-- session. A lease that outlives its holder (crash) expires by itself.
create table bluesky_oauth_lock (
  name text primary key,
  holder text not null,
  expires_at timestamptz not null
);
