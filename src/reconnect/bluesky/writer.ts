/**
 * Follows a run's targets from one person's Bluesky account:
 *
 * 1. lists the person's `app.bsky.graph.follow` records on their PDS (the
 *    repo is authoritative and immediate; the AppView lags) → targets already
 *    followed are `already_following`, except those whose in-flight marker
 *    names an existing record: our own write from a run that died → `followed`;
 * 2. looks the rest up on the AppView (`getProfiles` as the person, or on a
 *    public AppView `getProfiles` + `getRelationships`): an account it does
 *    not return is deleted, deactivated or taken down → `gone`; a block
 *    either way (directly or through a block list) → `blocked`;
 * 3. writes the follows with `applyWrites`, at most `maxBatch` (≤ 200) creates
 *    a call and never more than the shared budget grants, each record's rkey
 *    saved as the target's marker before the call.
 *
 * A write whose fate is unknown (network error) is checked on the repo before
 * it is sent again, with the same rkeys: it never lands twice. A target that
 * a dead run marked, and whose record is not there yet, is written under the
 * dead run's rkey: if that run's write lands late, this one is refused, and
 * the record found.
 */
import { setTimeout as delay } from "node:timers/promises";
import type { Agent } from "@atproto/api";
import { TID } from "@atproto/common-web";
import type { WriteBudget } from "../budget.ts";
import { AuthorizationExpiredError, RateLimitedError, type FollowWriter, type TargetResult, type WriterRun } from "../types.ts";
import { classify, errorCode, rateLimitedUntil, serverLimit } from "./xrpc-failures.ts";

const FOLLOW = "app.bsky.graph.follow";
/** applyWrites refuses more ("Too many writes. Max: 200"). */
const MAX_WRITES = 200;
/** getProfiles takes at most 25 actors, getRelationships 30. */
const PROFILES_PER_CALL = 25;
const RELATIONSHIPS_PER_CALL = 30;
const DID = /^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$/;

export interface BlueskyWriterOptions {
  /** Acts as the person (OAuth session or app-password login). */
  agent: Agent;
  /**
   * Where to look targets up without the person's session, e.g. an agent on
   * `https://public.api.bsky.app`: lighter than authenticated lookups through
   * the PDS (the default).
   */
  appview?: Agent;
  /** The person's DID. */
  did: string;
  budget: WriteBudget;
  /** Creates per applyWrites call, at most 200 (default 200). */
  maxBatch?: number;
  /** Waits up to this long in-process for the budget or a 429's reset; longer waits throw RateLimitedError (default 30 s). */
  maxWaitMs?: number;
  /** Lookup calls in flight (default 4). */
  lookupConcurrency?: number;
  /** Attempts after a network or server error before giving up (default 4), the first after `backoffMs` (default 1 s), doubling. */
  retries?: number;
  backoffMs?: number;
  /** Waits (tests pass a recorder); default: an abortable timer. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number;
}

/** One follow to write: a target DID and every target person asking for it. */
interface Follow {
  did: string;
  personIds: number[];
  rkey: string;
  marked: boolean;
  /** Its rkey is a dead run's marker: the record may appear whatever this run does. */
  reused: boolean;
}

export class BlueskyWriter implements FollowWriter {
  private readonly agent: Agent;
  private readonly appview: Agent | undefined;
  private readonly did: string;
  private readonly budget: WriteBudget;
  private readonly maxBatch: number;
  private readonly maxWaitMs: number;
  private readonly concurrency: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly now: () => number;

  constructor(options: BlueskyWriterOptions) {
    this.agent = options.agent;
    this.appview = options.appview;
    this.did = options.did;
    this.budget = options.budget;
    this.maxBatch = Math.max(1, Math.min(MAX_WRITES, options.maxBatch ?? MAX_WRITES));
    this.maxWaitMs = options.maxWaitMs ?? 30_000;
    this.concurrency = Math.max(1, options.lookupConcurrency ?? 4);
    this.retries = options.retries ?? 4;
    this.backoffMs = options.backoffMs ?? 1_000;
    this.sleep = options.sleep ?? ((ms, signal) => delay(ms, undefined, { signal }));
    this.now = options.now ?? Date.now;
  }

