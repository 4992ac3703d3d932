/**
 * Exactly once across crashes: the real service (`reconnexion start`, a
 * child process on the test database) runs a reconnection and is killed
 * with SIGKILL twice while it writes; a new process finishes the job. On a
 * local Bluesky (dev-env): one follow record per target in the person's
 * repo. On a Mastodon API test instance: one follow request per target,
 * one signed Follow received by each target's server. Every outcome kept.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig } from "../src/config.ts";
import type { Logger } from "../src/logger.ts";
import { loginWithAppPassword } from "../src/reconnect/bluesky/app-password.ts";
import { Reconnector } from "../src/reconnect/reconnector.ts";
import { followSubjects, startBlueskyNetwork, type BlueskyNetwork, type TestUser } from "./harness/bluesky.ts";
import { startFediServer, type FediUser } from "./harness/fediverse.ts";
import { registerFollowed, registerPerson } from "./harness/graph.ts";
import { startMastodonInstance } from "./harness/mastodon-instance.ts";
import { until } from "./harness/wait.ts";
import { CLI, ROOT } from "./harness/cli.ts";
import { createTestDatabase, TEST_SECRET_KEY, type TestDatabase } from "./harness/database.ts";

const TARGETS = 45;

let net: BlueskyNetwork;
let db: TestDatabase;
let alice: TestUser;
let personId: number;
let targets: TestUser[];
const children: ChildProcess[] = [];

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Starts `reconnexion start` on the test database; resolves once it serves. */
async function startService(port: number, extraEnv: Record<string, string> = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, "start"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      DATABASE_URL: db.url,
      SECRET_KEY: TEST_SECRET_KEY,
      HOST: "127.0.0.1",
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      ALLOW_PRIVATE_ADDRESSES: "1",
      BLUESKY_PLC_URL: net.network.plc.url,
      BLUESKY_APPVIEW_URL: net.network.bsky.url,
      // Small batches: many write calls, so the kills land mid-job.
      BLUESKY_WRITE_BATCH: "3",
      LOG_LEVEL: "warn",
      ...extraEnv,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
  const end = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`service exited: ${stderr}`);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.ok, () => false);
    if (ready) return child;
    if (Date.now() > end) throw new Error(`service did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function kill9(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGKILL");
  await exited;
}

async function outcomes(): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`
    select count(*)::int as n from reconnect_target t join reconnect_job j on j.id = t.job_id
    where j.person_id = ${personId} and t.outcome is not null`;
  return row!.n;
}



beforeAll(async () => {
  [net, db] = await Promise.all([startBlueskyNetwork(), createTestDatabase()]);
  alice = await net.createUser("alice");
  const registered = await registerPerson(db.store, "7000000", { platform: "bluesky", stableId: alice.did, handle: alice.handle }, "alice");
  personId = registered.personId;
  const me = { id: registered.identityId };
  targets = [];
  for (let i = 0; i < TARGETS; i++) {
    const t = await net.createUser(`crash${i}`);
    await registerFollowed(db, "7000000", String(7000001 + i), { platform: "bluesky", stableId: t.did, handle: t.handle }, `crash${i}`);
    targets.push(t);
  }
  await db.store.matches.refreshForFollowers([personId]);
  await net.processAll();
  // Alice authorized earlier (the connect page is tested elsewhere): an app password, sealed.
  const appPassword = (await alice.agent.com.atproto.server.createAppPassword({ name: "reconnexion" })).data.password;
  const auth = await loginWithAppPassword({ identifier: alice.did, appPassword, plcUrl: net.network.plc.url, allowPrivateAddresses: true });
  await db.store.authorizations.save(me.id, "bluesky-app-password", auth);
  // She asks: the job is queued (as the `reconnect` command does), for the service's workers.
  const config = loadConfig({ PUBLIC_URL: "http://127.0.0.1:1", DEFAULT_LANGUAGE: "en" });
  const enqueue = Reconnector.enqueueOnly({
    store: db.store,
    sql: db.sql,
    databaseUrl: db.url,
    config,
    log: pino({ level: "silent" }) as unknown as Logger,
  });
  await enqueue.start();
  const result = await enqueue.request({
    personId,
    platform: "bluesky",
    request: "all",
    targets: await db.store.reconnectJobs.selectTargets(personId, "bluesky"),
    notifyIdentityId: me.id,
  });
  expect(result.status).toBe("queued");
  await enqueue.stop();
}, 180_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await Promise.all([net?.close(), db?.drop()]);
});

it("finishes a job killed twice mid-write without following anyone twice or losing an outcome", async () => {
  const port = await freePort();
  let done = 0;
  for (const killAt of [6, 24]) {
    const child = await startService(port);
    done = await until(`${killAt} outcomes`, async () => {
      const n = await outcomes();
      return n >= killAt && n;
    }, 90_000, 25);
    await kill9(child);
    expect(done).toBeLessThan(TARGETS);
  }
  const survivor = await startService(port);
  const job = await until("the job to finish", async () => {
    const [j] = await db.sql<{ state: string; attempts: number }[]>`
      select state, attempts from reconnect_job where person_id = ${personId}`;
    return j?.state === "done" && j;
  }, 90_000);
  expect(job.attempts).toBeGreaterThanOrEqual(3);
  const subjects = await followSubjects(alice);
  expect(subjects.length).toBe(TARGETS);
  expect(new Set(subjects).size).toBe(TARGETS);
  expect(new Set(subjects)).toEqual(new Set(targets.map((t) => t.did)));
  const rows = await db.sql<{ outcome: string | null; n: number }[]>`
    select t.outcome, count(*)::int as n from reconnect_target t join reconnect_job j on j.id = t.job_id
    where j.person_id = ${personId} group by t.outcome`;
  expect(rows).toEqual([{ outcome: "followed", n: TARGETS }]);
  const states = await db.sql<{ state: string; n: number }[]>`
    select state, count(*)::int as n from match where person_id = ${personId} group by state`;
  expect(states).toEqual([{ state: "followed", n: TARGETS }]);
  await kill9(survivor);
}, 240_000);

it("finishes a Mastodon job killed twice mid-write: one follow request and one Follow per target", async () => {
  const COUNT = 24;
  // A slow instance (8 requests a second per token): the job takes seconds, the kills land in it.
  const instance = await startMastodonInstance({ rateLimit: { limit: 8, windowMs: 1000 } });
  const remote = await startFediServer({ users: [] });
  try {
    const me = await instance.addUser({ name: "mallory" });
    const { personId: person, identityId } = await registerPerson(
      db.store,
      "7100000",
      { platform: "fediverse", stableId: me.uri, handle: `mallory@${instance.domain}`, apiBase: instance.origin },
      "mallory",
    );
    const identity = { id: identityId };
    const users: FediUser[] = [];
    for (let i = 0; i < COUNT; i++) {
      const u = await remote.addUser({ name: `m${i}` });
      await registerFollowed(db, "7100000", String(7100001 + i), { platform: "fediverse", stableId: u.actorId, handle: u.acct }, `m${i}`);
      users.push(u);
    }
    await db.store.matches.refreshForFollowers([person]);
    const scope = "read:accounts read:follows read:search write:follows";
    await db.store.authorizations.save(identity.id, "mastodon-oauth", {
      instance: instance.origin,
      accessToken: instance.issueToken("mallory", scope),
      scope,
      accountId: me.id,
    });
    const enqueue = Reconnector.enqueueOnly({
      store: db.store,
      sql: db.sql,
      databaseUrl: db.url,
      config: loadConfig({ PUBLIC_URL: "http://127.0.0.1:1", DEFAULT_LANGUAGE: "en" }),
      log: pino({ level: "silent" }) as unknown as Logger,
    });
    await enqueue.start();
    const targets = await db.store.reconnectJobs.selectTargets(person, "fediverse");
    expect((await enqueue.request({ personId: person, platform: "fediverse", request: "all", targets, notifyIdentityId: identity.id })).status).toBe("queued");
    await enqueue.stop();

    // Outcomes are recorded 40 at a time: the kills are timed on follow requests reaching the instance.
    const followRequests = () =>
      instance.requests.filter((r) => r.method === "POST" && /^\/api\/v1\/accounts\/[^/]+\/follow$/.test(r.path));
    const port = await freePort();
    for (const killAt of [4, 14]) {
      const child = await startService(port);
      await until(`${killAt} follow requests`, () => followRequests().length >= killAt, 90_000, 10);
      await kill9(child);
      const [j] = await db.sql<{ state: string }[]>`select state from reconnect_job where person_id = ${person}`;
      expect(j!.state).not.toBe("done");
    }
    const survivor = await startService(port);
    await until("the job to finish", async () => {
      const [j] = await db.sql<{ state: string }[]>`select state from reconnect_job where person_id = ${person}`;
      return j?.state === "done";
    }, 120_000);
    await kill9(survivor);
    await until("every Follow delivered", () => users.every((u) => u.follows.length > 0), 30_000);
    for (const u of users) expect(u.follows.filter((f) => f.actor === me.uri), u.name).toHaveLength(1);
    const followPosts = followRequests().filter((r) => r.status === 200);
    expect(followPosts).toHaveLength(COUNT);
    expect(new Set(followPosts.map((r) => r.path)).size).toBe(COUNT);
    const outcomes = await db.sql<{ outcome: string; n: number }[]>`
      select t.outcome, count(*)::int as n from reconnect_target t join reconnect_job j on j.id = t.job_id
      where j.person_id = ${person} group by t.outcome`;
    expect(outcomes).toEqual([{ outcome: "followed", n: COUNT }]);
  } finally {
    await remote.close();
    await instance.close();
  }
}, 240_000);
