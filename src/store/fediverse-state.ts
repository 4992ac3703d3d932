/**
 * What the fediverse bot keeps besides Fedify's own tables: its key pairs
 * (private halves sealed), its followers, the notes it has handled (so a
 * redelivered, replayed or edited note is never answered twice), its public
 * posts (served at their ids and in its outbox), and the identity changes
 * the fediverse announces (Move, Delete of an actor).
 */
import { randomUUID, type webcrypto } from "node:crypto";
import type postgres from "postgres";
import { Authorizations } from "./authorizations.ts";
import { lockEdgesBeforePeople } from "./lock-order.ts";
import { openHeld, sealHeld } from "./held-replies.ts";
import { retireAuthorizations } from "./revocations.ts";
import type { SecretBox } from "./secrets.ts";
import type { Queryable } from "./types.ts";

export interface StoredKeyPair {
  algorithm: "RSASSA-PKCS1-v1_5" | "Ed25519";
  publicJwk: webcrypto.JsonWebKey;
  privateJwk: webcrypto.JsonWebKey;
}

export interface Follower {
  actorUri: string;
  inbox: string;
  sharedInbox: string | null;
}

/** A public post of the bot, as it is served. */
export interface PublicNote {
  id: string;
  /** HTML */
  content: string;
  mentions: { href: string; name: string }[];
  published: Date;
}

/** The claim on a note is no longer the caller's: another worker took it over. */
export class NoteClaimLostError extends Error {
  constructor(noteId: string) {
    super(`the claim on note ${noteId} was taken over by another worker`);
    this.name = "NoteClaimLostError";
  }
}

/** What a note's saved replies are sealed to: they open for that note only. */
const repliesContext = (noteId: string) => `fediverse-note-replies:${noteId}`;

export class FediverseState {
  private readonly db: Queryable;
  private readonly box: SecretBox;
  constructor(db: Queryable, box: SecretBox) {
    this.db = db;
    this.box = box;
  }

  async keyPairs(username: string): Promise<StoredKeyPair[]> {
    const rows = await this.db<{ algorithm: StoredKeyPair["algorithm"]; public_jwk: webcrypto.JsonWebKey; private_sealed: Buffer }[]>`
      select algorithm, public_jwk, private_sealed from fediverse_key
      where username = ${username} order by algorithm desc`;
    return rows.map((r) => ({
      algorithm: r.algorithm,
      publicJwk: r.public_jwk,
      privateJwk: JSON.parse(this.box.open(r.private_sealed, `fediverse-key:${username}:${r.algorithm}`)) as webcrypto.JsonWebKey,
    }));
  }

  /** Saves a key pair unless one exists for that algorithm; returns the one kept. */
  async saveKeyPair(username: string, pair: StoredKeyPair): Promise<void> {
    const sealed = this.box.seal(JSON.stringify(pair.privateJwk), `fediverse-key:${username}:${pair.algorithm}`);
    await this.db`
      insert into fediverse_key (username, algorithm, public_jwk, private_sealed)
      values (${username}, ${pair.algorithm}, ${this.db.json(pair.publicJwk as never)}, ${sealed})
      on conflict do nothing`;
  }

  async addFollower(follower: Follower & { followId: string | null }): Promise<void> {
    await this.db`
      insert into fediverse_follower (actor_uri, inbox, shared_inbox, follow_id)
      values (${follower.actorUri}, ${follower.inbox}, ${follower.sharedInbox}, ${follower.followId})
      on conflict (actor_uri) do update set inbox = excluded.inbox, shared_inbox = excluded.shared_inbox,
        follow_id = excluded.follow_id`;
  }

  async removeFollower(actorUri: string): Promise<boolean> {
    const result = await this.db`delete from fediverse_follower where actor_uri = ${actorUri}`;
    return result.count > 0;
  }

  /** Followers in a stable order, `limit` from `offset` (null: every one, what a post to the followers goes to). */
  async followers(offset = 0, limit: number | null = 100): Promise<Follower[]> {
    const rows = await this.db<{ actor_uri: string; inbox: string; shared_inbox: string | null }[]>`
      select actor_uri, inbox, shared_inbox from fediverse_follower
      order by created_at, actor_uri offset ${offset} limit ${limit}`;
    return rows.map((r) => ({ actorUri: r.actor_uri, inbox: r.inbox, sharedInbox: r.shared_inbox }));
  }

