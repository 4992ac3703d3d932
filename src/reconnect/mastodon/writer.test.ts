/**
 * The Mastodon writer against the test instance, whose follows of remote
 * accounts travel as real signed Follow activities to local Fedify servers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFediServer, type FediServer, type FediUser } from "../../../test/harness/fediverse.ts";
import { startMastodonInstance, type MastodonInstance } from "../../../test/harness/mastodon-instance.ts";
import { AuthorizationExpiredError, RateLimitedError, type MastodonAuthorization, type Target, type TargetResult, type WriterRun } from "../types.ts";
import { MastodonWriter, normalizeAcct, type MastodonWriterOptions } from "./writer.ts";

let instance: MastodonInstance;
let remote: FediServer;
/** The instance's clock while a test fakes time (shared with the writer's). */
let fakeNow: number | null = null;
let people = 0;
let nextPersonId = 1;

beforeAll(async () => {
  instance = await startMastodonInstance({ now: () => fakeNow ?? Date.now() });
  remote = await startFediServer({ users: [] });
});

afterAll(async () => {
  await instance?.close();
  await remote?.close();
});

/** An in-memory WriterRun: what the job runner persists, kept in maps. */
class MemoryRun implements WriterRun {
  readonly targets: Target[];
  readonly inFlight: Map<number, string>;
  readonly markers = new Map<number, string>();
  readonly outcomes = new Map<number, TargetResult>();
  recordCalls = 0;
  failRecords = 0;
  onMark?: () => void;
  signal?: AbortSignal;
  constructor(targets: Target[], inFlight = new Map<number, string>()) {
    this.targets = targets;
    this.inFlight = inFlight;
    for (const [k, v] of inFlight) this.markers.set(k, v);
  }
  async markInFlight(entries: readonly { personId: number; marker: string }[]): Promise<void> {
    for (const e of entries) this.markers.set(e.personId, e.marker);
    this.onMark?.();
  }
  async record(results: readonly TargetResult[]): Promise<void> {
    this.recordCalls++;
    if (this.failRecords > 0) {
      this.failRecords--;
      throw new Error("database went away");
    }
    for (const r of results) {
      this.outcomes.set(r.personId, r);
      this.markers.delete(r.personId);
    }
  }
  /** The run a job would start next: targets without outcomes, markers left behind. */
  next(): MemoryRun {
    const run = new MemoryRun(this.targets.filter((t) => !this.outcomes.has(t.personId)), new Map(this.markers));
    for (const [k, v] of this.outcomes) run.outcomes.set(k, v);
    return run;
  }
  outcome(target: Target): string | undefined {
    const r = this.outcomes.get(target.personId);
    return r && (r.reason ? `${r.outcome}:${r.reason}` : r.outcome);
  }
}

/** A fresh local person on the instance with a token. */
async function person(scopes = "read write follow"): Promise<{ name: string; auth: MastodonAuthorization }> {
  const name = `person${++people}`;
  const account = await instance.addUser({ name });
  return { name, auth: { instance: instance.origin, accessToken: instance.issueToken(name, scopes), scope: scopes, accountId: account.id } };
}

async function remoteUsers(...specs: { name: string; locked?: boolean }[]): Promise<FediUser[]> {
  return Promise.all(specs.map((s) => remote.addUser({ ...s, name: `${s.name}${people}` })));
}

const byAcct = (user: FediUser): Target => ({ personId: nextPersonId++, stableId: null, handle: user.acct });
const byUri = (user: FediUser): Target => ({ personId: nextPersonId++, stableId: user.actorId, handle: null });

function writer(auth: MastodonAuthorization, options: MastodonWriterOptions = {}): MastodonWriter {
  return new MastodonWriter(auth, { allowPrivateAddresses: true, ...options });
}

/**
 * The way to the person's instance, where the requests `match` picks (at most
 * `times`) get `fault`: that status (a reverse proxy's 502 while Mastodon
 * restarts), or no answer at all ("hang", until the client's timeout).
 */
