/**
 * Follows a run's targets from a person's Mastodon account, through their
 * own instance's API: resolve each target to an account id there (lookup,
 * else search with resolve), check relationships (one call per batch), skip
 * what is already followed, then follow.
 *
 * Exactly once: before any follow is sent, its target's account id is saved
 * as the in-flight marker. A later run that finds a marker and a follow (or
 * a pending request) to that same account knows the follow was its own.
 *
 * Outcomes are recorded batch by batch. The instance's rate limit is waited
 * out when the reset is near (`maxWaitMs`), otherwise the run throws
 * `RateLimitedError` with the instance's reset time. A 5xx or timeout from
 * the person's own instance (lookup, relationships, follow) throws too: it
 * says nothing about the target, and the job retries with its back-off.
 */
import type { FollowWriter, MastodonAuthorization, Target, TargetResult, WriterRun } from "../types.ts";
import { MastodonApiError, MastodonClient, type MastodonAccount, type MastodonRelationship } from "./client.ts";

export interface MastodonWriterOptions {
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** Targets per batch: resolved, checked in one relationships call, followed, recorded (default 40). */
  batchSize?: number;
  /** Waits for the rate limit's reset when it comes within this long (default 60 s). */
  maxWaitMs?: number;
  /** Per request (default 30 s). */
  timeoutMs?: number;
  /** Tests and the sandbox only. */
  allowPrivateAddresses?: boolean;
  fetch?: typeof fetch;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  userAgent?: string;
}

interface Found {
  target: Target;
  account: MastodonAccount;
}

/** Mastodon's "You cannot follow more than N people", and the like elsewhere. */
const FOLLOW_LIMIT = /cannot follow more than|follow limit|maximum number of (accounts|follows)/i;

export class MastodonWriter implements FollowWriter {
  readonly #auth: MastodonAuthorization;
  readonly #options: MastodonWriterOptions;
  readonly #concurrency: number;

  constructor(authorization: MastodonAuthorization, options: MastodonWriterOptions = {}) {
    this.#auth = authorization;
    this.#options = options;
    this.#concurrency = Math.max(1, options.concurrency ?? 4);
  }

  async run(run: WriterRun): Promise<void> {
    const o = this.#options;
    const client = new MastodonClient({
      instance: this.#auth.instance,
      accessToken: this.#auth.accessToken,
      maxWaitMs: o.maxWaitMs ?? 60_000,
      ...(o.allowPrivateAddresses ? { allowPrivateAddresses: true } : {}),
      ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
      ...(o.fetch ? { fetch: o.fetch } : {}),
      ...(o.now ? { now: o.now } : {}),
      ...(o.sleep ? { sleep: o.sleep } : {}),
      ...(o.userAgent ? { userAgent: o.userAgent } : {}),
      ...(run.signal ? { signal: run.signal } : {}),
    });
    const state = { limitReached: false };
    const size = Math.max(1, o.batchSize ?? 40);
    for (let i = 0; i < run.targets.length; i += size) {
      run.signal?.throwIfAborted();
      const batch = run.targets.slice(i, i + size);
      const results: TargetResult[] = [];
      try {
        if (state.limitReached) results.push(...batch.map((t) => failed(t, "follow_limit")));
        else await this.#batch(client, run, batch, results, state);
      } catch (error) {
        // Keep what this batch learned (follows sent included) before giving up.
        if (results.length > 0) await run.record(results).catch(() => undefined);
        throw error;
      }
      if (results.length > 0) await run.record(results);
    }
  }

