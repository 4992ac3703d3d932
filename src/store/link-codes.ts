/**
 * Link codes: short, single-use, expiring codes that bind an identity to a
 * person. Only a SHA-256 of each code is stored; redeeming is one atomic
 * update, so a code cannot be used twice even by two processes at once.
 */
import { createHash, randomInt } from "node:crypto";
import type { Platform, Queryable } from "./types.ts";

// No 0/O, 1/I/L: codes are read on one screen and typed on another.
const ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const CODE_LENGTH = 8; // 31^8 ≈ 8.5e11 codes

export interface LinkCodeGrant {
  personId: number;
  platform: Platform | null;
  handle: string | null;
}

/** Upper-cases and drops separators people add (`abcd-efgh` → `ABCDEFGH`). */
export function normalizeLinkCode(input: string): string {
  return input.toUpperCase().replace(/[\s-]/g, "");
}

function hash(code: string): Buffer {
  return createHash("sha256").update(normalizeLinkCode(code)).digest();
}

export class LinkCodes {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /** Makes a fresh code for `personId`, optionally meant for one identity. */
  async create(
    personId: number,
    options: { ttlSeconds?: number; platform?: Platform | null; handle?: string | null } = {},
  ): Promise<{ code: string; expiresAt: Date }> {
    let code = "";
    for (let i = 0; i < CODE_LENGTH; i++) code += ALPHABET[randomInt(ALPHABET.length)];
    const ttl = options.ttlSeconds ?? 15 * 60;
    const [row] = await this.db<{ expires_at: Date }[]>`
      insert into link_code (code_hash, person_id, platform, handle, expires_at)
      values (${hash(code)}, ${personId}, ${options.platform ?? null}, ${options.handle ?? null},
              now() + ${ttl} * interval '1 second')
      returning expires_at`;
    return { code, expiresAt: row!.expires_at };
  }

  /** Whose code this is, if it can still be used (read without locking it). */
  async ownerOf(code: string): Promise<number | undefined> {
    const [row] = await this.db<{ person_id: number }[]>`
      select person_id from link_code where code_hash = ${hash(code)} and used_at is null and expires_at > now()`;
    return row?.person_id;
  }

  /** Uses a code up; undefined when unknown, used or expired. */
  async redeem(code: string): Promise<LinkCodeGrant | undefined> {
    const [row] = await this.db<{ person_id: number; platform: Platform | null; handle: string | null }[]>`
      update link_code set used_at = now()
      where code_hash = ${hash(code)} and used_at is null and expires_at > now()
      returning person_id, platform, handle`;
    return row && { personId: row.person_id, platform: row.platform, handle: row.handle };
  }

  /** How many codes a person made since `since` (for rate limiting). */
  async countSince(personId: number, since: Date): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`
      select count(*)::int as n from link_code where person_id = ${personId} and created_at >= ${since}`;
    return row!.n;
  }

  /** Drops codes expired for more than a day. */
  async purgeExpired(): Promise<number> {
    const result = await this.db`delete from link_code where expires_at < now() - interval '1 day'`;
    return result.count;
  }
}