function faulty(match: (url: URL, method: string) => boolean, fault: number | "hang", times = Infinity): typeof fetch {
  let left = times;
  return async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (left > 0 && match(url, init?.method ?? "GET")) {
      left--;
      if (fault === "hang") {
        return new Promise<Response>((_, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason)));
      }
      return new Response(JSON.stringify({ error: "Bad gateway" }), { status: fault, headers: { "Content-Type": "application/json" } });
    }
    return fetch(input, init);
  };
}

/** A fake clock shared by the writer and the instance; sleeping moves it. */
function fakeClock(start: number) {
  fakeNow = start;
  const sleeps: number[] = [];
  return {
    sleeps,
    now: () => fakeNow!,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      fakeNow! += ms;
    },
    stop: () => { fakeNow = null; },
  };
}

describe("MastodonWriter", () => {
  it("follows remote accounts found by acct or actor URI, and local ones: signed Follows arrive, Accepts come back", async () => {
    const me = await person();
    const [alice, bob] = await remoteUsers({ name: "alice" }, { name: "bob" });
    const local = await instance.addUser({ name: `local${people}` });
    const targets = [byAcct(alice!), byUri(bob!), { personId: nextPersonId++, stableId: local.uri, handle: `${local.username}@${instance.domain}` }];
    const run = new MemoryRun(targets);
    await writer(me.auth).run(run);
    expect(targets.map((t) => run.outcome(t))).toEqual(["followed", "followed", "followed"]);
    for (const user of [alice!, bob!]) {
      expect(user.follows).toHaveLength(1);
      expect(user.follows[0]).toMatchObject({ actor: `${instance.origin}/users/${me.name}`, object: user.actorId });
    }
    expect(instance.isFollowing(me.name, local.username)).toBe(true);
    await alice!.waitFor(() => instance.isFollowing(me.name, alice!.acct));
    expect(instance.server.user(me.name).accepts.length).toBeGreaterThanOrEqual(1);
    expect(run.markers.size).toBe(0);
  });

  it("asks locked accounts (requested), skips what is already followed, and sorts out the unfollowable", async () => {
    const me = await person();
    const [locked, known, gone, blocking, blocked, deleted] = await remoteUsers(
      { name: "locked", locked: true }, { name: "known" }, { name: "gone" }, { name: "blocking" }, { name: "blocked" }, { name: "deleted" });
    const nobody: Target = { personId: nextPersonId++, stableId: null, handle: `nobody@${remote.accountDomain}` };
    deleted!.gone = true; // its actor answers 410 with a Tombstone
    const targets = [byAcct(locked!), byAcct(known!), byAcct(gone!), byAcct(blocking!), byAcct(blocked!), nobody, byUri(deleted!)];
    // The instance knows these accounts already (someone else followed them).
    const other = await person();
    await writer(other.auth).run(new MemoryRun([byAcct(known!), byAcct(gone!), byAcct(blocking!), byAcct(blocked!)]));
    instance.follow(me.name, known!.acct);
    instance.suspend(gone!.acct);
    instance.block(blocking!.acct, me.name);
    instance.block(me.name, blocked!.acct);
    const run = new MemoryRun(targets);
    await writer(me.auth).run(run);
    expect(targets.map((t) => run.outcome(t))).toEqual(["requested", "already_following", "gone", "blocked", "blocked", "not_found", "not_found"]);
    expect(locked!.follows).toHaveLength(1);
    expect(instance.isRequested(me.name, locked!.acct)).toBe(true);
    for (const t of [known!, gone!, blocking!, blocked!]) expect(instance.followPosts(t.acct, me.auth.accessToken)).toHaveLength(0);
    expect(known!.follows.filter((f) => f.actor.endsWith(`/${me.name}`))).toHaveLength(0);
  });

  it("follows in batches, records each batch, and keeps to its concurrency", async () => {
    const me = await person();
    const users = await remoteUsers(...Array.from({ length: 9 }, (_, i) => ({ name: `batch${i}_` })));
    let inFlight = 0;
    let most = 0;
    const counting: typeof fetch = async (input, init) => {
      most = Math.max(most, ++inFlight);
      try {
        return await fetch(input, init);
      } finally {
        inFlight--;
      }
    };
    const run = new MemoryRun(users.map(byAcct));
    await writer(me.auth, { concurrency: 3, batchSize: 4, fetch: counting }).run(run);
    expect([...run.outcomes.values()].every((r) => r.outcome === "followed")).toBe(true);
    expect(run.recordCalls).toBe(3);
    expect(most).toBeLessThanOrEqual(3);
    expect(most).toBeGreaterThan(1);
  });

  it("waits for a near reset (rate-limit headers, or a 429) and carries on", async () => {
    const me = await person();
    const users = await remoteUsers({ name: "rl1_" }, { name: "rl2_" }, { name: "rl3_" });
    const windowMs = 10_000;
    const clock = fakeClock(Math.floor(Date.now() / windowMs) * windowMs + 1);
    const saved = instance.rateLimit;
    instance.rateLimit = { limit: 4, windowMs };
    try {
      const run = new MemoryRun(users.map(byAcct));
      await writer(me.auth, { now: clock.now, sleep: clock.sleep }).run(run);
      expect([...run.outcomes.values()].map((r) => r.outcome)).toEqual(["followed", "followed", "followed"]);
      expect(clock.sleeps.length).toBeGreaterThan(0);
      expect(clock.sleeps.every((ms) => ms > 0 && ms <= windowMs)).toBe(true);
      // The headers were enough: the instance never had to refuse.
      expect(instance.requests.filter((r) => r.token === me.auth.accessToken && r.status === 429)).toHaveLength(0);

      instance.rateLimit = saved;
      const [late] = await remoteUsers({ name: "rl4_" });
      instance.failNext(1, { resetInMs: 2_000 });
      const second = new MemoryRun([byAcct(late!)]);
      await writer(me.auth, { now: clock.now, sleep: clock.sleep }).run(second);
      expect(second.outcome(second.targets[0]!)).toBe("followed");
      expect(clock.sleeps.at(-1)).toBe(2_000);
    } finally {
      instance.rateLimit = saved;
      clock.stop();
    }
  });

  it("throws RateLimitedError at the instance's reset when the wait is long, then resumes", async () => {
    const me = await person();
    const users = await remoteUsers({ name: "long1_" }, { name: "long2_" });
    const windowMs = 300_000;
    const start = Math.floor(Date.now() / windowMs) * windowMs + 1_000;
    const clock = fakeClock(start);
    const saved = instance.rateLimit;
    instance.rateLimit = { limit: 3, windowMs };
    try {
      const run = new MemoryRun(users.map(byAcct));
      const error = await writer(me.auth, { now: clock.now, sleep: clock.sleep, concurrency: 1 }).run(run).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RateLimitedError);
      expect((error as RateLimitedError).until.getTime()).toBe(start - 1_000 + windowMs);
      expect(clock.sleeps).toEqual([]);
      fakeNow = (error as RateLimitedError).until.getTime() + 1;
      instance.rateLimit = saved;
      const resumed = run.next();
      await writer(me.auth, { now: clock.now, sleep: clock.sleep }).run(resumed);
      expect(users.map((u) => resumed.outcomes.get(resumed.targets.find((t) => t.handle === u.acct)?.personId ?? -1)?.outcome)).toEqual(["followed", "followed"]);
    } finally {
      instance.rateLimit = saved;
      clock.stop();
    }
  });

  it("throws AuthorizationExpiredError when the token is revoked (or lacks the scopes)", async () => {
    const me = await person();
    const [u] = await remoteUsers({ name: "revoked" });
    instance.revokeToken(me.auth.accessToken);
    await expect(writer(me.auth).run(new MemoryRun([byAcct(u!)]))).rejects.toBeInstanceOf(AuthorizationExpiredError);
    const reader = await person("read");
    await expect(writer(reader.auth).run(new MemoryRun([byAcct(u!)]))).rejects.toBeInstanceOf(AuthorizationExpiredError);
    expect(u!.follows).toHaveLength(0);
  });

  it("stops at the instance's follow limit: the rest fail with follow_limit", async () => {
    const me = await person();
    const users = await remoteUsers(...Array.from({ length: 6 }, (_, i) => ({ name: `lim${i}_` })));
    const saved = instance.maxFollowing;
    instance.maxFollowing = 1;
    try {
      const run = new MemoryRun(users.map(byAcct));
      await writer(me.auth, { batchSize: 3 }).run(run);
      const outcomes = run.targets.map((t) => run.outcome(t));
      expect(outcomes.filter((o) => o === "followed")).toHaveLength(1);
      expect(outcomes.filter((o) => o === "failed:follow_limit")).toHaveLength(5);
      // The second batch was not even tried.
      for (const u of users.slice(3)) expect(instance.followPosts(u.acct)).toHaveLength(0);
    } finally {
      instance.maxFollowing = saved;
    }
  });

  it("follows exactly once across a run that dies after sending (record fails) and the run after it", async () => {
    const me = await person();
    const users = await remoteUsers({ name: "once1_" }, { name: "once2_", locked: true }, { name: "once3_" });
    const first = new MemoryRun(users.map(byAcct));
    first.failRecords = 1;
    await expect(writer(me.auth).run(first)).rejects.toThrow("database went away");
    expect(first.outcomes.size).toBe(0);
    expect(first.markers.size).toBe(3);
    const second = first.next();
    await writer(me.auth).run(second);
    expect(second.targets.map((t) => second.outcome(t))).toEqual(["followed", "requested", "followed"]);
    for (const u of users) {
      expect(instance.followPosts(u.acct)).toHaveLength(1);
      expect(u.follows).toHaveLength(1);
    }
  });

  it("stops when aborted after marking, and the next run follows each target once", async () => {
    const me = await person();
    const users = await remoteUsers({ name: "abort1_" }, { name: "abort2_" });
    const controller = new AbortController();
    const first = new MemoryRun(users.map(byAcct));
    first.signal = controller.signal;
    first.onMark = () => controller.abort(new Error("service stopping"));
    await expect(writer(me.auth).run(first)).rejects.toThrow("service stopping");
    for (const u of users) expect(instance.followPosts(u.acct)).toHaveLength(0);
    const second = first.next();
    await writer(me.auth).run(second);
    expect(second.targets.map((t) => second.outcome(t))).toEqual(["followed", "followed"]);
    for (const u of users) expect(instance.followPosts(u.acct)).toHaveLength(1);
  });

  it("fails only the target whose server hangs (timeout), and follows the others", async () => {
    const me = await person();
    // A server that never answers WebFinger: the instance's resolve hangs, the writer's request times out.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const hanging = await startFediServer({
      users: [{ name: "stuck" }],
      routes: async (request) => (new URL(request.url).pathname.startsWith("/.well-known/webfinger") ? (await released, new Response(null, { status: 404 })) : null),
    });
    try {
      const [ok] = await remoteUsers({ name: "fine" });
      const stuck = hanging.users.get("stuck")!;
      const targets = [byAcct(stuck), byAcct(ok!)];
      const run = new MemoryRun(targets);
      await writer(me.auth, { timeoutMs: 1_000 }).run(run);
      expect(run.outcome(targets[0]!)).toBe("failed:timeout");
      expect(run.outcome(targets[1]!)).toBe("followed");
    } finally {
      release();
      await hanging.close();
    }
  });

  it("stops the run on a 502 or a timeout from the person's own instance on lookup: no target fails, the next run follows them", async () => {
    const me = await person();
    const users = await remoteUsers({ name: "down1_" }, { name: "down2_" }, { name: "down3_" });
    const lookup = (url: URL) => url.pathname === "/api/v1/accounts/lookup";
    const first = new MemoryRun(users.map(byAcct));
    const error = await writer(me.auth, { fetch: faulty(lookup, 502) }).run(first).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: "MastodonApiError", status: 502 });
    expect(first.outcomes.size).toBe(0);
    const second = first.next();
    const timedOut = await writer(me.auth, { fetch: faulty(lookup, "hang"), timeoutMs: 300 }).run(second).catch((e: unknown) => e);
    expect(timedOut).toMatchObject({ name: "MastodonApiError", code: "timeout" });
    expect(second.outcomes.size).toBe(0);
    for (const u of users) expect(instance.followPosts(u.acct)).toHaveLength(0);
    const third = second.next();
    await writer(me.auth).run(third);
    expect(third.targets.map((t) => third.outcome(t))).toEqual(["followed", "followed", "followed"]);
  });

  it("stops the run on a 503 from relationships, and on a 502 from a follow; the next run follows each target once", async () => {
    const me = await person();
    const users = await remoteUsers({ name: "rel1_" }, { name: "rel2_" });
    const first = new MemoryRun(users.map(byAcct));
    const relationships = (url: URL) => url.pathname === "/api/v1/accounts/relationships";
    await expect(writer(me.auth, { fetch: faulty(relationships, 503) }).run(first)).rejects.toMatchObject({ status: 503 });
    expect(first.outcomes.size).toBe(0);
    expect(first.markers.size).toBe(0);

    const second = first.next();
    const follow = (url: URL, method: string) => method === "POST" && url.pathname.endsWith("/follow");
    await expect(writer(me.auth, { concurrency: 1, fetch: faulty(follow, 502, 1) }).run(second)).rejects.toMatchObject({ status: 502 });
    expect([...second.outcomes.values()].filter((r) => r.outcome === "failed")).toEqual([]);
    const third = second.next();
    await writer(me.auth).run(third);
    expect(third.targets.map((t) => third.outcome(t))).toEqual(["followed", "followed"]);
    for (const u of users) expect(instance.followPosts(u.acct)).toHaveLength(1);
  });

  it("fails only the target whose resolve fails (502 from search) while the instance answers, by acct or by actor URI", async () => {
    const me = await person();
    const [broken, byUriBroken, fine] = await remoteUsers({ name: "sbroken" }, { name: "sbrokenuri" }, { name: "sfine" });
    const search = (url: URL) =>
      url.pathname === "/api/v2/search" && [broken!.acct, byUriBroken!.actorId].includes(url.searchParams.get("q") ?? "");
    const targets = [byAcct(broken!), byUri(byUriBroken!), byAcct(fine!)];
    const run = new MemoryRun(targets);
    await writer(me.auth, { fetch: faulty(search, 502) }).run(run);
    expect(targets.map((t) => run.outcome(t))).toEqual(["failed:http_502", "failed:http_502", "followed"]);
  });

  it("stops the run when a search fails and the instance does not answer either (target known by actor URI only)", async () => {
    const me = await person();
    const [u] = await remoteUsers({ name: "urionly" });
    const any = (url: URL) => url.pathname === "/api/v2/search" || url.pathname === "/api/v1/accounts/verify_credentials";
    const run = new MemoryRun([byUri(u!)]);
    await expect(writer(me.auth, { fetch: faulty(any, 503) }).run(run)).rejects.toMatchObject({ status: 503 });
    expect(run.outcomes.size).toBe(0);
  });

  it("normalizes accts", () => {
    expect(normalizeAcct("@Alice@Mastodon.Social")).toBe("Alice@mastodon.social");
    expect(normalizeAcct("alice")).toBeNull();
    expect(normalizeAcct(null)).toBeNull();
  });
});
