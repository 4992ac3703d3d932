/**
 * Reconnection on Bluesky, end to end, with real parts: the Bluesky bot on a
 * local Bluesky (dev-env) and its chat stand-in, the service's web pages on
 * 127.0.0.1, pg-boss on the test database, and headless Chromium for OAuth.
 * A person asks `reconnect` by chat DM, authorizes on the page the link
 * opens, and the accounts they followed on X get followed from their
 * account, visible in the AppView, with a summary DM.
 */
import express from "express";
import { mkdtemp, rm } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { AtpAgent } from "@atproto/api";
import { chromium, type BrowserContext } from "playwright-core";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBlueskyBot, type BlueskyBot } from "../bots/bluesky/index.ts";
import { loadConfig, type Config } from "../src/config.ts";
import type { Logger } from "../src/logger.ts";
import { loginWithAppPassword } from "../src/reconnect/bluesky/app-password.ts";
import { createReconnection, routeMessages, type Reconnection } from "../src/reconnect/index.ts";
import type { Sql } from "../src/store/database.ts";
import { followSubjects, startBlueskyNetwork, type BlueskyNetwork, type TestUser } from "./harness/bluesky.ts";
import { until } from "./harness/wait.ts";
import { createTestDatabase, type TestDatabase } from "./harness/database.ts";
import { registerFollowed, registerPerson } from "./harness/graph.ts";

let net: BlueskyNetwork;
let db: TestDatabase;
let server: Server;
let origin: string;
let config: Config;
let botUser: TestUser;
let bot: BlueskyBot;
let reconnection: Reconnection;
let browser: BrowserContext;
let browserDir: string;
const log = pino({ level: "silent" }) as unknown as Logger;
let xIds = 5_000_000;

/** A worker's try at a reconnection advisory lock (`pg_try_advisory_lock`) and the database's answer. */
interface LockAttempt {
  worker: string;
  locked: boolean;
}

/**
 * `sql` for a Reconnector, recording in `attempts` each try its runs make at
 * an advisory lock on the connections they reserve (how a run takes the
 * account it follows from); everything else passes through unchanged.
 */
function watchingAdvisoryLocks(sql: Sql, worker: string, attempts: LockAttempt[]): Sql {
  return new Proxy(sql, {
    get(target, property) {
      if (property !== "reserve") return Reflect.get(target, property, target);
      return async () => {
        const reserved = await target.reserve();
        return new Proxy(reserved, {
          apply(query, thisArg, args: unknown[]) {
            const result = Reflect.apply(query, thisArg, args);
            const text = Array.isArray(args[0]) ? args[0].join("") : "";
            if (!text.includes("pg_try_advisory_lock")) return result;
            return (result as Promise<{ locked: boolean }[]>).then((rows) => {
              attempts.push({ worker, locked: rows[0]!.locked });
              return rows;
            });
          },
        });
      };
    },
  });
}

/** Every target's DID, per person asking. */
interface Asker {
  user: TestUser;
  personId: number;
  /** Their Bluesky identity. */
  identityId: number;
  xId: string;
  targets: TestUser[];
}

/** A registered person on Bluesky who followed `targets` on X, each registered with their Bluesky account. */
async function registered(name: string, targetCount: number, into: TestDatabase = db): Promise<Asker> {
  const user = await net.createUser(name);
  const myX = String(++xIds);
  const { personId, identityId } = await registerPerson(into.store, myX, { platform: "bluesky", stableId: user.did, handle: user.handle }, name);
  const targets: TestUser[] = [];
  for (let i = 0; i < targetCount; i++) {
    const t = await net.createUser(`${name}t${i}`);
    await registerFollowed(into, myX, String(++xIds), { platform: "bluesky", stableId: t.did, handle: t.handle }, `${name}t${i}`);
    targets.push(t);
  }
  await into.store.matches.refreshForFollowers([personId]);
  await net.processAll();
  return { user, personId, identityId, xId: myX, targets };
}

