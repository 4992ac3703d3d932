/**
 * The Bluesky follow writer on a real local Bluesky (dev-env PDS + AppView on
 * 127.0.0.1) and a real PostgreSQL for the shared budget. Each test acts as a
 * new person logged in with their password; the agent's fetch is wrapped to
 * count calls (and, on cue, to lose or refuse them).
 */
import { AtpAgent, type CredentialSession } from "@atproto/api";
import { TID } from "@atproto/common-web";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WriteBudgets } from "../../store/write-budget.ts";
import { expiredAccessToken, startBlueskyNetwork, type BlueskyNetwork, type TestUser } from "../../../test/harness/bluesky.ts";
import { startFlakyProxy } from "../../../test/harness/bluesky-proxy.ts";
import { createTestDatabase, type TestDatabase } from "../../../test/harness/database.ts";
import { BlueskyWriteBudget, type WriteLimits } from "../budget.ts";
import { AuthorizationExpiredError, RateLimitedError, type Target, type TargetResult, type WriterRun } from "../types.ts";
import { BlueskyWriter, type BlueskyWriterOptions } from "./writer.ts";

let net: BlueskyNetwork;
let db: TestDatabase;
/** Real accounts known to the AppView, to be followed. */
let accounts: string[] = [];
let people = 0;

interface Call { method: string; writes: number; at: number }
type Fault = (method: string, send: () => Promise<Response>) => Promise<Response | undefined> | undefined;

/** A WriterRun kept in memory, as the job runner keeps it in PostgreSQL. */
class MemoryRun implements WriterRun {
  readonly targets: readonly Target[];
  readonly inFlight: ReadonlyMap<number, string>;
  readonly signal?: AbortSignal;
  readonly outcomes = new Map<number, TargetResult>();
  readonly markers = new Map<number, string>();
  beforeRecord: (() => void) | undefined;
  afterMark: (() => void) | undefined;
  constructor(targets: readonly Target[], inFlight = new Map<number, string>(), signal?: AbortSignal) {
    this.targets = targets;
    this.inFlight = inFlight;
    if (signal) this.signal = signal;
    for (const [k, v] of inFlight) this.markers.set(k, v);
  }
  async markInFlight(entries: readonly { personId: number; marker: string }[]): Promise<void> {
    for (const e of entries) this.markers.set(e.personId, e.marker);
    this.afterMark?.();
  }
  async record(results: readonly TargetResult[]): Promise<void> {
    this.beforeRecord?.();
    for (const r of results) {
      this.outcomes.set(r.personId, r);
      this.markers.delete(r.personId);
    }
  }
  /** The next run after this one died: its unsettled targets, with its markers. */
  resumed(): MemoryRun {
    return new MemoryRun(this.targets.filter((t) => !this.outcomes.has(t.personId)), new Map(this.markers));
  }
  count(outcome: string): number {
    return [...this.outcomes.values()].filter((r) => r.outcome === outcome).length;
  }
}

interface Person {
  user: TestUser;
  agent: AtpAgent;
  calls: Call[];
  fault: Fault | undefined;
  writes(): number[];
  writer(options?: Partial<BlueskyWriterOptions> & { limits?: Partial<WriteLimits> }): BlueskyWriter;
  follows(): Promise<string[]>;
}