  async followerCount(): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`select count(*)::int as n from fediverse_follower`;
    return row?.n ?? 0;
  }

  async savePublicNote(note: PublicNote): Promise<void> {
    await this.db`
      insert into fediverse_public_note (id, content, mentions, published)
      values (${note.id}, ${note.content}, ${this.db.json(note.mentions as never)}, ${note.published})
      on conflict (id) do nothing`;
  }

  /**
   * A public post by id, as served; undefined for anything else (a direct
   * message is never one) and for a post withdrawn (`withdrawn`: those too).
   */
  async publicNote(id: string, options: { withdrawn?: boolean } = {}): Promise<PublicNote | undefined> {
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
    const [row] = await this.db<PublicNote[]>`
      select id, content, mentions, published from fediverse_public_note
      where id = ${id} and (withdrawn_at is null or ${options.withdrawn ?? false})`;
    return row;
  }

  /** Public posts served, newest first, `limit` from `offset`. */
  async publicNotes(offset = 0, limit = 20): Promise<PublicNote[]> {
    return this.db<PublicNote[]>`
      select id, content, mentions, published from fediverse_public_note where withdrawn_at is null
      order by published desc, id desc offset ${offset} limit ${limit}`;
  }

  async deletePublicNote(id: string): Promise<void> {
    await this.db`delete from fediverse_public_note where id = ${id}::uuid`;
  }

  async publicNoteCount(): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`select count(*)::int as n from fediverse_public_note where withdrawn_at is null`;
    return row?.n ?? 0;
  }

  /**
   * Claims a note for handling. `new`: first sight, handle it. `resume`: a
   * claim whose holder stopped renewing it (older than `leaseSeconds`), or
   * released by a failed try, taken over — with the replies it saved, if any,
   * and how many tries failed. `answered`: done already. `busy`: another
   * worker holds a live claim; try again later. A claim taken comes with a
   * token that is the holder's alone: renew it (`renewNote`) while working,
   * and pass it to every later step.
   */
  async claimNote(
    noteId: string,
    activityId: string | null,
    actorUri: string,
    leaseSeconds = 120,
  ): Promise<
    | { status: "new"; token: string }
    | { status: "resume"; token: string; replies: string[] | null; failures: number }
    | { status: "answered" }
    | { status: "busy" }
  > {
    const token = randomUUID();
    const [taken] = await this.db<{ inserted: boolean; replies: unknown; failures: number }[]>`
      insert into fediverse_inbound (note_id, activity_id, actor_uri, claim_token)
      values (${noteId}, ${activityId}, ${actorUri}, ${token})
      on conflict (note_id) do update set claimed_at = now(), claim_token = excluded.claim_token
        where fediverse_inbound.answered_at is null
          and fediverse_inbound.claimed_at < now() - ${leaseSeconds} * interval '1 second'
      returning (xmax = 0) as inserted, replies, failures`;
    if (taken) return taken.inserted ? { status: "new", token } : { status: "resume", token, replies: this.openReplies(noteId, taken.replies), failures: taken.failures };
    const [row] = await this.db<{ answered: boolean }[]>`
      select answered_at is not null as answered from fediverse_inbound where note_id = ${noteId}`;
    return row?.answered === false ? { status: "busy" } : { status: "answered" };
  }

  /** Renews the holder's claim on a note (heartbeat); false when it is no longer the holder's. */
  async renewNote(noteId: string, token: string): Promise<boolean> {
    const result = await this.db`
      update fediverse_inbound set claimed_at = now()
      where note_id = ${noteId} and claim_token = ${token} and answered_at is null`;
    return result.count > 0;
  }

  /**
   * A try at the note failed: counted, and its claim released at once (the
   * next delivery of it takes it up) — unless `release` is false (the last
   * try, whose holder goes on to close the note). Returns the failures so
   * far. Only for the holder (else NoteClaimLostError: nothing counted).
   */
  async noteFailed(noteId: string, token: string, options: { release?: boolean } = {}): Promise<number> {
    const release = options.release ?? true;
    const [row] = await this.db<{ failures: number }[]>`
      update fediverse_inbound set failures = failures + 1,
        claimed_at = case when ${release} then '-infinity'::timestamptz else now() end,
        claim_token = case when ${release} then null else claim_token end
      where note_id = ${noteId} and claim_token = ${token} and answered_at is null
      returning failures`;
    if (!row) throw new NoteClaimLostError(noteId);
    return row.failures;
  }

  /**
   * Saves a note's replies as the engine wrote them, before they are queued:
   * sealed (they may hold a link code, a one-time link, a person's matches),
   * bound to the note. Only for the holder (else NoteClaimLostError).
   */
  async saveReplies(noteId: string, token: string, replies: readonly string[]): Promise<void> {
    const sealed = sealHeld(this.box, replies, repliesContext(noteId));
    const result = await this.db`
      update fediverse_inbound set replies = ${this.db.json(sealed)}
      where note_id = ${noteId} and claim_token = ${token} and answered_at is null`;
    if (result.count === 0) throw new NoteClaimLostError(noteId);
  }

  /** The note's replies are queued: it is done. Only for the holder (else NoteClaimLostError: run it in the transaction that queues them). */
  async markAnswered(noteId: string, token: string): Promise<void> {
    const result = await this.db`
      update fediverse_inbound set answered_at = now(), replies = null, claim_token = null
      where note_id = ${noteId} and claim_token = ${token} and answered_at is null`;
    if (result.count === 0) throw new NoteClaimLostError(noteId);
  }

  /**
   * Drops the answers kept for a retry of these senders' notes (the
   * fediverse ones: actor URIs), and closes those notes: a person forgotten
   * is sent nothing more that was written for them. A worker about to queue
   * them loses its claim, and queues nothing. Returns how many were dropped.
   */
  async dropHeldReplies(senders: readonly { platform: string; stableId: string }[]): Promise<number> {
    const actors = senders.filter((s) => s.platform === "fediverse").map((s) => s.stableId);
    if (actors.length === 0) return 0;
    const result = await this.db`
      update fediverse_inbound set replies = null, answered_at = now(), claim_token = null
      where actor_uri = any(${actors}) and replies is not null and answered_at is null`;
    return result.count;
  }

  /** Saved replies as `saveReplies` sealed them (or, written before they were, as they are); null when they cannot be opened. */
  private openReplies(noteId: string, stored: unknown): string[] | null {
    const replies = openHeld(this.box, stored, repliesContext(noteId));
    return Array.isArray(replies) ? (replies as string[]) : null;
  }

  /** Forgets claims older than `before` (redeliveries stop within days). */
  async purgeNotes(before: Date): Promise<number> {
    const result = await this.db`delete from fediverse_inbound where received_at < ${before}`;
    return result.count;
  }

  /**
   * A Move: the identity held by `from` now lives at `to` (new actor URI,
   * acct and instance). False when no identity had `from`, or `to` is taken:
   * by another identity with that actor URI, or with that acct and another
   * person's (or another actor URI). The same person's row that named the
   * new acct only (as the registry import stores an address) is merged into
   * the moved identity: what hung on it (an authorization, links, where
   * reconnection reports go) now hangs on the moved one.
   */
  async moveIdentity(from: string, to: { actorUri: string; acct: string | null; apiBase: string | null }): Promise<boolean> {
    return this.inTransaction(async (db) => {
      // As every writer that holds a person (lock-order.ts): x_follow, the person, then identities.
      await lockEdgesBeforePeople(db);
      const [owner] = await db<{ person_id: number }[]>`
        select person_id from identity where platform = 'fediverse' and stable_id = ${from}`;
      if (!owner) return false;
      await db`select 1 from person where id = ${owner.person_id} for update`;
      const [moved] = await db<{ id: number; person_id: number }[]>`
        select id, person_id from identity where platform = 'fediverse' and stable_id = ${from} for update`;
      if (!moved || moved.person_id !== owner.person_id) return false;
      const taken = await db`select 1 from identity where platform = 'fediverse' and stable_id = ${to.actorUri}`;
      if (taken.length > 0) return false;
      const [named] = to.acct
        ? await db<{ id: number; person_id: number; stable_id: string | null }[]>`
            select id, person_id, stable_id from identity
            where platform = 'fediverse' and lower(handle) = lower(${to.acct}) and id <> ${moved.id}
            for update`
        : [];
      if (named && (named.stable_id !== null || named.person_id !== moved.person_id)) return false;
      // The old account's token acts for the account left behind, never for
      // the new one: it goes, to be revoked at the old server (a job then
      // asks the person to authorize again).
      await retireAuthorizations(db, [moved.id]);
      const authorizations = new Authorizations(db, this.box);
      if (named) {
        // The address row's authorization is the new account's: it takes
        // the old one's place (sealed again: a payload is bound to its identity).
        const carried = await authorizations.get(named.id).catch(() => undefined);
        if (carried) await authorizations.save(moved.id, carried.kind, carried.data, carried.expiresAt);
        await db`update web_link set identity_id = ${moved.id} where identity_id = ${named.id}`;
        await db`update reconnect_job set notify_identity_id = ${moved.id} where notify_identity_id = ${named.id}`;
        await db`delete from identity where id = ${named.id}`;
      }
      const result = await db`
        update identity set stable_id = ${to.actorUri}, handle = coalesce(${to.acct}, handle),
          api_base = coalesce(${to.apiBase}, api_base), updated_at = now()
        where id = ${moved.id}`;
      return result.count > 0;
    });
  }

  /** Runs `fn` in a transaction of its own, or in the one this state is part of. */
  private async inTransaction<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    if ("begin" in this.db) return (await (this.db as postgres.Sql<{}>).begin((tx) => fn(tx))) as T;
    return fn(this.db);
  }

  /** The identity id held by an actor URI, if any. */
  async identityOf(actorUri: string): Promise<number | undefined> {
    const [row] = await this.db<{ id: number }[]>`
      select id from identity where platform = 'fediverse' and stable_id = ${actorUri}`;
    return row?.id;
  }
}
