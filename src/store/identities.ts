/** Identities: (platform, stable id) → person, with handle and verification. */
import { normalizeBlueskyHandle, normalizeFediverseAcct, normalizeXUsername } from "./handles.ts";
import type { Identity, IdentityRef, Platform, Queryable, Verification } from "./types.ts";
import { VERIFICATION_RANK } from "./types.ts";

interface IdentityRow {
  id: number;
  person_id: number;
  platform: Platform;
  stable_id: string | null;
  handle: string | null;
  api_base: string | null;
  verified_by: Verification;
  created_at: Date;
  updated_at: Date;
}

function toIdentity(r: IdentityRow): Identity {
  return {
    id: r.id,
    personId: r.person_id,
    platform: r.platform,
    stableId: r.stable_id,
    handle: r.handle,
    apiBase: r.api_base,
    verifiedBy: r.verified_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** The handle as the store keeps it (see handles.ts), or the input if it does not parse. */
export function canonicalHandle(platform: Platform, handle: string): string {
  const normalized =
    platform === "fediverse"
      ? normalizeFediverseAcct(handle)
      : platform === "bluesky"
        ? normalizeBlueskyHandle(handle)
        : normalizeXUsername(handle);
  return normalized ?? handle.trim().replace(/^@/, "");
}

export interface IdentityInput {
  platform: Platform;
  stableId?: string | null;
  handle?: string | null;
  apiBase?: string | null;
  verifiedBy: Verification;
}

/** Raised when an identity already belongs to someone else. */
export class IdentityTakenError extends Error {
  readonly identity: Identity;
  constructor(identity: Identity) {
    super(`This ${identity.platform} identity already belongs to another person.`);
    this.identity = identity;
  }
}

export class Identities {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /** Looks an identity up by stable id, else by handle (case-insensitive). */
  async find(ref: IdentityRef): Promise<Identity | undefined> {
    if (ref.stableId) {
      const [row] = await this.db<IdentityRow[]>`
        select * from identity where platform = ${ref.platform} and stable_id = ${ref.stableId}`;
      if (row) return toIdentity(row);
    }
    if (ref.handle) {
      const handle = canonicalHandle(ref.platform, ref.handle);
      // A handle can be stale (Bluesky and X handles move): prefer the freshest.
      const [row] = await this.db<IdentityRow[]>`
        select * from identity
        where platform = ${ref.platform} and lower(handle) = lower(${handle})
        order by updated_at desc limit 1`;
      if (row) return toIdentity(row);
    }
    return undefined;
  }

  async get(id: number): Promise<Identity | undefined> {
    const [row] = await this.db<IdentityRow[]>`select * from identity where id = ${id}`;
    return row && toIdentity(row);
  }

  async listForPerson(personId: number): Promise<Identity[]> {
    const rows = await this.db<IdentityRow[]>`
      select * from identity where person_id = ${personId} order by platform, id`;
    return rows.map(toIdentity);
  }

  /**
   * Attaches an identity to a person, or refreshes it if it is already theirs
   * (handle, API base, and a stronger verification; never a weaker one).
   * A fediverse identity known only by its acct gains its actor URI here.
   * An identity held by someone else is only taken over from an archive claim
   * by a stronger proof; otherwise this throws `IdentityTakenError`.
   */
  async attach(personId: number, input: IdentityInput): Promise<Identity> {
    const handle = input.handle ? canonicalHandle(input.platform, input.handle) : null;
    let existing = await this.find({ platform: input.platform, stableId: input.stableId, handle: input.stableId ? null : handle });
    if (!existing && input.platform === "fediverse" && handle) {
      // an acct-only row waiting for its actor URI
      const [row] = await this.db<IdentityRow[]>`
        select * from identity where platform = 'fediverse' and lower(handle) = lower(${handle})`;
      if (row && (row.stable_id === null || row.stable_id === input.stableId)) existing = toIdentity(row);
    }
    if (existing && existing.personId !== personId) {
      const stronger = VERIFICATION_RANK[input.verifiedBy] > VERIFICATION_RANK[existing.verifiedBy];
      if (!(existing.verifiedBy === "archive" && stronger)) throw new IdentityTakenError(existing);
    }
    if (existing) {
      const verifiedBy =
        existing.personId !== personId || VERIFICATION_RANK[input.verifiedBy] > VERIFICATION_RANK[existing.verifiedBy]
          ? input.verifiedBy
          : existing.verifiedBy;
      const [row] = await this.db<IdentityRow[]>`
        update identity set
          person_id = ${personId},
          stable_id = coalesce(${input.stableId ?? null}, stable_id),
          handle = coalesce(${handle}, handle),
          api_base = coalesce(${input.apiBase ?? null}, api_base),
          verified_by = ${verifiedBy},
          -- Leaving an archive claim is when the identity arrives (announcements).
          verified_at = case when verified_by = 'archive' and ${verifiedBy}::verification <> 'archive' then now() else verified_at end,
          updated_at = now()
        where id = ${existing.id}
        returning *`;
      return toIdentity(row!);
    }
    const [row] = await this.db<IdentityRow[]>`
      insert into identity (person_id, platform, stable_id, handle, api_base, verified_by)
      values (${personId}, ${input.platform}, ${input.stableId ?? null}, ${handle},
              ${input.apiBase ?? null}, ${input.verifiedBy})
      returning *`;
    return toIdentity(row!);
  }

  /** Keeps a handle current (Bluesky handles and X usernames change). */
  async updateHandle(id: number, handle: string): Promise<void> {
    await this.db`
      update identity set handle = ${handle}, updated_at = now()
      where id = ${id} and handle is distinct from ${handle}`;
  }

  /** Detaches one identity; its authorization goes with it. */
  async remove(id: number): Promise<boolean> {
    const result = await this.db`delete from identity where id = ${id}`;
    return result.count > 0;
  }
}
