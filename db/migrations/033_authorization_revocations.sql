-- Authorizations the store lets go of without the person asking — a Move
-- leaves the old account's token behind, a registry import replaces an
-- account — wait here until the reconnection workers have revoked them at
-- their servers (src/store/revocations.ts). Payloads are moved as they were
-- sealed, with what they were sealed to (the identity's id, the DID), so
-- nothing is ever readable at rest. No foreign key: the identity may be gone.
create table authorization_revocation (
  id bigserial primary key,
  kind text not null check (kind in ('bluesky-oauth', 'bluesky-app-password', 'mastodon-oauth')),
  identity_id integer not null,
  payload bytea not null,
  -- A Bluesky OAuth grant's session (its tokens and DPoP key), sealed to its DID.
  session_did text,
  session_payload bytea,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  created_at timestamptz not null default now()
);
create index authorization_revocation_due on authorization_revocation (next_attempt_at);
