/**
 * Bluesky reconnection on a local dev-env network (PLC, PDS, AppView on
 * 127.0.0.1, test/harness/bluesky.ts) with the budget in PostgreSQL:
 *
 * - 1,000 follows by BlueskyWriter (listRecords, lookups, applyWrites of
 *   ≤ 200 creates, budget reservations; lookups through the PDS, then on
 *   the AppView directly) against one `createRecord` per follow, and bare
 *   applyWrites calls as the floor, in the same run, to the same 1,000
 *   accounts, each from a fresh person;
 * - a job bigger than its budget, scaled down (60 points per 2-second
 *   "hour"): time to drain it against the budget's theoretical minimum,
 *   (ceil(writes·3 / points) − 1) windows (the first window's points go at
 *   once), and the most points sent in any window
 *   (by the requests' send times), which must not exceed the budget.
 */
import { AtpAgent } from "@atproto/api";
import { TID } from "@atproto/common-web";
import { BlueskyWriteBudget, type WriteLimits } from "../src/reconnect/budget.ts";
import { BlueskyWriter } from "../src/reconnect/bluesky/writer.ts";
import type { Target, TargetResult, WriterRun } from "../src/reconnect/types.ts";
import { WriteBudgets } from "../src/store/write-budget.ts";
import type { Sql } from "../src/store/database.ts";
import type { BlueskyNetwork, TestUser } from "../test/harness/bluesky.ts";
import type { Benchmark } from "./context.ts";
import { dropDatabase, freshDatabase } from "./db.ts";
import { int, log, printTable } from "./report.ts";

const FOLLOWS = 1_000;
const DRAIN_FOLLOWS = 200;
const DRAIN_LIMITS: Partial<WriteLimits> = { hourPoints: 60, hourMs: 2_000, slackMs: 100 };
const FOLLOW = "app.bsky.graph.follow";

interface Sent { at: number; writes: number }

/** An agent logged in as `user` whose applyWrites calls (and all calls) are counted. */
async function countingAgent(net: BlueskyNetwork, user: TestUser): Promise<{ agent: AtpAgent; calls: Map<string, number>; writes: Sent[] }> {
  const calls = new Map<string, number>();
  const writes: Sent[] = [];
  const agent = new AtpAgent({
    service: net.pdsUrl,
    fetch: async (input, init) => {
      const request = new Request(input, init);
      const method = new URL(request.url).pathname.replace("/xrpc/", "");
      calls.set(method, (calls.get(method) ?? 0) + 1);
      if (method === "com.atproto.repo.applyWrites") {
        const body = (await request.clone().json()) as { writes: unknown[] };
        writes.push({ at: performance.now(), writes: body.writes.length });
      }
      return fetch(request);
    },
  });
  await agent.login({ identifier: user.handle, password: user.password });
  return { agent, calls, writes };
}

/** The job runner's part, in memory. */
function memoryRun(dids: readonly string[]): WriterRun & { outcomes: Map<number, TargetResult> } {
  const outcomes = new Map<number, TargetResult>();
  const targets: Target[] = dids.map((stableId, i) => ({ personId: i + 1, stableId, handle: null }));
  return {
    targets,
    inFlight: new Map(),
    outcomes,
    async markInFlight() {},
    async record(results) {
      for (const r of results) outcomes.set(r.personId, r);
    },
  };
}

async function createAccounts(net: BlueskyNetwork, count: number): Promise<string[]> {
  const dids: string[] = [];
  for (let i = 0; i < count; i += 10) {
    const batch = Array.from({ length: Math.min(10, count - i) }, (_, j) => `account${i + j}`);
    dids.push(...(await Promise.all(batch.map(async (name) => {
      const agent = new AtpAgent({ service: net.pdsUrl });
      await agent.createAccount({ handle: `${name}.test`, email: `${name}@example.com`, password: "password" });
      return agent.session!.did;
    }))));
    if ((i + 10) % 250 === 0) log(`created ${i + 10} accounts`);
  }
  return dids;
}

async function followCount(user: TestUser): Promise<number> {
  let count = 0;
  let cursor: string | undefined;
  do {
    const page = await user.agent.com.atproto.repo.listRecords({ repo: user.did, collection: FOLLOW, limit: 100, cursor });
    count += page.data.records.length;
    cursor = page.data.records.length > 0 ? page.data.cursor : undefined;
  } while (cursor);
  return count;
}

