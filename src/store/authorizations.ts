/**
 * Authorizations (OAuth sessions, app passwords, tokens) per identity,
 * sealed with AES-256-GCM before they reach the database.
 */
import type { SecretBox } from "./secrets.ts";
import type { Queryable } from "./types.ts";

export type AuthorizationKind = "bluesky-oauth" | "bluesky-app-password" | "mastodon-oauth";

export interface Authorization<T = unknown> {
  identityId: number;
  kind: AuthorizationKind;
  data: T;
  expiresAt: Date | null;
  /** Which grant this is (see `grant`): what a renewal names. */
  grant: string;
}

/** An authorization as an operator may see it. */
export interface AuthorizationInfo {
  kind: AuthorizationKind;
  grantedAt: Date;
  expiresAt: Date | null;
}

/** What an authorization's payload is sealed to: its identity (a payload moved to another identity does not open). */
export const authorizationContext = (identityId: number) => `identity:${identityId}`;
const context = authorizationContext;

export class Authorizations {
  private readonly db: Queryable;
  private readonly box: SecretBox;
  constructor(db: Queryable, box: SecretBox) {
    this.db = db;
    this.box = box;
  }

  /**
   * Stores a new grant by the person (replacing any earlier one). A token
   * the server handed out again (Mastodon reuses a valid one) is in use:
   * a revocation still waiting for it is dropped.
   */
  async save<T>(identityId: number, kind: AuthorizationKind, data: T, expiresAt: Date | null = null): Promise<void> {
    const payload = this.box.seal(JSON.stringify(data), context(identityId));
    const digest = this.tokenDigest(kind, data);
    await this.db`
      insert into account_authorization (identity_id, kind, payload, expires_at, token_digest)
      values (${identityId}, ${kind}, ${payload}, ${expiresAt}, ${digest})
      on conflict (identity_id) do update set
        kind = excluded.kind, payload = excluded.payload, expires_at = excluded.expires_at,
        token_digest = excluded.token_digest, updated_at = now(), granted_at = now()`;
    if (digest) await this.db`delete from authorization_revocation where token_digest = ${digest}`;
  }

  /** The keyed digest of a grant's reusable bearer token (Mastodon's access token); null for other kinds. */
  tokenDigest(kind: AuthorizationKind, data: unknown): string | null {
    const token = kind === "mastodon-oauth" ? (data as { accessToken?: unknown } | null)?.accessToken : undefined;
    return typeof token === "string" ? this.box.digest(token, "mastodon-access-token") : null;
  }

  /**
   * Stores `grant` refreshed by the service (a new session for the same
   * grant, which keeps its grant time) — only while it is still the stored
   * grant: a job's refresh never overwrites a grant the person gave since,
   * nor brings back one deleted (unlink, forget). True when stored.
   */
  async renew<T>(identityId: number, grant: string, kind: AuthorizationKind, data: T, expiresAt: Date | null = null): Promise<boolean> {
    const payload = this.box.seal(JSON.stringify(data), context(identityId));
    const result = await this.db`
      update account_authorization set kind = ${kind}, payload = ${payload}, expires_at = ${expiresAt}, updated_at = now()
      where identity_id = ${identityId} and ${this.grantToken()} = ${grant}`;
    return result.count > 0;
  }

  /**
   * Which grant is stored (an opaque token: its grant time in microseconds,
   * which a JavaScript Date would round); undefined when there is none.
   */
  async grant(identityId: number): Promise<string | undefined> {
    const [row] = await this.db<{ grant: string }[]>`
      select ${this.grantToken()} as grant from account_authorization where identity_id = ${identityId}`;
    return row?.grant;
  }

  /** Deletes the authorization if it is still `grant` (not one given since); true when deleted. */
  async deleteGrant(identityId: number, grant: string): Promise<boolean> {
    const result = await this.db`
      delete from account_authorization where identity_id = ${identityId} and ${this.grantToken()} = ${grant}`;
    return result.count > 0;
  }

  /** A grant's token: its grant time in microseconds, as text. */
  private grantToken() {
    return this.db`(extract(epoch from granted_at) * 1000000)::bigint::text`;
  }

  /** What a person has authorized, per identity id: kinds and dates only, never the sealed payload. */
  async describeForPerson(personId: number): Promise<Map<number, AuthorizationInfo>> {
    const rows = await this.db<{ identity_id: number; kind: AuthorizationKind; granted_at: Date; expires_at: Date | null }[]>`
      select a.identity_id, a.kind, a.granted_at, a.expires_at
      from account_authorization a join identity i on i.id = a.identity_id
      where i.person_id = ${personId}`;
    return new Map(rows.map((r) => [r.identity_id, { kind: r.kind, grantedAt: r.granted_at, expiresAt: r.expires_at }]));
  }

  async get<T>(identityId: number): Promise<Authorization<T> | undefined> {
    const [row] = await this.db<{ kind: AuthorizationKind; payload: Buffer; expires_at: Date | null; grant: string }[]>`
      select kind, payload, expires_at, ${this.grantToken()} as grant from account_authorization where identity_id = ${identityId}`;
    if (!row) return undefined;
    return {
      identityId,
      kind: row.kind,
      data: JSON.parse(this.box.open(row.payload, context(identityId))) as T,
      expiresAt: row.expires_at,
      grant: row.grant,
    };
  }

  async delete(identityId: number): Promise<boolean> {
    const result = await this.db`delete from account_authorization where identity_id = ${identityId}`;
    return result.count > 0;
  }
}
