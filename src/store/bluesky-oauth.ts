/**
 * What the Bluesky OAuth client (@atproto/oauth-client-node) keeps in
 * PostgreSQL: flows under way (state), one session per DID, the client's own
 * signing key(s), and per-account refresh leases shared by every replica.
 * Everything secret is sealed with the store's SecretBox; nothing readable is
 * left at rest. Schema: db/migrations/009_bluesky_oauth.sql.
 */
import { randomUUID } from "node:crypto";
import type { NodeSavedSession, NodeSavedSessionStore, NodeSavedState, NodeSavedStateStore } from "@atproto/oauth-client-node";
import type { SecretBox } from "./secrets.ts";
import type { Queryable } from "./types.ts";

/** How long an authorization flow may take, from `authorize()` to the callback. */
export const OAUTH_STATE_TTL_SECONDS = 3600;
/** A session never attached to an identity (nobody recorded who authorized) is dropped after this. */
export const UNATTACHED_SESSION_TTL_SECONDS = 24 * 3600;
/** A refresh lease outlives the client's own 30 s refresh timeout. */
const LEASE_SECONDS = 60;
/** How long to wait for another process's lease before giving up. */
const LEASE_WAIT_MS = 90_000;

const stateContext = (key: string) => `bluesky-oauth-state:${key}`;
/** What a Bluesky OAuth session is sealed to: its DID. */
export const sessionContext = (did: string) => `bluesky-oauth-session:${did}`;
const keyContext = (kid: string) => `bluesky-oauth-key:${kid}`;

/** A private JWK as stored (the client turns it into a signing key). */
export type PrivateJwk = Record<string, unknown> & { kid: string };

export class BlueskyOAuthStore {
  private readonly db: Queryable;
  private readonly box: SecretBox;
  /** In-process queue per lock name, so one process polls for a lease once. */
  private readonly localLocks = new Map<string, Promise<void>>();

  constructor(db: Queryable, box: SecretBox) {
    this.db = db;
    this.box = box;
  }

  /** The client's state store: flows under way, expiring after {@link OAUTH_STATE_TTL_SECONDS}. */
  readonly stateStore: NodeSavedStateStore = {
    get: (key) => this.getState(key),
    set: (key, value) => this.setState(key, value),
    del: (key) => this.deleteState(key),
  };

  /** The client's session store: one session per DID. */
  readonly sessionStore: NodeSavedSessionStore = {
    get: (did) => this.getSession(did),
    set: (did, value) => this.setSession(did, value),
    del: async (did) => {
      await this.deleteSession(did);
    },
  };

  async getState(key: string): Promise<NodeSavedState | undefined> {
    const [row] = await this.db<{ payload: Buffer }[]>`
      select payload from bluesky_oauth_state where key = ${key} and expires_at > now()`;
    if (!row) return undefined;
    return JSON.parse(this.box.open(row.payload, stateContext(key))) as NodeSavedState;
  }

  async setState(key: string, value: NodeSavedState, ttlSeconds = OAUTH_STATE_TTL_SECONDS): Promise<void> {
    const payload = this.box.seal(JSON.stringify(value), stateContext(key));
    await this.db`
      insert into bluesky_oauth_state (key, payload, expires_at)
      values (${key}, ${payload}, now() + make_interval(secs => ${ttlSeconds}))
      on conflict (key) do update set payload = excluded.payload, expires_at = excluded.expires_at`;
    // New flows are rare next to everything else: a good moment to sweep.
    await this.prune();
  }

  async deleteState(key: string): Promise<void> {
    await this.db`delete from bluesky_oauth_state where key = ${key}`;
  }

  /** The stored session for `did`; undefined when there is none or it cannot be opened. */
  async getSession(did: string): Promise<NodeSavedSession | undefined> {
    const [row] = await this.db<{ payload: Buffer }[]>`
      select payload from bluesky_oauth_session where did = ${did}`;
    if (!row) return undefined;
    try {
      return JSON.parse(this.box.open(row.payload, sessionContext(did))) as NodeSavedSession;
    } catch {
      // Sealed with another SECRET_KEY, or damaged: as good as no session.
      return undefined;
    }
  }

