/**
 * What the fediverse bot keeps besides Fedify's own tables: its key pairs
 * (private halves sealed), its followers, the notes it has handled (so a
 * redelivered, replayed or edited note is never answered twice), its public
 * posts (served at their ids and in its outbox), and the identity changes
 * the fediverse announces (Move, Delete of an actor).
 */
import type { webcrypto } from "node:crypto";
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
   * claim whose holder died before answering (older than `leaseSeconds`), or
   * released by a failed try, taken over — with the replies it saved, if any,
   * and how many tries failed. `answered`: done already. `busy`: another
   * worker holds a fresh claim; try again later.
   */
  async claimNote(
    noteId: string,
    activityId: string | null,
    actorUri: string,
    leaseSeconds = 120,
  ): Promise<{ status: "new" } | { status: "resume"; replies: string[] | null; failures: number } | { status: "answered" } | { status: "busy" }> {
    const [taken] = await this.db<{ inserted: boolean; replies: string[] | null; failures: number }[]>`
      insert into fediverse_inbound (note_id, activity_id, actor_uri)
      values (${noteId}, ${activityId}, ${actorUri})
      on conflict (note_id) do update set claimed_at = now()
        where fediverse_inbound.answered_at is null
          and fediverse_inbound.claimed_at < now() - ${leaseSeconds} * interval '1 second'
      returning (xmax = 0) as inserted, replies, failures`;
    if (taken) return taken.inserted ? { status: "new" } : { status: "resume", replies: taken.replies, failures: taken.failures };
    const [row] = await this.db<{ answered: boolean }[]>`
      select answered_at is not null as answered from fediverse_inbound where note_id = ${noteId}`;
    return row?.answered === false ? { status: "busy" } : { status: "answered" };
  }

  /**
   * A try at the note failed: counted, and its claim released at once (the
   * next delivery of it takes it up). Returns the failures so far.
   */
  async noteFailed(noteId: string): Promise<number> {
    const [row] = await this.db<{ failures: number }[]>`
      update fediverse_inbound set failures = failures + 1, claimed_at = '-infinity'
      where note_id = ${noteId} and answered_at is null
      returning failures`;
    return row?.failures ?? 0;
  }

  /** Saves a note's replies as the engine wrote them, before they are queued. */
  async saveReplies(noteId: string, replies: readonly string[]): Promise<void> {
    await this.db`update fediverse_inbound set replies = ${this.db.json(replies as string[])} where note_id = ${noteId}`;
  }

  /** The note's replies are queued: it is done. */
  async markAnswered(noteId: string): Promise<void> {
    await this.db`update fediverse_inbound set answered_at = now(), replies = null where note_id = ${noteId}`;
  }

  /** Forgets claims older than `before` (redeliveries stop within days). */
  async purgeNotes(before: Date): Promise<number> {
    const result = await this.db`delete from fediverse_inbound where received_at < ${before}`;
    return result.count;
  }

  /**
   * A Move: the identity held by `from` now lives at `to` (new actor URI,
   * acct and instance). False when no identity had `from`, or `to` is taken.
   */
  async moveIdentity(from: string, to: { actorUri: string; acct: string | null; apiBase: string | null }): Promise<boolean> {
    const taken = await this.db`select 1 from identity where platform = 'fediverse' and stable_id = ${to.actorUri}`;
    if (taken.length > 0) return false;
    const result = await this.db`
      update identity set stable_id = ${to.actorUri}, handle = coalesce(${to.acct}, handle),
        api_base = coalesce(${to.apiBase}, api_base), updated_at = now()
      where platform = 'fediverse' and stable_id = ${from}`;
    return result.count > 0;
  }

  /** The identity id held by an actor URI, if any. */
  async identityOf(actorUri: string): Promise<number | undefined> {
    const [row] = await this.db<{ id: number }[]>`
      select id from identity where platform = 'fediverse' and stable_id = ${actorUri}`;
    return row?.id;
  }
}
