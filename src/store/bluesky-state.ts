/**
 * What the Bluesky bot keeps between runs: its session (sealed), how far it
 * has read its notifications and the chat log, and which events it has
 * already taken on (so that none is answered twice, even across replicas).
 */
import { randomUUID } from "node:crypto";
import { openHeld, sealHeld } from "./held-replies.ts";
import type { SecretBox } from "./secrets.ts";
import type { Queryable } from "./types.ts";

export type BlueskyEventKind = "mention" | "chat";

/**
 * How long a claim not renewed blocks others before it may be taken again.
 * Its holder renews it (`renew`) far more often than this while it works.
 */
export const STALE_CLAIM_SECONDS = 300;

/** What `claim` found: see BlueskyState.claim. `token`: the holder's, for every later step. */
export type EventClaim =
  | { status: "new"; token: string; failures: 0 }
  | { status: "resume"; token: string; replies: unknown; sent: number; failures: number }
  | { status: "done" }
  | { status: "busy" };

/** The claim is no longer the caller's: another worker took the event over. */
export class ClaimLostError extends Error {
  constructor(eventId: string) {
    super(`the claim on ${eventId} was taken over by another worker`);
    this.name = "ClaimLostError";
  }
}

/** What an event's saved replies are sealed to: they open for that event only. */
const repliesContext = (account: string, eventId: string) => `bluesky-event-replies:${account}:${eventId}`;

export class BlueskyState {
  private readonly db: Queryable;
  private readonly box: SecretBox;
  constructor(db: Queryable, box: SecretBox) {
    this.db = db;
    this.box = box;
  }

  /** The saved session (JSON as the client library gives it), if any. */
  async loadSession(account: string): Promise<unknown | undefined> {
    const [row] = await this.db<{ session: Buffer | null }[]>`select session from bluesky_account where account = ${account}`;
    if (!row?.session) return undefined;
    try {
      return JSON.parse(this.box.open(row.session, `bluesky-session:${account}`)) as unknown;
    } catch {
      return undefined; // sealed with another key, or damaged: log in again
    }
  }

  async saveSession(account: string, session: unknown | undefined): Promise<void> {
    const sealed = session === undefined ? null : this.box.seal(JSON.stringify(session), `bluesky-session:${account}`);
    await this.db`
      insert into bluesky_account (account, session) values (${account}, ${sealed})
      on conflict (account) do update set session = excluded.session, updated_at = now()`;
  }

  /**
   * How far the bot has read the account's notifications (the watermark), and
   * since when it reads them (its first start; none for an account read
   * before that was kept).
   */
  async notificationsPosition(account: string): Promise<{ seenAt?: Date; from?: Date }> {
    const [row] = await this.db<{ seen: Date | null; from: Date | null }[]>`
      select notifications_seen_at as seen, notifications_from as "from" from bluesky_account where account = ${account}`;
    return { ...(row?.seen ? { seenAt: row.seen } : {}), ...(row?.from ? { from: row.from } : {}) };
  }

  /**
   * The first start: reading begins at `at`, which becomes the watermark (if
   * none is further) and when reading began (if not set already: set once).
   */
  async beginNotifications(account: string, at: Date): Promise<void> {
    await this.db`
      insert into bluesky_account (account, notifications_seen_at, notifications_from) values (${account}, ${at}, ${at})
      on conflict (account) do update set
        notifications_seen_at = greatest(bluesky_account.notifications_seen_at, excluded.notifications_seen_at),
        notifications_from = coalesce(bluesky_account.notifications_from, excluded.notifications_from),
        updated_at = now()`;
  }

  /** Moves the notifications watermark forward (never back). */
  async advanceNotifications(account: string, at: Date): Promise<void> {
    await this.db`
      insert into bluesky_account (account, notifications_seen_at) values (${account}, ${at})
      on conflict (account) do update set
        notifications_seen_at = greatest(bluesky_account.notifications_seen_at, excluded.notifications_seen_at),
        updated_at = now()`;
  }

  async chatCursor(account: string): Promise<string | undefined> {
    const [row] = await this.db<{ cursor: string | null }[]>`select chat_cursor as cursor from bluesky_account where account = ${account}`;
    return row?.cursor ?? undefined;
  }

  async saveChatCursor(account: string, cursor: string): Promise<void> {
    await this.db`
      insert into bluesky_account (account, chat_cursor) values (${account}, ${cursor})
      on conflict (account) do update set chat_cursor = excluded.chat_cursor, updated_at = now()`;
  }

  async profileVersion(account: string): Promise<number> {
    const [row] = await this.db<{ v: number }[]>`select profile_version as v from bluesky_account where account = ${account}`;
    return row?.v ?? 0;
  }

  async saveProfileVersion(account: string, version: number): Promise<void> {
    await this.db`
      insert into bluesky_account (account, profile_version) values (${account}, ${version})
      on conflict (account) do update set profile_version = excluded.profile_version, updated_at = now()`;
  }