  /** Saves the session, attached to the Bluesky identity of `did` when there is one. */
  async setSession(did: string, value: NodeSavedSession): Promise<void> {
    const payload = this.box.seal(JSON.stringify(value), sessionContext(did));
    await this.db`
      insert into bluesky_oauth_session (did, identity_id, payload)
      values (
        ${did},
        (select id from identity where platform = 'bluesky' and stable_id = ${did}),
        ${payload}
      )
      on conflict (did) do update set
        payload = excluded.payload,
        identity_id = coalesce(excluded.identity_id, bluesky_oauth_session.identity_id),
        updated_at = now()`;
  }

  /** @returns whether a session was deleted */
  async deleteSession(did: string): Promise<boolean> {
    const result = await this.db`delete from bluesky_oauth_session where did = ${did}`;
    return result.count > 0;
  }

  async hasSession(did: string): Promise<boolean> {
    const [row] = await this.db`select 1 from bluesky_oauth_session where did = ${did}`;
    return row !== undefined;
  }

  /** Removes expired flows and sessions nobody attached to an identity. */
  async prune(): Promise<void> {
    await this.db`delete from bluesky_oauth_state where expires_at <= now()`;
    await this.db`
      delete from bluesky_oauth_session
      where identity_id is null and updated_at < now() - make_interval(secs => ${UNATTACHED_SESSION_TTL_SECONDS})`;
    await this.db`delete from bluesky_oauth_lock where expires_at < now() - interval '1 hour'`;
  }

  /**
   * The client's private signing keys, active one first. When there is no
   * active key, `generate` makes one; if several processes race, one key
   * wins and all of them use it.
   */
  async signingKeys(generate: () => Promise<PrivateJwk>): Promise<PrivateJwk[]> {
    let keys = await this.readKeys();
    if (!keys.some((k) => k.active)) {
      const jwk = await generate();
      const sealed = this.box.seal(JSON.stringify(jwk), keyContext(jwk.kid));
      await this.db`
        insert into bluesky_oauth_key (kid, private_jwk, active) values (${jwk.kid}, ${sealed}, true)
        on conflict do nothing`;
      keys = await this.readKeys();
    }
    return keys.map((k) => k.jwk);
  }

  private async readKeys(): Promise<{ jwk: PrivateJwk; active: boolean }[]> {
    const rows = await this.db<{ kid: string; private_jwk: Buffer; active: boolean }[]>`
      select kid, private_jwk, active from bluesky_oauth_key order by active desc, created_at desc`;
    return rows.map((r) => ({
      jwk: JSON.parse(this.box.open(r.private_jwk, keyContext(r.kid))) as PrivateJwk,
      active: r.active,
    }));
  }

  /**
   * Runs `fn` while holding the lease `name`, across every process sharing
   * the database (the client's `requestLock`: one token refresh per account
   * at a time). Holds no connection while waiting or running.
   */
  async withLock<T>(name: string, fn: () => T | PromiseLike<T>): Promise<T> {
    const previous = this.localLocks.get(name) ?? Promise.resolve();
    let releaseLocal!: () => void;
    const mine = new Promise<void>((resolve) => (releaseLocal = resolve));
    const tail = previous.then(() => mine);
    this.localLocks.set(name, tail);
    await previous;
    try {
      const holder = randomUUID();
      await this.acquireLease(name, holder);
      try {
        return await fn();
      } finally {
        await this.db`delete from bluesky_oauth_lock where name = ${name} and holder = ${holder}`;
      }
    } finally {
      if (this.localLocks.get(name) === tail) this.localLocks.delete(name);
      releaseLocal();
    }
  }

  private async acquireLease(name: string, holder: string): Promise<void> {
    const deadline = Date.now() + LEASE_WAIT_MS;
    for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
      const [row] = await this.db`
        insert into bluesky_oauth_lock (name, holder, expires_at)
        values (${name}, ${holder}, now() + make_interval(secs => ${LEASE_SECONDS}))
        on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at
          where bluesky_oauth_lock.expires_at < now()
        returning holder`;
      if (row) return;
      if (Date.now() > deadline) throw new Error(`Timed out waiting for the lock ${name}.`);
      await new Promise((resolve) => setTimeout(resolve, wait + Math.random() * wait));
    }
  }
}
