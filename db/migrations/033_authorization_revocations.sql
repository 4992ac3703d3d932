-- Authorizations the service lets go of — `forget`, `unlink`, a Move away
-- from the account, an account a registry import replaced, a grant given
-- again — wait here until the reconnection workers have revoked them at
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
  -- See account_authorization.token_digest.
  token_digest text,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  created_at timestamptz not null default now()
);
create index authorization_revocation_due on authorization_revocation (next_attempt_at);
create index authorization_revocation_token on authorization_revocation (token_digest) where token_digest is not null;

-- A keyed digest (HMAC with SECRET_KEY) of a bearer token that a server may
-- hand out again: Mastodon reuses an access token for the same account and
-- app while it is valid. A token given again must not be revoked by a
-- revocation still waiting for it.
alter table account_authorization add column token_digest text;
create index account_authorization_token on account_authorization (token_digest) where token_digest is not null;