async function writerRun(net: BlueskyNetwork, sql: Sql, user: TestUser, dids: readonly string[], options: { limits?: Partial<WriteLimits>; appview?: boolean } = {}) {
  const { agent, calls, writes } = await countingAgent(net, user);
  const budget = new BlueskyWriteBudget(new WriteBudgets(sql), options.limits);
  const appview = options.appview
    ? new AtpAgent({ service: net.network.bsky.url, fetch: (input, init) => (calls.set("appview", (calls.get("appview") ?? 0) + 1), fetch(input, init)) })
    : undefined;
  const writer = new BlueskyWriter({ agent, did: user.did, budget, maxWaitMs: 10_000, ...(appview ? { appview } : {}) });
  const run = memoryRun(dids);
  const start = performance.now();
  await writer.run(run);
  const seconds = (performance.now() - start) / 1000;
  const followed = [...run.outcomes.values()].filter((r) => r.outcome === "followed").length;
  if (followed !== dids.length) throw new Error(`writer followed ${followed} of ${dids.length}`);
  const requests = [...calls.values()].reduce((a, b) => a + b, 0) - (calls.get("com.atproto.server.createSession") ?? 0);
  return { seconds, writes, requests, budget };
}

/** The most points sent within any `windowMs` (by send time). */
function maxInWindow(writes: readonly Sent[], windowMs: number, cost: number): number {
  let max = 0;
  for (const w of writes) {
    const points = writes.filter((o) => o.at >= w.at && o.at < w.at + windowMs).reduce((sum, o) => sum + o.writes * cost, 0);
    max = Math.max(max, points);
  }
  return max;
}