/** Talks to the bot by chat DM; returns the bot's messages to `user` so far. */
async function chat(user: TestUser, text: string): Promise<string[]> {
  const proxy = user.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
  const convo = (await proxy.chat.bsky.convo.getConvoForMembers({ members: [botUser.did] })).data.convo;
  await proxy.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text } });
  await bot.nextPoll();
  return fromBot(user);
}

function fromBot(user: TestUser): string[] {
  return net.chat.messagesBetween(botUser.did, user.did).filter((m) => m.sender.did === botUser.did).map((m) => m.text);
}

function connectLink(messages: string[]): string {
  const link = messages.join("\n").match(/http:\/\/127\.0\.0\.1:\d+\/connect\/[A-Za-z0-9_-]{32}/)?.[0];
  if (!link) throw new Error(`no connect link in: ${messages.join(" | ")}`);
  return link;
}

async function appPassword(user: TestUser): Promise<string> {
  return (await user.agent.com.atproto.server.createAppPassword({ name: `reconnexion-${Date.now()}` })).data.password;
}

/** Posts the app-password form of a connect page, as a browser would. */
async function authorizeWithAppPassword(link: string, password: string): Promise<{ status: number; text: string }> {
  const page = await fetch(link);
  expect(page.status).toBe(200);
  const res = await fetch(`${link}/bluesky/app-password`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ appPassword: password }),
  });
  return { status: res.status, text: await res.text() };
}


async function jobDone(personId: number, on: TestDatabase = db) {
  return until("the job to finish", async () => {
    const [job] = await on.sql<{ id: number; state: string }[]>`
      select id, state from reconnect_job where person_id = ${personId} and platform = 'bluesky' order by id desc limit 1`;
    return job?.state === "done" && job;
  });
}


async function appViewFollows(user: TestUser): Promise<string[]> {
  await net.processAll();
  const res = await new AtpAgent({ service: net.network.bsky.url }).app.bsky.graph.getFollows({ actor: user.did, limit: 100 });
  return res.data.follows.map((f) => f.did);
}