  async #batch(
    client: MastodonClient,
    run: WriterRun,
    batch: readonly Target[],
    results: TargetResult[],
    state: { limitReached: boolean },
  ): Promise<void> {
    const found: Found[] = [];
    await pool(batch, this.#concurrency, async (target) => {
      const resolved = await this.#resolve(client, target);
      if ("outcome" in resolved) results.push(resolved);
      else found.push({ target, account: resolved });
    });
    if (found.length === 0) return;

    const relationships = new Map<string, MastodonRelationship>();
    for (const r of await client.relationships(found.map((f) => f.account.id))) relationships.set(r.id, r);
    const toFollow: Found[] = [];
    for (const f of found) {
      const rel = relationships.get(f.account.id);
      const personId = f.target.personId;
      if (rel && (rel.blocking || rel.blocked_by || rel.domain_blocking)) results.push({ personId, outcome: "blocked" });
      else if (rel && (rel.following || rel.requested)) {
        // Our own follow from a run that died before recording it, or the person's.
        const ours = run.inFlight.get(personId) === f.account.id;
        results.push(ours ? outcomeOf(f, rel) : { personId, outcome: "already_following" });
      } else toFollow.push(f);
    }
    if (toFollow.length === 0) return;

    await run.markInFlight(toFollow.map((f) => ({ personId: f.target.personId, marker: f.account.id })));
    await pool(toFollow, this.#concurrency, async (f) => {
      results.push(state.limitReached ? failed(f.target, "follow_limit") : await this.#follow(client, f, state));
    });
  }

  async #follow(client: MastodonClient, f: Found, state: { limitReached: boolean }): Promise<TargetResult> {
    try {
      const rel = await client.follow(f.account.id);
      if (rel.following || rel.requested) return outcomeOf(f, rel);
      return failed(f.target, "not_following");
    } catch (error) {
      // No answer, or a 5xx: the person's instance is in trouble, not this target (a follow
      // only queues a delivery there). The job retries; the in-flight marker keeps it once.
      if (!(error instanceof MastodonApiError) || error.status === 0 || error.status >= 500) throw error;
      const personId = f.target.personId;
      // Mastodon: 403 when either side blocks (or the account moved), 404 when suspended.
      if (error.status === 403) return { personId, outcome: "blocked" };
      if (error.status === 404 || error.status === 410) return { personId, outcome: "gone" };
      if (error.status === 422 && FOLLOW_LIMIT.test(error.serverError ?? "")) {
        state.limitReached = true;
        return failed(f.target, "follow_limit");
      }
      return failed(f.target, error.code);
    }
  }

  /**
   * The target's account on the person's instance, or the outcome that ends it.
   *
   * Whose failure is it? A 5xx or a timeout on `lookup` (a read of the
   * instance's own database) is the person's instance in trouble (restarting,
   * overloaded): thrown, the job retries later. Only `search` with resolve
   * makes the instance fetch the target from its server, so its 5xx or
   * timeout is the target's, once the instance has shown it answers: by
   * `lookup`, or for a target known by actor URI only, by a cheap read of
   * the person's own account (which throws if the instance is down too).
   */
  async #resolve(client: MastodonClient, target: Target): Promise<MastodonAccount | TargetResult> {
    const personId = target.personId;
    const acct = normalizeAcct(target.handle);
    const uri = target.stableId && /^https?:\/\//i.test(target.stableId) ? target.stableId : null;
    let trouble: MastodonApiError | undefined;
    let instanceAnswered = false;
    const attempt = async (step: "lookup" | "search", call: () => Promise<MastodonAccount | undefined | null>) => {
      try {
        const found = (await call()) ?? undefined;
        instanceAnswered = true;
        return found;
      } catch (error) {
        if (!(error instanceof MastodonApiError)) throw error;
        const transient = error.status >= 500 || error.code === "timeout";
        if (transient && step === "lookup") throw error;
        if (transient) {
          trouble = error;
          return undefined;
        }
        if (error.status >= 400) {
          instanceAnswered = true;
          return undefined;
        }
        throw error;
      }
    };
    let account: MastodonAccount | undefined;
    if (acct) {
      // Lookup is exact: a local account comes back as `user`.
      account = await attempt("lookup", async () => {
        const a = await client.lookup(acct);
        return a && sameActor(a, target) !== false ? a : null;
      });
    }
    for (const q of [acct, uri]) {
      if (account || !q) continue;
      account = await attempt("search", async () => {
        const accounts = await client.searchAccounts(q, { resolve: true });
        return accounts.find((a) => sameActor(a, target) ?? (q === uri ? accounts.length === 1 : sameAcct(a.acct, q, client.instance)));
      });
    }
    if (!account && trouble) {
      // Throws (the job's problem) unless the instance itself answers.
      if (!instanceAnswered) await client.verifyCredentials();
      return failed(target, trouble.code);
    }
    if (!account) return { personId, outcome: "not_found" };
    if (account.suspended) return { personId, outcome: "gone" };
    if (account.moved) return { personId, outcome: "gone", reason: "moved" };
    if (account.id === this.#auth.accountId) return failed(target, "self");
    return account;
  }
}

function failed(target: Target, reason: string): TargetResult {
  return { personId: target.personId, outcome: "failed", reason };
}

/** Following, or a request: Mastodon answers `requested` for every remote account until its server accepts. */
function outcomeOf(f: Found, rel: MastodonRelationship): TargetResult {
  const outcome = rel.following || !f.account.locked ? "followed" : "requested";
  return { personId: f.target.personId, outcome };
}

/** `@User@Host` → `User@host`; null when not an acct. */
export function normalizeAcct(handle: string | null): string | null {
  const m = handle ? /^@?(?:acct:)?([^@\s]+)@([^@\s]+)$/i.exec(handle.trim()) : null;
  return m ? `${m[1]}@${m[2]!.toLowerCase()}` : null;
}

/** Compares actor URIs when both are known (Mastodon ≥ 4.2 gives `uri`); undefined when it cannot tell. */
function sameActor(account: MastodonAccount, target: Target): boolean | undefined {
  if (!account.uri || !target.stableId) return undefined;
  return account.uri === target.stableId;
}

/** A search hit is the acct asked for (a local hit only if the acct is on this instance's host). */
function sameAcct(found: string, wanted: string, instance: string): boolean {
  const a = found.toLowerCase();
  const w = wanted.toLowerCase();
  return a === w || (!a.includes("@") && w === `${a}@${new URL(instance).host}`);
}

/** Runs `fn` over `items`, `concurrency` at a time; after a failure starts nothing new, lets running calls end, rethrows. */
async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  if (failure) throw failure.error;
}