export const reconnectBluesky: Benchmark = {
  name: "reconnect-bluesky",
  description: "Bluesky: 1,000 follows by the writer (applyWrites ≤ 200) vs one createRecord each; a job over its budget",
  defaultSize: "small",
  async run(context) {
    const sql = await freshDatabase(context.server, "bench_reconnect_bluesky");
    let net: BlueskyNetwork | undefined;
    try {
      log("starting the local Bluesky network (PLC, PDS, AppView)");
      // Loaded here: dev-env is heavy, and the other benchmarks do not need it.
      const { startBlueskyNetwork } = await import("../test/harness/bluesky.ts");
      net = await startBlueskyNetwork({ adminDatabaseUrl: context.server.urlFor("postgres") });
      log(`creating ${FOLLOWS} accounts to follow`);
      const accounts = await createAccounts(net, FOLLOWS);
      const users: TestUser[] = [];
      for (const name of ["batched", "viaappview", "rawwrites", "single", "drainer"]) users.push(await net.createUser(name));
      const [batched, viaAppview, rawWrites, single, drainer] = users as [TestUser, TestUser, TestUser, TestUser, TestUser];
      await net.processAll();

      log(`BlueskyWriter: ${FOLLOWS} follows, lookups through the PDS`);
      const writer = await writerRun(net, sql, batched, accounts);
      await net.processAll(); // let the AppView finish indexing before the next measurement
      log(`BlueskyWriter: ${FOLLOWS} follows, lookups on the AppView`);
      const direct = await writerRun(net, sql, viaAppview, accounts, { appview: true });
      await net.processAll();

      log(`applyWrites alone: ${FOLLOWS / 200} calls`);
      let start = performance.now();
      for (let i = 0; i < FOLLOWS; i += 200) {
        await rawWrites.agent.com.atproto.repo.applyWrites({
          repo: rawWrites.did,
          writes: accounts.slice(i, i + 200).map((subject) => ({
            $type: "com.atproto.repo.applyWrites#create" as const, collection: FOLLOW, rkey: TID.nextStr(), value: { $type: FOLLOW, subject, createdAt: new Date().toISOString() },
          })),
        });
      }
      const raw = (performance.now() - start) / 1000;
      await net.processAll();

      log(`one createRecord per follow: ${FOLLOWS} requests`);
      start = performance.now();
      for (const subject of accounts) {
        await single.agent.com.atproto.repo.createRecord({ repo: single.did, collection: FOLLOW, record: { $type: FOLLOW, subject, createdAt: new Date().toISOString() } });
      }
      const baseline = (performance.now() - start) / 1000;
      await net.processAll();

      log(`draining ${DRAIN_FOLLOWS} follows through a budget of ${DRAIN_LIMITS.hourPoints} points per ${DRAIN_LIMITS.hourMs! / 1000} s`);
      const drain = await writerRun(net, sql, drainer, accounts.slice(0, DRAIN_FOLLOWS), { limits: DRAIN_LIMITS });
      const limits = drain.budget.limits;
      const windows = Math.ceil((DRAIN_FOLLOWS * limits.createCost) / limits.hourPoints);
      // The first window's points are spent at once; each further window opens one window length later.
      const minimum = ((windows - 1) * limits.hourMs) / 1000;
      const peak = maxInWindow(drain.writes, limits.hourMs, limits.createCost);
      const sizes = (s: readonly Sent[]) => `${s.length} (max ${Math.max(...s.map((w) => w.writes))})`;

      const counts = await Promise.all(users.map(followCount));
      if (counts.join() !== `${FOLLOWS},${FOLLOWS},${FOLLOWS},${FOLLOWS},${DRAIN_FOLLOWS}`) throw new Error(`follow records: ${counts.join(", ")}`);
      if (peak > limits.hourPoints) throw new Error(`budget exceeded: ${peak} points in one window`);

      printTable(
        `Bluesky reconnection on a local PDS (${FOLLOWS.toLocaleString("en-US")} follows; budget drain scaled down)`,
        ["run", "follows", "requests", "applyWrites (max size)", "seconds", "follows/s", "ratio", "points/window"],
        [
          ["one createRecord per request", int(FOLLOWS), int(FOLLOWS), "-", baseline.toFixed(2), int(FOLLOWS / baseline), "1.0×", "-"],
          ["applyWrites alone (no lookups, no budget)", int(FOLLOWS), int(FOLLOWS / 200), `${FOLLOWS / 200} (max 200)`, raw.toFixed(2), int(FOLLOWS / raw), `${(baseline / raw).toFixed(1)}×`, "-"],
          ["BlueskyWriter, lookups through the PDS", int(FOLLOWS), int(writer.requests), sizes(writer.writes), writer.seconds.toFixed(2), int(FOLLOWS / writer.seconds), `${(baseline / writer.seconds).toFixed(1)}×`, "-"],
          ["BlueskyWriter, lookups on the AppView", int(FOLLOWS), int(direct.requests), sizes(direct.writes), direct.seconds.toFixed(2), int(FOLLOWS / direct.seconds), `${(baseline / direct.seconds).toFixed(1)}×`, "-"],
          [`BlueskyWriter, ${limits.hourPoints} pts / ${limits.hourMs / 1000} s`, int(DRAIN_FOLLOWS), int(drain.requests), sizes(drain.writes), drain.seconds.toFixed(2), (DRAIN_FOLLOWS / drain.seconds).toFixed(1), `${(drain.seconds / minimum).toFixed(2)} of min`, `${peak} / ${limits.hourPoints}`],
        ],
        [
          "target: writer ≥ 20× one-per-request; never over budget. Writer time includes listRecords, lookups and budget reservations in PostgreSQL.",
          "Lookups through the PDS: authenticated getProfiles, 25 a call. On the AppView (as on public.api.bsky.app): getProfiles + getRelationships, unauthenticated.",
          "PDS and AppView share one Node process here: lookups and writes cannot overlap as they do against remote servers.",
          `Drain: ceil(${DRAIN_FOLLOWS}·${limits.createCost}/${limits.hourPoints}) = ${windows} windows of points, the first spent at once: theoretical minimum (${windows} − 1) × ${limits.hourMs / 1000} s = ${minimum.toFixed(1)} s; the sliding window adds ${limits.slackMs} ms of slack per window.`,
          `points/window: most points sent in any ${limits.hourMs / 1000}-s interval, by request send time. Follow records on the repos: ${counts.join(", ")}.`,
        ],
      );
    } finally {
      await net?.close();
      await sql.end({ timeout: 5 });
      if (!context.keep) await dropDatabase(context.server, "bench_reconnect_bluesky");
    }
  },
};