beforeAll(async () => {
  [net, db] = await Promise.all([startBlueskyNetwork(), createTestDatabase()]);
  botUser = await net.createUser("reconnexion");
  const app = express();
  server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  config = loadConfig({
    PUBLIC_URL: origin,
    BLUESKY_SERVICE: net.pdsUrl,
    BLUESKY_HANDLE: botUser.handle,
    BLUESKY_APP_PASSWORD: botUser.password,
    BLUESKY_PLC_URL: net.network.plc.url,
    BLUESKY_APPVIEW_URL: net.network.bsky.url,
    ALLOW_PRIVATE_ADDRESSES: "1",
    DEFAULT_LANGUAGE: "en",
  });
  reconnection = createReconnection({
    config,
    store: db.store,
    sql: db.sql,
    databaseUrl: db.url,
    log,
    userAgent: "reconnexion-test",
    messenger: routeMessages({ bluesky: { send: (to, text) => bot.message({ did: to.stableId!, handle: to.handle }, [text]) } }),
    // 4 follows per 3-second "hour": long jobs wait for the budget, in-process for 1 s at most, else re-queued.
    blueskyBudget: { hourPoints: 12, hourMs: 3000, slackMs: 200 },
    blueskyMaxWaitMs: 1000,
    // Progress at most every 2 s here (5 minutes in production).
    runner: { autoSweepSeconds: 0, progressSeconds: 2 },
  });
  app.use(reconnection.routes);
  bot = startBlueskyBot({
    config,
    store: db.store,
    log,
    options: { pollIntervalMs: 100, backoffMs: 200, maxBackoffMs: 1000, engine: { reconnect: reconnection.reconnector, limits: { messagesPerWindow: 1000 } } },
  })!;
  await bot.ready;
  await reconnection.start();
  browserDir = await mkdtemp(path.join(os.tmpdir(), "reconnexion-chromium-"));
  browser = await chromium.launchPersistentContext(browserDir, {
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

afterAll(async () => {
  await browser?.close();
  if (browserDir) await rm(browserDir, { recursive: true, force: true });
  await reconnection?.stop();
  await bot?.stop();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  await Promise.all([net?.close(), db?.drop()]);
});

/**
 * Opens a connect link in the browser, picks Bluesky OAuth, signs in on the
 * PDS's own pages as `user` and authorizes; returns the callback page's text.
 */
async function signInWithBluesky(link: string, user: TestUser): Promise<string> {
  const page = await browser.newPage();
  try {
    await browser.clearCookies();
    await page.goto(link);
    await page.getByRole("button", { name: "Sign in with Bluesky" }).click();
    // We start from the DID: the PDS shows that account (or asks which), as in production.
    const username = page.getByRole("textbox", { name: "Username or Email" });
    if (!(await username.inputValue())) await username.fill(user.handle);
    await page.getByRole("textbox", { name: "Password" }).fill(user.password);
    await page.getByRole("button", { name: "Sign in" }).click({ timeout: 10_000 });
    await page.getByRole("button", { name: "Authorize" }).click({ timeout: 10_000 });
    await page.waitForURL(`${origin}/oauth/bluesky/callback**`, { timeout: 10_000 });
    return await page.locator("body").innerText();
  } finally {
    await page.close();
  }
}

describe("reconnect on Bluesky", () => {
  it("by app password: link by DM, the page, the follows in the AppView, budget waits, one summary", async () => {
    const alice = await registered("alice", 6);
    // Alice already follows one of them: skipped, not written again.
    await alice.user.agent.follow(alice.targets[0]!.did);
    const reply = await chat(alice.user, "reconnect");
    const link = connectLink(reply);
    expect(reply.join("\n")).toContain("6 accounts");

    const page = await authorizeWithAppPassword(link, await appPassword(alice.user));
    expect(page.status).toBe(200);
    expect(page.text).toContain("authorized");
    // The authorization is stored sealed: no password in the row.
    const [row] = await db.sql<{ payload: Buffer }[]>`
      select a.payload from account_authorization a join identity i on i.id = a.identity_id where i.stable_id = ${alice.user.did}`;
    expect(row!.payload.toString("latin1")).not.toMatch(/[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}/);

    const job = await jobDone(alice.personId);
    const targets = alice.targets.map((t) => t.did).sort();
    expect((await followSubjects(alice.user)).sort()).toEqual(targets);
    expect((await appViewFollows(alice.user)).sort()).toEqual(targets);
    const outcomes = await db.sql<{ outcome: string; n: number }[]>`
      select outcome, count(*)::int as n from reconnect_target where job_id = ${job.id} group by outcome order by outcome`;
    expect(outcomes).toEqual([
      { outcome: "already_following", n: 1 },
      { outcome: "followed", n: 5 },
    ]);
    // 5 creates at 4 per 3-s window: the fifth waited ~3 s, longer than a run
    // waits in-process (1 s), so the job was re-queued and ran again.
    const [j] = await db.sql<{ attempts: number }[]>`select attempts from reconnect_job where id = ${job.id}`;
    expect(j!.attempts).toBeGreaterThanOrEqual(2);
    const records = await alice.user.agent.com.atproto.repo.listRecords({ repo: alice.user.did, collection: "app.bsky.graph.follow", limit: 100 });
    const written = records.data.records
      .map((r) => r.value as { subject: string; createdAt: string })
      .filter((v) => v.subject !== alice.targets[0]!.did)
      .map((v) => Date.parse(v.createdAt))
      .sort((a, b) => a - b);
    expect(written).toHaveLength(5);
    expect(written[4]! - written[3]!).toBeGreaterThanOrEqual(2_000);
    const summary = await until("the summary DM", async () => fromBot(alice.user).find((m) => m.includes("finished")));
    expect(summary).toContain("5 followed");
    expect(summary).toContain("1 already followed");
    expect(fromBot(alice.user).filter((m) => m.includes("finished"))).toHaveLength(1);
    // The link is used up.
    expect((await fetch(link)).status).toBe(410);

    // `forget` ends the app password's session at the PDS, and tells alice to delete the password itself.
    const identity = await db.store.identities.find({ platform: "bluesky", stableId: alice.user.did });
    const auth = (await db.store.authorizations.get(identity!.id))!.data as { session: { refreshJwt: string } };
    // The PDS keeps a row per live refresh token (id = the JWT's jti).
    const jti = (JSON.parse(Buffer.from(auth.session.refreshJwt.split(".")[1]!, "base64url").toString()) as { jti: string }).jti;
    const accounts = (net.network.pds.ctx.accountManager as unknown as { db: { db: { selectFrom(t: string): { select(c: string): { where(c: string, op: string, v: string): { executeTakeFirst(): Promise<unknown> } } } } } }).db.db;
    const liveRefreshToken = async () => (await accounts.selectFrom("refresh_token").select("id").where("id", "=", jti).executeTakeFirst()) !== undefined;
    expect(await liveRefreshToken()).toBe(true);
    await chat(alice.user, "forget");
    const bye = (await chat(alice.user, "forget confirm")).join("\n");
    expect(bye).toContain("deleted everything");
    expect(bye).toContain("delete the password itself in Bluesky");
    expect(await liveRefreshToken()).toBe(false);
  });

  it("reports progress on a long job, then one summary", async () => {
    const gus = await registered("gus", 9);
    const link = connectLink(await chat(gus.user, "reconnect"));
    expect((await authorizeWithAppPassword(link, await appPassword(gus.user))).status).toBe(200);
    await jobDone(gus.personId);
    const summary = await until("the summary DM", async () => fromBot(gus.user).find((m) => m.includes("finished")));
    expect(summary).toContain("9 followed");
    // 9 follows at 4 per 3-s window: three runs; the middle one reports.
    const progress = fromBot(gus.user).filter((m) => /Reconnection on Bluesky: \d+ of 9 done/.test(m));
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.length).toBeLessThanOrEqual(3);
    expect(fromBot(gus.user).indexOf(progress[0]!)).toBeLessThan(fromBot(gus.user).indexOf(summary));
    // `status` shows the finished job.
    expect((await chat(gus.user, "status")).join("\n")).toContain("Reconnection on Bluesky: finished — 9/9: 9 followed");
  });

  it("by OAuth in the browser: the PDS's own pages, then the job runs", async () => {
    const bob = await registered("bob", 2);
    const link = connectLink(await chat(bob.user, "reconnect"));
    expect(await signInWithBluesky(link, bob.user)).toContain("is authorized");
    await jobDone(bob.personId);
    expect((await appViewFollows(bob.user)).sort()).toEqual(bob.targets.map((t) => t.did).sort());
    expect(await until("the DMs", async () => fromBot(bob.user).find((m) => m.includes("finished")))).toContain("2 followed");

    // `forget` revokes the session at bob's PDS, not only here.
    const saved = (await db.store.blueskyOAuth.getSession(bob.user.did)) as { tokenSet: { access_token: string } };
    const provider = net.network.pds.ctx.oauthProvider as unknown as { tokenManager: { findToken(token: string): Promise<unknown> } };
    expect(await provider.tokenManager.findToken(saved.tokenSet.access_token)).not.toBeNull();
    await chat(bob.user, "forget");
    expect((await chat(bob.user, "forget confirm")).join("\n")).toContain("deleted everything");
    expect(await provider.tokenManager.findToken(saved.tokenSet.access_token)).toBeNull();
    const [row] = await db.sql`select 1 from bluesky_oauth_session where did = ${bob.user.did}`;
    expect(row).toBeUndefined();
  });

  it("refuses an authorization for another account than the linked one", async () => {
    const carol = await registered("carol", 1);
    const mallory = await net.createUser("mallory");
    const link = connectLink(await chat(carol.user, "reconnect"));
    const res = await fetch(`${link}/bluesky/app-password`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ appPassword: await appPassword(mallory) }),
    });
    // Carol's DID is what the login uses: mallory's app password does not open it.
    expect(res.status).toBe(400);
    expect(await res.text()).toContain("Bluesky did not accept this app password for this account.");
    const [row] = await db.sql`select 1 from account_authorization a join identity i on i.id = a.identity_id where i.stable_id = ${carol.user.did}`;
    expect(row).toBeUndefined();
    expect((await fetch(link)).status).toBe(200); // still usable by carol
    // A main password is refused before anything leaves, and said so.
    const main = await authorizeWithAppPassword(link, "carol-password");
    expect([main.status, main.text.includes("This is not an app password")]).toEqual([400, true]);
    // Five refusals on one link, then it takes no more.
    for (let i = 0; i < 3; i++) await authorizeWithAppPassword(link, "aaaa-bbbb-cccc-dddd");
    const sixth = await authorizeWithAppPassword(link, await appPassword(carol.user));
    expect(sixth.status).toBe(429);
    expect(sixth.text).toContain("Too many app passwords were refused on this link");
  });

  it("pauses when the app password is revoked, and asks again by DM", async () => {
    const dave = await registered("dave", 1);
    const first = connectLink(await chat(dave.user, "reconnect"));
    const password = await appPassword(dave.user);
    expect((await authorizeWithAppPassword(first, password)).status).toBe(200);
    await jobDone(dave.personId);
    const appPasswords = (await dave.user.agent.com.atproto.server.listAppPasswords()).data.passwords;
    for (const p of appPasswords) await dave.user.agent.com.atproto.server.revokeAppPassword({ name: p.name });
    // A new match arrives, and dave asks again: the stored authorization no longer works.
    const t = await net.createUser("davet9");
    await registerFollowed(db, dave.xId, String(++xIds), { platform: "bluesky", stableId: t.did, handle: t.handle }, "davet9");
    await db.store.matches.refreshForFollowers([dave.personId]);
    await chat(dave.user, "reconnect");
    const asked = await until("a new authorization link", async () =>
      fromBot(dave.user).find((m) => m.includes("expired or was revoked")),
    );
    const second = connectLink([asked]);
    expect(second).not.toBe(first);
    const [job] = await db.sql<{ state: string }[]>`
      select state from reconnect_job where person_id = ${dave.personId} order by id desc limit 1`;
    expect(job!.state).toBe("needs_authorization");
    // Authorizing again resumes the paused job.
    expect((await authorizeWithAppPassword(second, await appPassword(dave.user))).status).toBe(200);
    await jobDone(dave.personId);
    expect(await followSubjects(dave.user)).toContain(t.did);
  });

  it("auto on: once authorized, new matches are followed without being asked", async () => {
    const fay = await registered("fay", 1);
    const reply = await chat(fay.user, "auto on");
    expect(reply.join("\n")).toContain("Automatic reconnection on");
    expect((await authorizeWithAppPassword(connectLink(reply), await appPassword(fay.user))).status).toBe(200);
    // Authorizing starts what was waiting: her matches are followed, and she is told.
    await jobDone(fay.personId);
    expect(await until("the DM", async () => fromBot(fay.user).find((m) => m.includes("is authorized")))).toContain("starting");
    expect(await reconnection.reconnector.sweepAuto()).toBe(0);
    expect(await followSubjects(fay.user)).toEqual([fay.targets[0]!.did]);
    // Someone she followed on X arrives later.
    const late = await net.createUser("faylate");
    const tp = await registerFollowed(db, fay.xId, String(++xIds), { platform: "bluesky", stableId: late.did, handle: late.handle }, "faylate");
    await db.store.matches.refreshForTargets([tp]);
    expect(await reconnection.reconnector.sweepAuto()).toBe(1);
    await until("the new follow", async () => (await followSubjects(fay.user)).includes(late.did));
    // Turned off: nothing more.
    await chat(fay.user, "auto off");
    expect(await reconnection.reconnector.sweepAuto()).toBe(0);
  });

  it("two workers on one database race for a job: one runs it under the account's lock, the other is refused, each target followed once", async () => {
    // A database of their own, so that these two workers alone compete for the job's runs.
    const own = await createTestDatabase();
    const locks: LockAttempt[] = [];
    const told: string[] = [];
    const worker = (name: string, concurrency: number) =>
      createReconnection({
        config,
        store: own.store,
        sql: watchingAdvisoryLocks(own.sql, name, locks),
        databaseUrl: own.url,
        log,
        userAgent: `reconnexion-test-${name}`,
        messenger: { send: async (_to, text) => (told.push(text), true) },
        // 4 follows per 3-s window, waited for in-process: one run follows all 13 in ~9 s, holding the account's lock throughout.
        blueskyBudget: { hourPoints: 12, hourMs: 3000, slackMs: 200 },
        blueskyMaxWaitMs: 30_000,
        runner: { autoSweepSeconds: 0, concurrency },
      });
    // The first runs one job at a time: while it runs this one, only the second can fetch another run of it.
    const first = worker("first", 1);
    const second = worker("second", 2);
    try {
      const erin = await registered("erin", 13, own);
      const auth = await loginWithAppPassword({
        identifier: erin.user.did,
        appPassword: await appPassword(erin.user),
        plcUrl: config.bluesky.plcUrl,
        allowPrivateAddresses: true,
      });
      // As the connect page stores it.
      await own.store.authorizations.save(erin.identityId, "bluesky-app-password", auth);
      await first.start();
      const targets = await own.store.reconnectJobs.selectTargets(erin.personId, "bluesky");
      expect(targets).toHaveLength(13);
      const result = await first.reconnector.request({ personId: erin.personId, platform: "bluesky", request: "all", targets, notifyIdentityId: erin.identityId });
      expect(result.status).toBe("queued");
      await until("the first worker to take the account's lock", async () => locks.some((l) => l.worker === "first" && l.locked), 20_000, 25);
      // The second starts while that run holds the lock: its start-up rescan queues the job again, and it fetches that run.
      await second.start();
      await until("the second worker to try the job", async () => locks.some((l) => l.worker === "second"), 20_000, 25);
      const job = await jobDone(erin.personId, own);

      // Both workers took a run of the job; only one got the account's lock, once, and the other was refused.
      expect(locks.filter((l) => l.worker === "first").map((l) => l.locked)).toEqual([true]);
      const refused = locks.filter((l) => l.worker === "second");
      expect(refused.length).toBeGreaterThanOrEqual(1);
      expect(refused.every((l) => !l.locked)).toBe(true);
      // The refused run left the job to the run that holds it: one run in all, each target followed exactly once.
      const [row] = await own.sql<{ attempts: number }[]>`select attempts from reconnect_job where id = ${job.id}`;
      expect(row!.attempts).toBe(1);
      expect((await followSubjects(erin.user)).sort()).toEqual(erin.targets.map((t) => t.did).sort());
      const outcomes = await own.sql<{ outcome: string; n: number }[]>`
        select outcome, count(*)::int as n from reconnect_target where job_id = ${job.id} group by outcome`;
      expect(outcomes).toEqual([{ outcome: "followed", n: 13 }]);
      expect(told.filter((m) => m.includes("finished"))).toEqual([expect.stringContaining("13 followed")]);
    } finally {
      await second.stop();
      await first.stop();
      await own.drop();
    }
  });
});
