/**
 * Authorizations waiting to be revoked at their servers: every grant the
 * service lets go of — `forget` and `unlink` (drained at once, while the
 * person waits), a `Move` away from the account, an account a registry
 * import replaced, a grant given again. The reconnection workers drain this
 * outbox (src/reconnect/revocations.ts), again later for a server that did
 * not answer. Rows keep their payloads sealed exactly as they were, with what they were
 * sealed to, so moving them needs no key and nothing is readable at rest.
 * Schema: db/migrations/033_authorization_revocations.sql.
 */
import type { NodeSavedSession } from "@atproto/oauth-client-node";
import { authorizationContext, type AuthorizationKind } from "./authorizations.ts";
import { sessionContext } from "./bluesky-oauth.ts";
import type { SecretBox } from "./secrets.ts";
import type { Queryable } from "./types.ts";

/** Attempts before a revocation is given up (backoff 1 min doubling to 6 h: about a day). */
export const MAX_REVOCATION_ATTEMPTS = 12;

/** One authorization to revoke, as claimed: opened, or `unreadable` (sealed under another key). */
export type PendingRevocation = {
  id: number;
  kind: AuthorizationKind;
  /** This attempt's number, from 1. */
  attempt: number;
} & (
  | {
      unreadable: false;
      /** The authorization's data, as `Authorizations.get` gave it. */
      data: unknown;
      /** A Bluesky OAuth grant's session (tokens, DPoP key); undefined for other kinds or when none was stored. */
      blueskySession: NodeSavedSession | undefined;
    }
  | { unreadable: true }
);

export class Revocations {
  private readonly db: Queryable;
  private readonly box: SecretBox;
  constructor(db: Queryable, box: SecretBox) {
    this.db = db;
    this.box = box;
  }

  /** See {@link retireAuthorizations}. */
  retire(identityIds: readonly number[], options: { kinds?: readonly AuthorizationKind[] } = {}): Promise<number[]> {
    return retireAuthorizations(this.db, identityIds, options);
  }

  /**
   * Claims up to `limit` revocations that are due (of `only`, when given):
   * each is leased until its next attempt (a minute, doubling to six hours),
   * so a worker that dies mid-way leaves it to be tried again then, and two
   * workers never take the same one. A token in use again (the server handed
   * it out anew) is not to be revoked: its row goes first. A row that does
   * not open (sealed under another `SECRET_KEY`: this replica's, or the
   * row's, is wrong) comes back `unreadable`, left for its attempts.
   */
  async claimDue(limit = 20, only?: readonly number[]): Promise<PendingRevocation[]> {
    await this.db`
      delete from authorization_revocation r
      where r.token_digest is not null
        and exists (select 1 from account_authorization a where a.token_digest = r.token_digest)`;
    const rows = await this.db<
      { id: string; kind: AuthorizationKind; identity_id: number; payload: Buffer; session_did: string | null; session_payload: Buffer | null; attempts: number }[]
    >`
      update authorization_revocation r
      set attempts = r.attempts + 1,
        next_attempt_at = now() + least(interval '1 minute' * power(2, r.attempts), interval '6 hours')
      where r.id in (
        select id from authorization_revocation
        where next_attempt_at <= now() ${only ? this.db`and id = any(${only.map(Number)}::bigint[])` : this.db``}
        order by next_attempt_at, id limit ${limit} for update skip locked)
      returning r.id, r.kind, r.identity_id, r.payload, r.session_did, r.session_payload, r.attempts`;
    return rows.map((row) => {
      const claimed = { id: Number(row.id), kind: row.kind, attempt: row.attempts };
      try {
        return {
          ...claimed,
          data: JSON.parse(this.box.open(row.payload, authorizationContext(row.identity_id))) as unknown,
          blueskySession:
            row.session_did && row.session_payload
              ? (JSON.parse(this.box.open(row.session_payload, sessionContext(row.session_did))) as NodeSavedSession)
              : undefined,
          unreadable: false as const,
        };
      } catch {
        return { ...claimed, unreadable: true as const };
      }
    });
  }

  /** Forgets a revocation: done, or given up. */
  async done(id: number): Promise<void> {
    await this.db`delete from authorization_revocation where id = ${id}`;
  }

  /** Revocations waiting (for `stats` and tests). */
  async count(): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`select count(*)::int as n from authorization_revocation`;
    return row?.n ?? 0;
  }
}

/**
 * Moves the authorizations of `identityIds` (a Bluesky OAuth grant with its
 * session) into the revocation outbox, out of the identities' reach; the
 * caller deletes the identities next, or saves new grants for them. Only
 * grants of `kinds`, when given. One statement, so a grant saved meanwhile
 * is either moved or left, never deleted unrecorded. Needs no key
 * (payloads move sealed). Returns the ids of the revocations queued.
 */
export async function retireAuthorizations(
  db: Queryable,
  identityIds: readonly number[],
  options: { kinds?: readonly AuthorizationKind[] } = {},
): Promise<number[]> {
  if (identityIds.length === 0) return [];
  const ids = identityIds.map(Number);
  const kinds = [...(options.kinds ?? ["bluesky-oauth", "bluesky-app-password", "mastodon-oauth"])];
  const queued = await db<{ id: string }[]>`
    with gone as (
      delete from account_authorization
      where identity_id = any(${ids}::int[]) and kind = any(${kinds}::text[])
      returning identity_id, kind, payload, token_digest),
    sessions as (
      delete from bluesky_oauth_session s using gone g
      where g.kind = 'bluesky-oauth' and s.identity_id = g.identity_id
      returning s.identity_id, s.did, s.payload)
    insert into authorization_revocation (kind, identity_id, payload, token_digest, session_did, session_payload)
    select g.kind, g.identity_id, g.payload, g.token_digest, s.did, s.payload
    from gone g left join sessions s on s.identity_id = g.identity_id
    returning id`;
  return queued.map((r) => Number(r.id));
}
