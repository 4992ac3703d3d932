/**
 * One-time links sent by DM (authorize an account, download an export,
 * upload an X archive).
 * The token is in the link only; the database keeps its SHA-256, so a copy
 * of the database opens nothing.
 */
import { createHash, randomBytes } from "node:crypto";
import type { Queryable } from "./types.ts";

export type WebLinkPurpose = "connect" | "export" | "archive";

export interface WebLinkGrant {
  personId: number;
  identityId: number;
  expiresAt: Date;
}

const hash = (token: string) => createHash("sha256").update(token).digest();

/** Tokens are 32 url-safe characters (192 bits). */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{32}$/;

export class WebLinks {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /** A fresh token for `identityId` (the account the link acts on). */
  async create(purpose: WebLinkPurpose, personId: number, identityId: number, ttlSeconds: number): Promise<string> {
    const token = randomBytes(24).toString("base64url");
    await this.db`
      insert into web_link (token_hash, purpose, person_id, identity_id, expires_at)
      values (${hash(token)}, ${purpose}, ${personId}, ${identityId}, now() + ${ttlSeconds} * interval '1 second')`;
    return token;
  }

  /** What a still-valid token grants, without using it up (showing a page). */
  async peek(token: string, purpose: WebLinkPurpose): Promise<WebLinkGrant | undefined> {
    if (!TOKEN_PATTERN.test(token)) return undefined;
    const [row] = await this.db<{ person_id: number; identity_id: number; expires_at: Date }[]>`
      select person_id, identity_id, expires_at from web_link
      where token_hash = ${hash(token)} and purpose = ${purpose} and used_at is null and expires_at > now()`;
    return row && { personId: row.person_id, identityId: row.identity_id, expiresAt: row.expires_at };
  }

  /** Uses a token up, atomically: of two concurrent uses only one gets the grant. */
  async consume(token: string, purpose: WebLinkPurpose): Promise<WebLinkGrant | undefined> {
    if (!TOKEN_PATTERN.test(token)) return undefined;
    // Its identity first: an unlink or a forget holds the identity and then
    // reaches its links, and what follows a use (saving an authorization)
    // locks the identity (src/store/lock-order.test.ts).
    await this.db`
      select 1 from identity i join web_link w on w.identity_id = i.id
      where w.token_hash = ${hash(token)} and w.purpose = ${purpose} for key share of i`;
    const [row] = await this.db<{ person_id: number; identity_id: number; expires_at: Date }[]>`
      update web_link set used_at = now()
      where token_hash = ${hash(token)} and purpose = ${purpose} and used_at is null and expires_at > now()
      returning person_id, identity_id, expires_at`;
    return row && { personId: row.person_id, identityId: row.identity_id, expiresAt: row.expires_at };
  }

  /** Links of `purpose` made for a person since `since` (a rate limit). */
  async countSince(personId: number, purpose: WebLinkPurpose, since: Date): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`
      select count(*)::int as n from web_link where person_id = ${personId} and purpose = ${purpose} and created_at > ${since}`;
    return row?.n ?? 0;
  }

  /** Drops expired and used links (maintenance). */
  async purge(): Promise<number> {
    const result = await this.db`delete from web_link where expires_at < now() - interval '1 day' or used_at < now() - interval '1 day'`;
    return result.count;
  }
}