  /**
   * Takes an event on. `new`: first sight. `resume`: a claim released after a
   * failed delivery, or gone stale (its worker stopped renewing it) — with
   * what was saved. `done`: handled or skipped. `busy`: another worker holds
   * a live claim. A claim taken comes with a token that is the holder's alone.
   * `sender` (a DID): who sent the event, kept (as a keyed digest) until it
   * is finished, so that forgetting them drops what is held for them.
   */
  async claim(account: string, eventId: string, kind: BlueskyEventKind, options: { staleSeconds?: number; sender?: string } = {}): Promise<EventClaim> {
    const token = randomUUID();
    const stale = options.staleSeconds ?? STALE_CLAIM_SECONDS;
    const sender = options.sender ? this.senderDigest(options.sender) : null;
    const [row] = await this.db<{ inserted: boolean; replies: unknown; sent: number; failures: number }[]>`
      insert into bluesky_event (account, event_id, kind, state, claim_token, sender_digest)
      values (${account}, ${eventId}, ${kind}, 'claimed', ${token}, ${sender})
      on conflict (account, event_id) do update set state = 'claimed', claimed_at = now(), claim_token = excluded.claim_token,
        sender_digest = coalesce(excluded.sender_digest, bluesky_event.sender_digest)
      where bluesky_event.state = 'released'
        or (bluesky_event.state = 'claimed' and bluesky_event.claimed_at < now() - ${stale} * interval '1 second')
      returning (xmax = 0) as inserted, replies, sent, failures`;
    if (row) {
      if (row.inserted) return { status: "new", token, failures: 0 };
      return { status: "resume", token, replies: openHeld(this.box, row.replies, repliesContext(account, eventId)), sent: row.sent, failures: row.failures };
    }
    const [existing] = await this.db<{ state: string }[]>`
      select state from bluesky_event where account = ${account} and event_id = ${eventId}`;
    return existing?.state === "claimed" ? { status: "busy" } : { status: "done" };
  }

  /**
   * Which of these events are settled — answered, skipped or given up — and
   * so need no look: a claimed or released one is not (claim decides).
   */
  async settledEvents(account: string, eventIds: readonly string[]): Promise<Set<string>> {
    if (eventIds.length === 0) return new Set();
    const rows = await this.db<{ event_id: string }[]>`
      select event_id from bluesky_event
      where account = ${account} and event_id = any(${eventIds as string[]}) and state in ('done', 'skipped', 'failed')`;
    return new Set(rows.map((r) => r.event_id));
  }

  /** Renews the holder's claim (heartbeat); false when it is no longer the holder's. */
  async renew(account: string, eventId: string, token: string): Promise<boolean> {
    const rows = await this.db`
      update bluesky_event set claimed_at = now()
      where account = ${account} and event_id = ${eventId} and state = 'claimed' and claim_token = ${token}`;
    return rows.count > 0;
  }

  /**
   * Keeps the engine's replies with the claim, before any is sent: sealed
   * (they may hold a link code, a one-time link, a person's matches), bound
   * to the event. Only for the holder (else ClaimLostError).
   */
  async saveReplies(account: string, eventId: string, token: string, replies: unknown): Promise<void> {
    const sealed = sealHeld(this.box, replies, repliesContext(account, eventId));
    const rows = await this.db`
      update bluesky_event set replies = ${this.db.json(sealed)}
      where account = ${account} and event_id = ${eventId} and state = 'claimed' and claim_token = ${token}`;
    if (rows.count === 0) throw new ClaimLostError(eventId);
  }

  /**
   * Records how far sending got (pieces, or phases), so a retry does not send
   * them again. Only for the holder (else ClaimLostError).
   */
  async saveSent(account: string, eventId: string, token: string, sent: number): Promise<void> {
    const rows = await this.db`
      update bluesky_event set sent = ${sent}, claimed_at = now()
      where account = ${account} and event_id = ${eventId} and state = 'claimed' and claim_token = ${token}`;
    if (rows.count === 0) throw new ClaimLostError(eventId);
  }

  /**
   * Marks a claimed event handled (`done`), deliberately ignored (`skipped`),
   * or given up after failing too often (`failed`, counting this last try).
   * Only for the holder (else ClaimLostError).
   */
  async finish(account: string, eventId: string, token: string, state: "done" | "skipped" | "failed"): Promise<void> {
    const rows = await this.db`
      update bluesky_event set state = ${state}, done_at = now(), replies = null, claim_token = null, sender_digest = null,
        failures = failures + ${state === "failed" ? 1 : 0}
      where account = ${account} and event_id = ${eventId} and state = 'claimed' and claim_token = ${token}`;
    if (rows.count === 0) throw new ClaimLostError(eventId);
  }

  /**
   * Gives up the holder's claim so the event is tried again (a delivery
   * failed), keeping what was saved; `failed`: the failure was the event's
   * own (counted towards giving up). A claim lost already is left alone.
   */
  async release(account: string, eventId: string, token: string, options: { failed?: boolean } = {}): Promise<void> {
    await this.db`
      update bluesky_event set state = 'released', claim_token = null, failures = failures + ${options.failed ? 1 : 0}
      where account = ${account} and event_id = ${eventId} and state = 'claimed' and claim_token = ${token}`;
  }

  /**
   * Drops what is held for these senders (the Bluesky ones: DIDs) — the
   * answers kept for a retry of their events — and closes those events
   * (`skipped`): a person forgotten is sent nothing more that was written
   * for them. A worker sending one of them loses its claim, and stops.
   * Returns how many events were closed.
   */
  async dropHeldReplies(senders: readonly { platform: string; stableId: string }[]): Promise<number> {
    const digests = senders.filter((s) => s.platform === "bluesky").map((s) => this.senderDigest(s.stableId));
    if (digests.length === 0) return 0;
    const result = await this.db`
      update bluesky_event set replies = null, state = 'skipped', done_at = now(), claim_token = null, sender_digest = null
      where sender_digest = any(${digests}) and state in ('claimed', 'released') and replies is not null`;
    return result.count;
  }

  /** The key under which an event's sender is kept: a keyed digest of their DID. */
  private senderDigest(did: string): string {
    return this.box.digest(did, "bluesky-event-sender");
  }

  /** Saved replies as `saveReplies` sealed them (or, written before they were, as they are); null when they cannot be opened. */
  /** Forgets finished events older than `days` (their notifications are long past the watermark). */
  async purge(days: number): Promise<number> {
    const result = await this.db`delete from bluesky_event where done_at < now() - ${days} * interval '1 day'`;
    return result.count;
  }
}