async function person(service?: string): Promise<Person> {
  const user = await net.createUser(`person${++people}`);
  const p: Person = {
    user,
    calls: [],
    fault: undefined,
    agent: new AtpAgent({
      service: service ?? net.pdsUrl,
      fetch: async (input, init) => {
        const request = new Request(input, init);
        const method = new URL(request.url).pathname.replace("/xrpc/", "");
        const body = method === "com.atproto.repo.applyWrites" ? ((await request.clone().json()) as { writes: unknown[] }) : undefined;
        p.calls.push({ method, writes: body?.writes.length ?? 0, at: Date.now() });
        const send = () => fetch(request);
        return (await p.fault?.(method, send)) ?? send();
      },
    }),
    writes: () => p.calls.filter((c) => c.method === "com.atproto.repo.applyWrites").map((c) => c.writes),
    writer: ({ limits, ...options } = {}) =>
      new BlueskyWriter({ agent: p.agent, did: user.did, budget: new BlueskyWriteBudget(new WriteBudgets(db.sql), limits), ...options }),
    async follows() {
      const subjects: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await user.agent.com.atproto.repo.listRecords({ repo: user.did, collection: "app.bsky.graph.follow", limit: 100, cursor });
        subjects.push(...page.data.records.map((r) => (r.value as { subject: string }).subject));
        cursor = page.data.records.length > 0 ? page.data.cursor : undefined;
      } while (cursor);
      return subjects;
    },
  };
  await p.agent.login({ identifier: user.handle, password: user.password });
  return p;
}

/** A deactivated account, one that blocks `p`, one that `p` blocks. */
async function obstacles(p: Person): Promise<{ gone: string; blocker: string; blockee: string }> {
  const [gone, blocker, blockee] = await Promise.all(["gone", "blocker", "blockee"].map((n) => net.createUser(`${n}${people}`)));
  await gone!.agent.com.atproto.server.deactivateAccount({});
  await blocker!.agent.app.bsky.graph.block.create({ repo: blocker!.did }, { subject: p.user.did, createdAt: new Date().toISOString() });
  await p.user.agent.app.bsky.graph.block.create({ repo: p.user.did }, { subject: blockee!.did, createdAt: new Date().toISOString() });
  return { gone: gone!.did, blocker: blocker!.did, blockee: blockee!.did };
}

const targets = (dids: readonly (string | null)[], firstId = 1): Target[] =>
  dids.map((stableId, i) => ({ personId: firstId + i, stableId, handle: null }));
const failedFetch = () => Promise.reject(new TypeError("fetch failed"));

beforeAll(async () => {
  [net, db] = await Promise.all([startBlueskyNetwork(), createTestDatabase()]);
  // 230 accounts: more than one applyWrites call's worth.
  const names = Array.from({ length: 230 }, (_, i) => `target${i}`);
  for (let i = 0; i < names.length; i += 10) {
    accounts.push(...(await Promise.all(names.slice(i, i + 10).map(async (name) => {
      const agent = new AtpAgent({ service: net.pdsUrl });
      await agent.createAccount({ handle: `${name}.test`, email: `${name}@example.com`, password: "password" });
      return agent.session!.did;
    }))));
  }
  await net.processAll();
}, 300_000);

afterAll(async () => {
  await Promise.all([net?.close(), db?.drop()]);
});