  async run(run: WriterRun): Promise<void> {
    const signal = run.signal;
    signal?.throwIfAborted();
    const existing = await this.listFollows(signal);

    const settled: TargetResult[] = [];
    const wanted = new Map<string, Follow>();
    for (const t of run.targets) {
      const did = t.stableId;
      const marker = run.inFlight.get(t.personId);
      if (!did || !DID.test(did)) settled.push({ personId: t.personId, outcome: "not_found" });
      else if (marker !== undefined && existing.byRkey.get(marker) === did) settled.push({ personId: t.personId, outcome: "followed" });
      else if (existing.subjects.has(did)) settled.push({ personId: t.personId, outcome: "already_following" });
      else if (did === this.did) settled.push({ personId: t.personId, outcome: "failed", reason: "self" });
      else {
        const follow = wanted.get(did) ?? { did, personIds: [], rkey: "", marked: false, reused: false };
        follow.personIds.push(t.personId);
        // A dead run's write may still land: written again under the same
        // rkey, it is refused instead of doubled.
        // (Not a marker whose rkey holds another follow: the target's account changed since.)
        if (marker !== undefined && !follow.marked && TID.is(marker) && !existing.byRkey.has(marker)) {
          Object.assign(follow, { rkey: marker, marked: true, reused: true });
        }
        wanted.set(did, follow);
      }
    }
    if (settled.length > 0) await run.record(settled);

    const chunks: Follow[][] = [];
    const all = [...wanted.values()];
    for (let i = 0; i < all.length; i += this.maxBatch) chunks.push(all.slice(i, i + this.maxBatch));
    // The next chunk is looked up while this one is written.
    const lookup = (chunk: Follow[] | undefined) => {
      const p = chunk ? this.lookUp(chunk, signal) : Promise.resolve([]);
      p.catch(() => {});
      return p;
    };
    let next = lookup(chunks[0]);
    for (let k = 0; k < chunks.length; k++) {
      const { ok, results } = await next.then((r) => split(chunks[k]!, r));
      next = lookup(chunks[k + 1]);
      if (results.length > 0) await run.record(results);
      await this.write(ok, run);
    }
  }

  /** The person's follow records: subjects, and rkey → subject. */
  private async listFollows(signal?: AbortSignal): Promise<{ subjects: Set<string>; byRkey: Map<string, string> }> {
    const subjects = new Set<string>();
    const byRkey = new Map<string, string>();
    let cursor: string | undefined;
    do {
      const page = await this.call(
        () => this.agent.com.atproto.repo.listRecords({ repo: this.did, collection: FOLLOW, limit: 100, cursor }, { signal }),
        signal,
      );
      for (const r of page.data.records) {
        const subject = (r.value as { subject?: unknown }).subject;
        if (typeof subject !== "string") continue;
        subjects.add(subject);
        byRkey.set(r.uri.slice(r.uri.lastIndexOf("/") + 1), subject);
      }
      cursor = page.data.records.length > 0 ? page.data.cursor : undefined;
    } while (cursor);
    return { subjects, byRkey };
  }

