/**
 * What the Bluesky bot keeps between runs: its session (sealed), how far it
 * has read its notifications and the chat log, and which events it has
 * already taken on (so that none is answered twice, even across replicas).
 */
import type { SecretBox } from "./secrets.ts";
import type { Queryable } from "./types.ts";

export type BlueskyEventKind = "mention" | "chat";

/** How long an unfinished claim blocks others before it may be taken again. */
const STALE_CLAIM_SECONDS = 300;

/** What `claim` found: see BlueskyState.claim. */
export type EventClaim =
  | { status: "new" }
  | { status: "resume"; replies: unknown; sent: number }
  | { status: "done" }
  | { status: "busy" };

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

  async notificationsSeenAt(account: string): Promise<Date | undefined> {
    const [row] = await this.db<{ at: Date | null }[]>`select notifications_seen_at as at from bluesky_account where account = ${account}`;
    return row?.at ?? undefined;
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
   * failed delivery, or gone stale (its worker died) — with what was saved.
   * `done`: handled or skipped. `busy`: another worker holds a fresh claim.
   */
  async claim(account: string, eventId: string, kind: BlueskyEventKind): Promise<EventClaim> {
    const [row] = await this.db<{ inserted: boolean; replies: unknown; sent: number }[]>`
      insert into bluesky_event (account, event_id, kind, state) values (${account}, ${eventId}, ${kind}, 'claimed')
      on conflict (account, event_id) do update set state = 'claimed', claimed_at = now()
      where bluesky_event.state = 'released'
        or (bluesky_event.state = 'claimed' and bluesky_event.claimed_at < now() - ${STALE_CLAIM_SECONDS} * interval '1 second')
      returning (xmax = 0) as inserted, replies, sent`;
    if (row) return row.inserted ? { status: "new" } : { status: "resume", replies: row.replies ?? null, sent: row.sent };
    const [existing] = await this.db<{ state: string }[]>`
      select state from bluesky_event where account = ${account} and event_id = ${eventId}`;
    return existing?.state === "claimed" ? { status: "busy" } : { status: "done" };
  }

  /** Keeps the engine's replies with the claim, before any is sent. */
  async saveReplies(account: string, eventId: string, replies: unknown): Promise<void> {
    await this.db`update bluesky_event set replies = ${this.db.json(replies as never)} where account = ${account} and event_id = ${eventId}`;
  }

  /** Records how far sending got (pieces, or phases), so a retry does not send them again. */
  async saveSent(account: string, eventId: string, sent: number): Promise<void> {
    await this.db`update bluesky_event set sent = ${sent} where account = ${account} and event_id = ${eventId}`;
  }

  /** Marks a claimed event handled (`done`) or deliberately ignored (`skipped`). */
  async finish(account: string, eventId: string, state: "done" | "skipped"): Promise<void> {
    await this.db`update bluesky_event set state = ${state}, done_at = now(), replies = null where account = ${account} and event_id = ${eventId}`;
  }

  /** Gives up a claim so the event is tried again (a delivery failed), keeping what was saved. */
  async release(account: string, eventId: string): Promise<void> {
    await this.db`update bluesky_event set state = 'released' where account = ${account} and event_id = ${eventId} and state = 'claimed'`;
  }

  /** Forgets finished events older than `days` (their notifications are long past the watermark). */
  async purge(days: number): Promise<number> {
    const result = await this.db`delete from bluesky_event where done_at < now() - ${days} * interval '1 day'`;
    return result.count;
  }
}