describe("BlueskyWriter", () => {
  it("follows in batches of at most 200, skips what it must, and the AppView sees the follows", async () => {
    const p = await person();
    const { gone, blocker, blockee } = await obstacles(p);
    await p.user.agent.follow(accounts[0]!);
    await net.processAll();

    const dids = [...accounts, accounts[5]!, null, "not a did", "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", gone, blocker, blockee];
    const run = new MemoryRun(targets(dids));
    await p.writer().run(run);

    const outcome = (i: number) => run.outcomes.get(i + 1)?.outcome;
    expect(outcome(0)).toBe("already_following");
    expect(run.count("followed")).toBe(230); // 229 accounts, one of them asked for twice
    expect([outcome(231), outcome(232)]).toEqual(["not_found", "not_found"]);
    expect([outcome(233), outcome(234)]).toEqual(["gone", "gone"]);
    expect([outcome(235), outcome(236)]).toEqual(["blocked", "blocked"]);
    expect(run.outcomes.size).toBe(dids.length);
    expect(run.markers.size).toBe(0);
    expect(p.writes()).toEqual([200, 29]);

    const follows = await p.follows();
    expect(follows.length).toBe(230);
    expect(new Set(follows)).toEqual(new Set(accounts));
    await net.processAll();
    const profile = await p.agent.getProfile({ actor: p.user.did });
    expect(profile.data.followsCount).toBe(230);
  });

  it("can look targets up on a public AppView instead, without the person's session", async () => {
    const p = await person();
    const { gone, blocker, blockee } = await obstacles(p);
    await net.processAll();
    const run = new MemoryRun(targets([accounts[0]!, gone, blocker, blockee, "did:plc:aaaaaaaaaaaaaaaaaaaaaaab"]));
    await p.writer({ appview: new AtpAgent({ service: net.network.bsky.url }) }).run(run);
    expect([1, 2, 3, 4, 5].map((id) => run.outcomes.get(id)?.outcome)).toEqual(["followed", "gone", "blocked", "blocked", "gone"]);
    expect(p.calls.map((c) => c.method)).not.toContain("app.bsky.actor.getProfiles"); // none went through the PDS
  });

  it("waits for the budget when it frees soon, and never exceeds it", async () => {
    const p = await person();
    const windowMs = 1500;
    const run = new MemoryRun(targets(accounts.slice(0, 25)));
    const started = Date.now();
    // The slack covers the time from a reservation to its request leaving (as in production, where it is 10 s).
    await p.writer({ limits: { hourPoints: 30, hourMs: windowMs, slackMs: 250 }, maxWaitMs: 5000 }).run(run);
    expect(run.count("followed")).toBe(25);
    expect(p.writes()).toEqual([10, 10, 5]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2 * windowMs);
    const writes = p.calls.filter((c) => c.writes > 0);
    for (const c of writes) {
      const inWindow = writes.filter((d) => d.at >= c.at && d.at < c.at + windowMs);
      expect(inWindow.reduce((sum, d) => sum + d.writes, 0)).toBeLessThanOrEqual(10);
    }
  });

  it("throws RateLimitedError at the time the budget frees when that is far", async () => {
    const p = await person();
    const run = new MemoryRun(targets(accounts.slice(0, 25)));
    const started = Date.now();
    const error = await p.writer({ limits: { hourPoints: 30, hourMs: 60_000, slackMs: 0 }, maxWaitMs: 1000 }).run(run).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    const until = (error as RateLimitedError).until.getTime();
    expect(until).toBeGreaterThanOrEqual(started + 60_000);
    expect(until).toBeLessThanOrEqual(Date.now() + 60_000);
    expect(run.count("followed")).toBe(10);
    expect(await p.follows()).toHaveLength(10);
  });

  it("honours a 429 from the PDS: waits for its reset, or throws with it", async () => {
    const proxy = await startFlakyProxy(net.pdsUrl);
    try {
      const p = await person(proxy.url);
      proxy.rateLimit("com.atproto.repo.applyWrites", 1, 2);
      const run = new MemoryRun(targets(accounts.slice(0, 5)));
      await p.writer({ maxWaitMs: 10_000 }).run(run);
      expect(run.count("followed")).toBe(5);
      const seen = proxy.seen.filter((s) => s.method === "com.atproto.repo.applyWrites");
      expect(seen.map((s) => s.status)).toEqual([429, 200]);
      const reset = Math.ceil(seen[0]!.at / 1000 + 2) * 1000;
      expect(seen[1]!.at).toBeGreaterThanOrEqual(reset);
      // The refused call cost nothing: the budget holds the 5 creates that landed, not 10.
      expect(await new WriteBudgets(db.sql).used(p.user.did, 3_600_000)).toBe(5 * 3);

      proxy.rateLimit("com.atproto.repo.applyWrites", 1, 120);
      const second = new MemoryRun(targets(accounts.slice(5, 10)));
      const error = await p.writer({ maxWaitMs: 1000 }).run(second).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RateLimitedError);
      expect((error as RateLimitedError).until.getTime() - Date.now()).toBeGreaterThan(100_000);
      expect(second.outcomes.size).toBe(0);
      // Every worker sharing the budget now waits too.
      const budget = new BlueskyWriteBudget(new WriteBudgets(db.sql));
      expect(await budget.reserve(p.user.did, 1)).toEqual({ granted: 0, retryAt: (error as RateLimitedError).until });
    } finally {
      await proxy.close();
    }
  });

  it("writes each follow once when a run dies after its write, and the next run reports them followed", async () => {
    const p = await person();
    const dids = accounts.slice(0, 12);
    const first = new MemoryRun(targets(dids));
    first.beforeRecord = () => {
      throw new Error("the worker died");
    };
    await expect(p.writer().run(first)).rejects.toThrow("the worker died");
    expect(first.markers.size).toBe(12);

    const second = first.resumed();
    await p.writer().run(second);
    expect(second.count("followed")).toBe(12);
    expect(p.writes()).toEqual([12]);
    expect((await p.follows()).sort()).toEqual([...dids].sort());
  });

  it("writes each follow once when a dead run's write lands after the next run has listed the repo", async () => {
    const p = await person();
    const dids = accounts.slice(0, 6);
    // The dead run had marked its first three, and its write is still on the way.
    const late = dids.slice(0, 3).map((did) => ({ did, rkey: TID.nextStr() }));
    const resumed = new MemoryRun(targets(dids), new Map(late.map((l, i) => [i + 1, l.rkey])));
    let landed = false;
    p.fault = async (method) => {
      if (method !== "com.atproto.repo.applyWrites" || landed) return undefined;
      landed = true;
      await p.user.agent.com.atproto.repo.applyWrites({
        repo: p.user.did,
        writes: late.map((l) => ({
          $type: "com.atproto.repo.applyWrites#create" as const,
          collection: "app.bsky.graph.follow",
          rkey: l.rkey,
          value: { $type: "app.bsky.graph.follow", subject: l.did, createdAt: new Date().toISOString() },
        })),
      });
      return undefined;
    };
    await p.writer().run(resumed);
    expect(resumed.count("followed")).toBe(6);
    // Refused for the three that landed late, then written without them.
    expect(p.writes()).toEqual([6, 3]);
    expect((await p.follows()).sort()).toEqual([...dids].sort());
  });

  it("writes a fresh record for a target whose marker's rkey holds a follow of someone else (its account changed since)", async () => {
    const p = await person();
    const [before, now] = [accounts[10]!, accounts[11]!];
    const rkey = TID.nextStr();
    await p.user.agent.com.atproto.repo.createRecord({
      repo: p.user.did,
      collection: "app.bsky.graph.follow",
      rkey,
      record: { $type: "app.bsky.graph.follow", subject: before, createdAt: new Date().toISOString() },
    });
    const resumed = new MemoryRun(targets([now]), new Map([[1, rkey]]));
    await p.writer().run(resumed);
    expect(resumed.outcomes.get(1)?.outcome).toBe("followed");
    expect((await p.follows()).sort()).toEqual([before, now].sort());
  });

  it("stops at the abort signal before writing, gives the budget back, and the next run follows once", async () => {
    const p = await person();
    const controller = new AbortController();
    const first = new MemoryRun(targets(accounts.slice(0, 8)), new Map(), controller.signal);
    first.afterMark = () => controller.abort();
    await expect(p.writer().run(first)).rejects.toThrow();
    expect(p.writes()).toEqual([]);
    const budgets = new WriteBudgets(db.sql);
    expect(await budgets.used(p.user.did, 60_000)).toBe(0);

    const second = first.resumed();
    await p.writer().run(second);
    expect(second.count("followed")).toBe(8);
    expect(await p.follows()).toHaveLength(8);
    expect(await budgets.used(p.user.did, 60_000)).toBe(24);
  });

  it("checks the repo when a write's answer is lost, and retries network failures with back-off", async () => {
    const p = await person();
    const sleeps: number[] = [];
    const sleep = async (ms: number) => void sleeps.push(ms);
    // The write lands but its answer never arrives.
    p.fault = (method, send) => (method === "com.atproto.repo.applyWrites" ? send().then(failedFetch) : undefined);
    const lost = new MemoryRun(targets(accounts.slice(0, 4)));
    await p.writer({ sleep }).run(lost);
    expect(lost.count("followed")).toBe(4);
    expect(p.writes()).toEqual([4]);

    // Two requests fail before reaching the PDS, the third goes through.
    let failures = 2;
    p.fault = (method) => (method === "com.atproto.repo.applyWrites" && failures-- > 0 ? failedFetch() : undefined);
    const flaky = new MemoryRun(targets(accounts.slice(4, 8)));
    await p.writer({ sleep, backoffMs: 100 }).run(flaky);
    expect(flaky.count("followed")).toBe(4);
    expect(sleeps).toEqual([100, 200]);

    // A PDS that stays unreachable: the run gives up (the job retries later), then resumes.
    p.fault = (method) => (method === "com.atproto.repo.applyWrites" ? failedFetch() : undefined);
    const down = new MemoryRun(targets(accounts.slice(8, 12)));
    await expect(p.writer({ sleep, retries: 2 }).run(down)).rejects.toThrow();
    p.fault = undefined;
    const resumed = down.resumed();
    await p.writer().run(resumed);
    expect(resumed.count("followed")).toBe(4);
    expect((await p.follows()).sort()).toEqual(accounts.slice(0, 12).sort());
  });

  it("waits out a refresh that fails on the network (the session is intact): no AuthorizationExpiredError, and the next run follows", async () => {
    const p = await person();
    const session = p.agent.sessionManager as CredentialSession;
    // The access token has run out, and the refresh that follows cannot reach the PDS.
    session.session = { ...session.session!, accessJwt: expiredAccessToken(net, p.user.did) };
    p.fault = (method) => (method === "com.atproto.server.refreshSession" ? failedFetch() : undefined);
    const run = new MemoryRun(targets(accounts.slice(20, 22)));
    const error = await p.writer({ sleep: async () => {}, retries: 2 }).run(run).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(AuthorizationExpiredError);
    p.fault = undefined;
    const resumed = run.resumed();
    await p.writer().run(resumed);
    expect(resumed.count("followed")).toBe(2);
  });

  it("reads every record back when a request of unknown fate lands late under a larger retry: only what is in the repo counts as followed", async () => {
    const p = await person();
    // The budget grants 4 first (it was short), then all 5.
    const real = new BlueskyWriteBudget(new WriteBudgets(db.sql));
    const caps = [4];
    const budget: BlueskyWriteBudget = Object.assign(Object.create(real) as BlueskyWriteBudget, {
      reserve: (did: string, wanted: number) => real.reserve(did, Math.min(wanted, caps.shift() ?? wanted)),
    });
    // The first write's answer is lost, and the write itself reaches the PDS only just before the retry does.
    let held: (() => Promise<Response>) | undefined;
    let writes = 0;
    p.fault = async (method, send) => {
      if (method !== "com.atproto.repo.applyWrites") return undefined;
      if (++writes === 1) {
        held = send;
        return failedFetch();
      }
      if (held) {
        await (await held()).body?.cancel();
        held = undefined;
      }
      return undefined;
    };
    const run = new MemoryRun(targets(accounts.slice(30, 35)));
    await new BlueskyWriter({ agent: p.agent, did: p.user.did, budget, sleep: async () => {} }).run(run);
    expect(run.count("followed")).toBe(5);
    const follows = await p.follows();
    expect(follows.sort()).toEqual(accounts.slice(30, 35).sort());
  });

  it("turns a session the PDS refuses into AuthorizationExpiredError", async () => {
    const p = await person();
    const session = p.agent.sessionManager as CredentialSession;
    session.session = { ...session.session!, accessJwt: "not-a-token", refreshJwt: "not-a-token-either" };
    await expect(p.writer().run(new MemoryRun(targets(accounts.slice(0, 2))))).rejects.toBeInstanceOf(AuthorizationExpiredError);
  });
});