  /**
   * Outcomes settled by the AppView: gone or blocked (others: undefined).
   * Through the person's PDS, one authenticated getProfiles per 25 gives
   * both (viewer state). Against a public AppView, unauthenticated profiles
   * (much lighter: no viewer hydration) say who is gone, and getRelationships
   * (public, 30 a call) says who blocks whom.
   */
  private async lookUp(chunk: readonly Follow[], signal?: AbortSignal): Promise<("gone" | "blocked" | undefined)[]> {
    const dids = chunk.map((f) => f.did);
    const found = new Set<string>();
    const blocked = new Set<string>();
    const jobs: (() => Promise<void>)[] = [];
    const view = this.appview ?? this.agent;
    for (let i = 0; i < dids.length; i += PROFILES_PER_CALL) {
      const actors = dids.slice(i, i + PROFILES_PER_CALL);
      jobs.push(async () => {
        const res = await this.call(() => view.app.bsky.actor.getProfiles({ actors }, { signal }), signal);
        for (const p of res.data.profiles) {
          found.add(p.did);
          const v = p.viewer;
          if (v?.blocking || v?.blockedBy || v?.blockingByList) blocked.add(p.did);
        }
      });
    }
    for (let i = 0; this.appview && i < dids.length; i += RELATIONSHIPS_PER_CALL) {
      const others = dids.slice(i, i + RELATIONSHIPS_PER_CALL);
      jobs.push(async () => {
        const res = await this.call(() => view.app.bsky.graph.getRelationships({ actor: this.did, others }, { signal }), signal);
        for (const r of res.data.relationships as { did?: string; blocking?: string; blockedBy?: string; blockingByList?: string; blockedByList?: string }[]) {
          if (r.did && (r.blocking || r.blockedBy || r.blockingByList || r.blockedByList)) blocked.add(r.did);
        }
      });
    }
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) await jobs[next++]!();
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, jobs.length) }, worker));
    return dids.map((did) => (!found.has(did) ? "gone" : blocked.has(did) ? "blocked" : undefined));
  }

  /** Writes `follows` in budget-sized batches, recording each batch as it lands. */
  private async write(follows: Follow[], run: WriterRun): Promise<void> {
    const signal = run.signal;
    let pending = follows;
    let failures = 0;
    while (pending.length > 0) {
      signal?.throwIfAborted();
      const grant = await this.acquire(pending.length, signal);
      const batch = pending.slice(0, grant.granted);
      try {
        const unmarked = batch.filter((f) => !f.marked);
        for (const f of unmarked) f.rkey = TID.nextStr();
        if (unmarked.length > 0) {
          await run.markInFlight(unmarked.flatMap((f) => f.personIds.map((personId) => ({ personId, marker: f.rkey }))));
        }
        for (const f of unmarked) f.marked = true;
        signal?.throwIfAborted();
      } catch (error) {
        await this.budget.refund(this.did, batch.length, grant.reservation).catch(() => {});
        throw error;
      }

      let outcome: TargetResult["outcome"] = "followed";
      let reason: string | undefined;
      try {
        const res = await this.agent.com.atproto.repo.applyWrites({
          repo: this.did,
          writes: batch.map((f) => ({
            $type: "com.atproto.repo.applyWrites#create" as const,
            collection: FOLLOW,
            rkey: f.rkey,
            value: { $type: FOLLOW, subject: f.did, createdAt: new Date(this.now()).toISOString() },
          })),
        });
        const limit = serverLimit(res.headers);
        if (limit) await this.budget.noteServerLimit(this.did, limit);
      } catch (error) {
        const failure = classify(error);
        if (failure === "auth") throw new AuthorizationExpiredError(`Bluesky refused the session: ${errorCode(error)}`);
        if (failure === "rate-limited") {
          // Refused before any write: the grant goes back (other failures keep theirs,
          // as the server may have counted the call).
          await this.budget.refund(this.did, batch.length, grant.reservation);
          await this.budget.noteServerLimit(this.did, { remaining: 0, resetAt: rateLimitedUntil(error, this.now()) });
          continue; // the budget now waits (or throws) until the reset
        }
        // Unknown fate or a refusal. The batch is atomic, but an earlier
        // request whose fate was unknown (this run's, or a dead run's) may
        // have landed since with some of the same rkeys, so that this one
        // was refused for them: what is in the repo is read record by
        // record. Those there are followed; the rest is written again.
        const found = await this.inRepo(batch, error);
        const landed = batch.filter((f, i) => found[i] === f.did);
        let clashed = false;
        batch.forEach((f, i) => {
          if (found[i] !== undefined && found[i] !== f.did) {
            // That rkey holds another follow (a dead run's marker, and the
            // target's account changed since): a fresh one, marked anew.
            Object.assign(f, { rkey: "", marked: false, reused: false });
            clashed = true;
          }
        });
        if (landed.length > 0 || clashed) {
          if (landed.length > 0) {
            failures = 0;
            await run.record(landed.flatMap((f) => f.personIds.map((personId) => ({ personId, outcome: "followed" as const }))));
            pending = pending.filter((f) => !landed.includes(f));
          }
          continue;
        }
        if (failure === "transient") {
          if (++failures > this.retries) throw error;
          await this.sleep(this.backoffMs * 2 ** (failures - 1), signal);
          continue; // same rkeys: if the lost request lands after all, the retry is refused, not doubled
        }
        outcome = "failed";
        reason = errorCode(error);
      }
      failures = 0;
      await run.record(batch.flatMap((f) => f.personIds.map((personId) => ({ personId, outcome, ...(reason ? { reason } : {}) }))));
      pending = pending.slice(batch.length);
    }
  }

  /** Waits for budget when the wait is short; else throws RateLimitedError. */
  private async acquire(wanted: number, signal?: AbortSignal): Promise<{ granted: number; reservation: string }> {
    for (;;) {
      const r = await this.budget.reserve(this.did, wanted);
      if ("reservation" in r && r.granted > 0) return r;
      if (!("retryAt" in r)) throw new Error("the budget granted nothing and gave no time to retry");
      const wait = r.retryAt.getTime() - this.now();
      if (wait > this.maxWaitMs) throw new RateLimitedError(r.retryAt);
      await this.sleep(Math.max(0, wait), signal);
    }
  }

  /** Whom each follow's record follows (see `subjectAt`), a few reads at a time. */
  private async inRepo(batch: readonly Follow[], cause: unknown): Promise<(string | undefined)[]> {
    const found: (string | undefined)[] = new Array(batch.length);
    let next = 0;
    const reader = async () => {
      while (next < batch.length) {
        const i = next++;
        found[i] = await this.subjectAt(batch[i]!.rkey, cause);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, batch.length) }, reader));
    return found;
  }

  /**
   * Whom the follow record `rkey` follows; undefined when there is no such
   * record. Rethrows `cause` when the repo cannot tell.
   */
  private async subjectAt(rkey: string, cause: unknown): Promise<string | undefined> {
    try {
      const res = await this.agent.com.atproto.repo.getRecord({ repo: this.did, collection: FOLLOW, rkey });
      const subject = (res.data.value as { subject?: unknown }).subject;
      return typeof subject === "string" ? subject : "";
    } catch (error) {
      if (errorCode(error) === "RecordNotFound") return undefined;
      throw cause;
    }
  }

  /** A read, retried after network and server errors; a 429 waits or throws like the budget. */
  private async call<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        signal?.throwIfAborted();
        const failure = classify(error);
        if (failure === "auth") throw new AuthorizationExpiredError(`Bluesky refused the session: ${errorCode(error)}`);
        if (failure === "rate-limited") {
          const until = rateLimitedUntil(error, this.now());
          if (until.getTime() - this.now() > this.maxWaitMs) throw new RateLimitedError(until);
          await this.sleep(Math.max(0, until.getTime() - this.now()), signal);
          continue;
        }
        if (failure !== "transient" || attempt >= this.retries) throw error;
        await this.sleep(this.backoffMs * 2 ** attempt, signal);
      }
    }
  }
}

function split(chunk: readonly Follow[], verdicts: readonly ("gone" | "blocked" | undefined)[]): { ok: Follow[]; results: TargetResult[] } {
  const ok: Follow[] = [];
  const results: TargetResult[] = [];
  chunk.forEach((f, i) => {
    const outcome = verdicts[i];
    if (outcome) for (const personId of f.personIds) results.push({ personId, outcome });
    else ok.push(f);
  });
  return { ok, results };
}
