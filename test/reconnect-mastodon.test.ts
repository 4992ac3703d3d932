/**
 * Reconnection on Mastodon-compatible servers, end to end, with real parts:
 * the fediverse bot (Fedify, its PostgreSQL queues) and the service's web
 * pages on one express app on 127.0.0.1, pg-boss on the test database, a
 * test Mastodon instance (its client API, its OAuth form, its rate limit)
 * whose users are real actors, and separate Fedify servers for the
 * accounts to follow. A person on the instance asks `reconnect` by signed
 * DM, gets a private link back by DM, authorizes on the instance's own
 * form (driven over HTTP), and the accounts they followed on X receive
 * signed `Follow`s from their actor; a summary DM ends it.
 */
import express from "express";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFediverseBot, type FediverseBot } from "../bots/fediverse/index.ts";
import { loadConfig } from "../src/config.ts";
import type { Logger } from "../src/logger.ts";
import { createReconnection, routeMessages, type Reconnection } from "../src/reconnect/index.ts";
import { GRANULAR_SCOPES } from "../src/reconnect/mastodon/oauth.ts";
import { decodeHtml, formFields } from "./harness/browser-forms.ts";
import { createTestDatabase, type TestDatabase } from "./harness/database.ts";
import { startFediServer, type FediServer, type FediUser, type ReceivedNote } from "./harness/fediverse.ts";
import { createNote, type Audience, type BotRef } from "./harness/fediverse-shapes.ts";
import { startMastodonInstance, type MastodonInstance } from "./harness/mastodon-instance.ts";
import { until } from "./harness/wait.ts";

const log = pino({ level: "silent" }) as unknown as Logger;
let db: TestDatabase;
let instance: MastodonInstance;
/** The servers of the accounts to follow: one plain, one whose accts are on another domain than its web host. */
let remote: FediServer;
let split: FediServer;
let server: Server;
let origin: string;
let bot: FediverseBot;
let ref: BotRef;
let botInbox: string;
let reconnection: Reconnection;
let xIds = 7_000_000;

/** Someone with an account on the instance, registered with their X account. */
interface Asker {
  name: string;
  user: FediUser;
  password: string;
  personId: number;
  identityId: number;
  xId: string;
}

/** An account to follow, registered with the X account it had. */
interface Target {
  user: FediUser;
  acct: string;
  personId: number;
  xId: string;
}

const targets = {} as Record<"plain" | "locked" | "pre" | "gone" | "lou" | "sam", Target>;
const people = {} as Record<"alice" | "bob" | "carol" | "dave" | "erin" | "frank" | "gwen" | "hana" | "ivy", Asker>;

async function asker(name: string): Promise<Asker> {
  const password = `pw-${name}-secret`;
  const account = await instance.addUser({ name, password });
  const user = account.user!;
  const personId = (await db.store.people.create()).id;
  const xId = String(++xIds);
  await db.store.identities.attach(personId, { platform: "x", stableId: xId, handle: `${name}_x`, verifiedBy: "platform" });
  const identity = await db.store.identities.attach(personId, {
    platform: "fediverse",
    stableId: user.actorId,
    handle: `${name}@${instance.domain}`,
    verifiedBy: "dm",
  });
  return { name, user, password, personId, identityId: identity.id, xId };
}

async function target(user: FediUser): Promise<Target> {
  const personId = (await db.store.people.create()).id;
  const xId = String(++xIds);
  await db.store.identities.attach(personId, { platform: "x", stableId: xId, handle: `${user.name}_x`, verifiedBy: "platform" });
  await db.store.identities.attach(personId, { platform: "fediverse", stableId: user.actorId, handle: user.acct, verifiedBy: "dm" });
  return { user, acct: user.acct, personId, xId };
}

/** `who` followed `whom` on X: new matches. */
async function followedOnX(who: Asker, whom: Target[]): Promise<void> {
  for (const t of whom) await db.sql`insert into x_follow values (${who.xId}, ${t.xId})`;
  await db.store.matches.refreshForFollowers([who.personId]);
}

const settle = (ms = 600) => new Promise((r) => setTimeout(r, ms));

/** A note's text as the person reads it. */
function textOf(note: ReceivedNote): string {
  return decodeHtml(note.content.replace(/<br\s*\/?>/g, "\n").replace(/<\/p>\s*<p>/g, "\n\n").replace(/<[^>]+>/g, ""));
}

/** What the bot sent `user`, in arrival order. */
function fromBot(user: FediUser): ReceivedNote[] {
  return user.notes.filter((n) => n.attributedTo === ref.actorId);
}

/** Sends the bot a signed message (a DM unless said otherwise); resolves with the bot's new notes once their text matches `answer`. */
async function dm(who: Asker, text: string, answer: RegExp, audience: Audience = "direct"): Promise<string> {
  const before = fromBot(who.user).length;
  const res = await who.user.post(botInbox, createNote("mastodon", who.user, ref, text, { audience }));
  expect(res.status, await res.text()).toBeLessThan(300);
  return until(`the bot's answer to "${text}"`, () => {
    const joined = fromBot(who.user).slice(before).map(textOf).join("\n");
    return answer.test(joined) && joined;
  });
}

const CONNECT = /http:\/\/127\.0\.0\.1:\d+\/connect\/[A-Za-z0-9_-]{32}/;
const EXPORT = /http:\/\/127\.0\.0\.1:\d+\/export\/[A-Za-z0-9_-]{32}\/following_accounts\.csv/;

function linkIn(text: string, pattern: RegExp): string {
  const link = text.match(pattern)?.[0];
  if (!link) throw new Error(`no link in: ${text}`);
  return link;
}

/** Every note the bot sent was a DM: to the person only, nobody in cc, nothing public or for followers. */
function expectOnlyDirect(who: Asker): void {
  const notes = fromBot(who.user);
  expect(notes.length).toBeGreaterThan(0);
  for (const note of notes) {
    expect(new Set(note.to)).toEqual(new Set([who.user.actorId]));
    expect(note.cc).toEqual([]);
    expect(JSON.stringify(note.raw)).not.toMatch(/#Public|as:Public|\/followers/);
  }
}

/**
 * Opens the link, presses the button (→ the instance's authorize page), signs
 * in there as `login` and authorizes, then follows the instance's redirect to
 * our callback. Returns the callback's answer.
 */
async function authorize(link: string, login: { name: string; password: string }): Promise<{ status: number; text: string }> {
  const page = await fetch(link);
  expect(page.status).toBe(200);
  const html = await page.text();
  expect(html).toContain(`Authorize on ${new URL(instance.origin).host}`);
  const { action } = formFields(html);
  expect(action).toBe(`${new URL(link).pathname}/mastodon`);
  const start = await fetch(new URL(action, link), { method: "POST", redirect: "manual" });
  expect(start.status).toBe(303);
  const authorizeUrl = new URL(start.headers.get("location")!);
  expect(authorizeUrl.origin + authorizeUrl.pathname).toBe(`${instance.origin}/oauth/authorize`);
  // The instance gets the link's token sealed, never the token itself.
  const state = authorizeUrl.searchParams.get("state");
  expect(state).toBeTruthy();
  expect(state).not.toContain(new URL(link).pathname.split("/").pop());

  const form = await fetch(authorizeUrl);
  expect(form.status).toBe(200);
  const authorizePage = formFields(await form.text());
  expect(authorizePage.fields.scope).toBe(GRANULAR_SCOPES);
  const body = new URLSearchParams({ ...authorizePage.fields, username: login.name, password: login.password, decision: "authorize" });
  const answer = await fetch(new URL(authorizePage.action, authorizeUrl), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body,
    redirect: "manual",
  });
  expect(answer.status).toBe(302);
  const back = new URL(answer.headers.get("location")!);
  expect(back.origin + back.pathname).toBe(`${origin}/connect/mastodon/callback`);
  expect(back.searchParams.get("code")).toBeTruthy();
  const callback = await fetch(back);
  return { status: callback.status, text: await callback.text() };
}

/** Authorizes `who` through `link`; returns the access token the instance issued (seen in its request log). */
async function authorizeAs(who: Asker, link: string): Promise<string> {
  const mark = instance.requests.length;
  const done = await authorize(link, who);
  expect(done.status).toBe(200);
  expect(done.text).toContain("account is authorized");
  const token = instance.requests.slice(mark).find((r) => r.path === "/api/v1/accounts/verify_credentials")?.token;
  expect(token).toBeTruthy();
  return token!;
}

interface JobRow {
  id: number;
  state: string;
  reason: string | null;
  wait_until: Date | null;
}

async function latestJob(personId: number): Promise<JobRow | undefined> {
  const [job] = await db.sql<JobRow[]>`
    select id, state, reason, wait_until from reconnect_job
    where person_id = ${personId} and platform = 'fediverse' order by id desc limit 1`;
  return job;
}

/** Waits for a job newer than `after` to be done. */
async function jobDone(personId: number, after = 0): Promise<JobRow> {
  return until("the job to finish", async () => {
    const job = await latestJob(personId);
    return job && job.id > after && job.state === "done" && job;
  });
}

/** Each target's acct → its outcome in the job. */
async function outcomes(jobId: number): Promise<Record<string, string | null>> {
  const rows = await db.sql<{ handle: string; outcome: string | null }[]>`
    select i.handle, t.outcome from reconnect_target t
    join identity i on i.person_id = t.target_person_id and i.platform = 'fediverse'
    where t.job_id = ${jobId}`;
  return Object.fromEntries(rows.map((r) => [r.handle, r.outcome]));
}

/** Follow activities `t` received from `who`'s actor. */
const followsFrom = (t: Target, who: Asker) => t.user.follows.filter((f) => f.actor === who.user.actorId);

/** Follow POSTs the instance received with `token`, by target acct. */
function followPostsWith(token: string, t: Target): number {
  return instance.followPosts(t.acct, token).length;
}
function allFollowPostsWith(token: string): number {
  return instance.requests.filter((r) => r.method === "POST" && /^\/api\/v1\/accounts\/[^/]+\/follow$/.test(r.path) && r.token === token).length;
}

/** The bot's summary DMs to `who`. */
function summaries(who: Asker): string[] {
  return fromBot(who.user).map(textOf).filter((t) => t.includes("finished"));
}

beforeAll(async () => {
  [db, instance, remote, split] = await Promise.all([
    createTestDatabase(),
    startMastodonInstance(),
    startFediServer({ users: [{ name: "plain" }, { name: "locked", locked: true }, { name: "pre" }, { name: "gone" }] }),
    startFediServer({ users: [{ name: "sam" }], splitDomain: true }),
  ]);
  const app = express();
  server = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve) => server.once("listening", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const config = loadConfig({ PUBLIC_URL: origin, ALLOW_PRIVATE_ADDRESSES: "1", DEFAULT_LANGUAGE: "en" });
  reconnection = createReconnection({
    config,
    store: db.store,
    sql: db.sql,
    databaseUrl: db.url,
    log,
    userAgent: "reconnexion-test",
    messenger: routeMessages({ fediverse: { send: (to, text) => bot.message(to.stableId!, to.handle, [text]) } }),
    // Progress at most every 2 s here (5 minutes in production).
    runner: { autoSweepSeconds: 0, progressSeconds: 2 },
  });
  bot = createFediverseBot({
    config,
    store: db.store,
    sql: db.sql,
    log,
    queue: { pollMs: 100 },
    engine: { reconnect: reconnection.reconnector, limits: { messagesPerWindow: 1000 } },
  });
  app.use(bot.middleware);
  app.use(reconnection.routes);
  bot.start();
  await reconnection.start();
  ref = { actorId: bot.actorUri.href, acct: `${config.fediverseBotUsername}@${new URL(origin).host}` };
  botInbox = `${bot.actorUri.href}/inbox`;

  const lou = await instance.addUser({ name: "lou" }); // an account to follow on the person's own instance
  const [plain, locked, pre, gone, louT, sam] = await Promise.all([
    target(remote.user("plain")),
    target(remote.user("locked")),
    target(remote.user("pre")),
    target(remote.user("gone")),
    target(lou.user!),
    target(split.user("sam")),
  ]);
  Object.assign(targets, { plain: plain!, locked: locked!, pre: pre!, gone: gone!, lou: louT!, sam: sam! });
  const names = ["alice", "bob", "carol", "dave", "erin", "frank", "gwen", "hana", "ivy"] as const;
  const askers = await Promise.all(names.map((n) => asker(n)));
  names.forEach((n, i) => (people[n] = askers[i]!));
});

afterAll(async () => {
  await reconnection?.stop();
  await bot?.close();
  await new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
  await Promise.all([instance?.close(), remote?.close(), split?.close()]);
  await db?.drop();
});

describe("reconnect on Mastodon", () => {
  it("link by DM, the instance's OAuth form, signed Follows to every server, one summary", async () => {
    const { alice } = people;
    const { plain, locked, pre, gone, lou, sam } = targets;
    await followedOnX(alice, [plain, locked, pre, gone, lou, sam]);

    // Alice already follows `pre`, from her own app on her instance: one real Follow.
    const own = instance.issueToken("alice");
    const api = (path: string, init: RequestInit = {}) =>
      fetch(new URL(path, instance.origin), { ...init, headers: { Authorization: `Bearer ${own}` } });
    const found = (await (await api(`/api/v2/search?q=${encodeURIComponent(pre.acct)}&resolve=true&type=accounts`)).json()) as {
      accounts: { id: string }[];
    };
    expect((await api(`/api/v1/accounts/${found.accounts[0]!.id}/follow`, { method: "POST" })).status).toBe(200);
    await until("pre's Accept", () => instance.isFollowing("alice", pre.acct));
    expect(followsFrom(pre, alice)).toHaveLength(1);
    // `gone` deleted their account since.
    gone.user.gone = true;

    const reply = await dm(alice, "reconnect", new RegExp(`${CONNECT.source}[\\s\\S]*${EXPORT.source}`));
    expect(reply).toContain("To follow 6 accounts for you on Mastodon");
    const link = linkIn(reply, CONNECT);
    expectOnlyDirect(alice);
    expect((await latestJob(alice.personId))!.state).toBe("needs_authorization");

    const token = await authorizeAs(alice, link);
    // The token is stored sealed.
    const [row] = await db.sql<{ kind: string; payload: Buffer }[]>`
      select kind, payload from account_authorization where identity_id = ${alice.identityId}`;
    expect(row!.kind).toBe("mastodon-oauth");
    expect(row!.payload.toString("latin1")).not.toContain(token);
    await until("the authorized DM", () => fromBot(alice.user).map(textOf).some((t) => t.includes("Your reconnection is starting")));

    const job = await jobDone(alice.personId);
    expect(await outcomes(job.id)).toEqual({
      [plain.acct]: "followed",
      [locked.acct]: "requested",
      [pre.acct]: "already_following",
      // The instance never knew `gone` before it went: resolving it meets a 410 (a Tombstone), the search finds no
      // account, so the writer records `not_found`. (Had the instance known it, it would show it suspended: `gone`.)
      [gone.acct]: "not_found",
      [lou.acct]: "followed",
      [sam.acct]: "followed",
    });
    // One signed Follow from alice's actor on each remote server; none for the one she followed, none to the deleted one.
    for (const t of [plain, locked, sam]) {
      expect(followsFrom(t, alice), t.acct).toHaveLength(1);
      expect(followPostsWith(token, t), t.acct).toBe(1);
    }
    expect(followsFrom(pre, alice)).toHaveLength(1); // still only her own
    expect(followPostsWith(token, pre)).toBe(0);
    expect(followsFrom(gone, alice)).toHaveLength(0);
    expect(allFollowPostsWith(token)).toBe(4); // plain, locked, sam, lou
    // As the instance sees it: followed (Accepts arrived), a request pending for the locked one, the local one at once.
    await until("the Accepts", () => instance.isFollowing("alice", plain.acct) && instance.isFollowing("alice", sam.acct));
    expect(instance.isRequested("alice", locked.acct)).toBe(true);
    expect(instance.isFollowing("alice", "lou")).toBe(true);
    expect(instance.deliveryErrors).toEqual([]);

    const summary = await until("the summary DM", () => summaries(alice)[0]);
    expect(summary).toContain("3 followed, 1 requested (locked accounts), 1 already followed, 1 not found");
    expect(summary).toContain("`list failed mastodon`");
    await settle();
    expect(summaries(alice)).toHaveLength(1);

    const failures = await dm(alice, "list failed", /People you followed on X/);
    expect(failures).toContain(`@${gone.acct}`);
    for (const t of [plain, locked, pre, lou, sam]) expect(failures).not.toContain(`@${t.acct}`);
    expectOnlyDirect(alice);
    // The link is used up.
    expect((await fetch(link)).status).toBe(410);
  });

  it("follows exactly what was asked: `reconnect 1`, then `reconnect @acct`", async () => {
    const { bob } = people;
    const { plain, locked, pre } = targets;
    await followedOnX(bob, [plain, locked, pre]);
    const [first] = await db.store.reconnectJobs.selectTargets(bob.personId, "fediverse", 1);
    const firstTarget = [plain, locked, pre].find((t) => t.personId === first)!;
    const reply = await dm(bob, "reconnect 1", CONNECT);
    expect(reply).toContain("To follow 1 account for you");
    const token = await authorizeAs(bob, linkIn(reply, CONNECT));
    // One app on the instance for everyone: registered at alice's first visit, reused since.
    expect(instance.apps.filter((a) => a.name === "reconnexion")).toHaveLength(1);
    const job1 = await jobDone(bob.personId);
    expect(Object.keys(await outcomes(job1.id))).toEqual([firstTarget.acct]);
    expect(allFollowPostsWith(token)).toBe(1);
    expect(followPostsWith(token, firstTarget)).toBe(1);
    expect(followsFrom(firstTarget, bob)).toHaveLength(1);

    const named = [plain, locked, pre].find((t) => t !== firstTarget)!;
    const rest = [plain, locked, pre].find((t) => t !== firstTarget && t !== named)!;
    const queued = await dm(bob, `reconnect @${named.acct}`, /On it/);
    expect(queued).toContain("following 1 account for you");
    const job2 = await jobDone(bob.personId, job1.id);
    expect(Object.keys(await outcomes(job2.id))).toEqual([named.acct]);
    expect(allFollowPostsWith(token)).toBe(2);
    expect(followPostsWith(token, named)).toBe(1);
    expect(followsFrom(named, bob)).toHaveLength(1);
    expect(followPostsWith(token, rest)).toBe(0);
    expect(followsFrom(rest, bob)).toHaveLength(0);
    expect(followsFrom(firstTarget, bob)).toHaveLength(1);
    await until("two summaries", () => summaries(bob).length === 2);
  });

  it("waits out the instance's rate limit and finishes later, nobody followed twice", async () => {
    const { carol } = people;
    const { plain, pre, lou, sam } = targets;
    await followedOnX(carol, [plain]);
    const token = await authorizeAs(carol, linkIn(await dm(carol, "reconnect", CONNECT), CONNECT));
    const job1 = await jobDone(carol.personId);

    await followedOnX(carol, [pre, lou, sam]);
    // Every request of the next run answers 429 (reset 1 s ahead), five times each: the run gives up and the job waits.
    instance.failNext(15, { resetInMs: 1000 });
    try {
      await dm(carol, "reconnect", /On it/);
      const waiting = await until(
        "the job to wait",
        async () => {
          const job = await latestJob(carol.personId);
          return job && job.id > job1.id && job.state === "waiting" && job;
        },
        30_000,
        25,
      );
      expect(waiting.reason).toBe("rate_limited");
      // Until the instance's reset (about a second), not some default back-off.
      expect(Math.abs(waiting.wait_until!.getTime() - Date.now())).toBeLessThan(5_000);
      // The next run meets a tiny per-token limit: it waits for each window rather than fail.
      instance.rateLimit = { limit: 3, windowMs: 1500 };
      const job2 = await jobDone(carol.personId, job1.id);
      expect(job2.id).toBe(waiting.id);
      expect(await outcomes(job2.id)).toEqual({ [pre.acct]: "followed", [lou.acct]: "followed", [sam.acct]: "followed" });
    } finally {
      instance.rateLimit = { limit: 300, windowMs: 300_000 };
    }
    // Only the injected 429s: under the tiny limit the client waited for each window (X-RateLimit-*) instead of
    // being refused, though the run needed more requests than one window allows.
    const mine = instance.requests.filter((r) => r.token === token);
    expect(mine.filter((r) => r.status === 429)).toHaveLength(15);
    const lastFault = mine.findLastIndex((r) => r.status === 429);
    expect(mine.slice(lastFault + 1).every((r) => r.status === 200)).toBe(true);
    expect(mine.length - lastFault - 1).toBeGreaterThan(2 * 3);
    for (const t of [plain, pre, sam]) expect(followsFrom(t, carol), t.acct).toHaveLength(1);
    for (const t of [plain, pre, lou, sam]) expect(followPostsWith(token, t), t.acct).toBe(1);
    expect(instance.isFollowing("carol", "lou")).toBe(true);
    const done = await until("two summaries", () => summaries(carol).length === 2 && summaries(carol));
    expect(done[1]).toContain("3 followed");
  });

  it("pauses when the token is revoked, and asks again by DM with a new link", async () => {
    const { dave } = people;
    const { plain, locked } = targets;
    await followedOnX(dave, [plain]);
    const first = linkIn(await dm(dave, "reconnect", CONNECT), CONNECT);
    const token = await authorizeAs(dave, first);
    const job1 = await jobDone(dave.personId);
    instance.revokeToken(token);

    await followedOnX(dave, [locked]);
    await dm(dave, "reconnect", /On it/);
    const asked = await until("a new authorization link", () =>
      fromBot(dave.user).map(textOf).find((t) => t.includes("expired or was revoked")),
    );
    const second = linkIn(asked, CONNECT);
    expect(second).not.toBe(first);
    const paused = await latestJob(dave.personId);
    expect(paused!.id).toBeGreaterThan(job1.id);
    expect(paused!.state).toBe("needs_authorization");
    const [row] = await db.sql`select 1 from account_authorization where identity_id = ${dave.identityId}`;
    expect(row).toBeUndefined();
    expect(followsFrom(locked, dave)).toHaveLength(0);
    expectOnlyDirect(dave);

    // Authorizing again resumes the paused job.
    const token2 = await authorizeAs(dave, second);
    expect(token2).not.toBe(token);
    const job2 = await jobDone(dave.personId, job1.id);
    expect(job2.id).toBe(paused!.id);
    expect(await outcomes(job2.id)).toEqual({ [locked.acct]: "requested" });
    expect(followsFrom(locked, dave)).toHaveLength(1);
    expect(followsFrom(plain, dave)).toHaveLength(1);
    await until("two summaries", () => summaries(dave).length === 2);
  });

  it("without authorization: the export link gives following_accounts.csv, once", async () => {
    const { erin } = people;
    const all = Object.values(targets);
    await followedOnX(erin, all);
    // Asked in public: the links still come by DM only.
    const reply = await dm(erin, "reconnect", new RegExp(`${CONNECT.source}[\\s\\S]*${EXPORT.source}`), "public");
    const link = linkIn(reply, EXPORT);
    expectOnlyDirect(erin);

    const page = await fetch(link);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`${all.length} accounts you followed on X are on the fediverse`);
    expect(html).toMatch(/<form method="post"/);
    expect((await fetch(link)).status).toBe(200); // looking does not use it up

    const file = await fetch(link, { method: "POST" });
    expect(file.status).toBe(200);
    expect(file.headers.get("content-type")).toMatch(/^text\/csv/);
    expect(file.headers.get("content-disposition")).toBe('attachment; filename="following_accounts.csv"');
    const [header, ...lines] = (await file.text()).trimEnd().split("\n");
    expect(header).toBe("Account address,Show boosts,Notify on new posts,Languages");
    expect(lines.sort()).toEqual(all.map((t) => `${t.acct},true,false,`).sort());

    expect((await fetch(link, { method: "POST" })).status).toBe(410);
    // Nothing was authorized nor followed.
    expect((await latestJob(erin.personId))!.state).toBe("needs_authorization");
    for (const t of all) expect(followsFrom(t, erin)).toHaveLength(0);
  });

  it("stop cancels a reconnection under way: nothing more is followed, no summary comes", async () => {
    const { gwen } = people;
    const all = [targets.plain, targets.pre, targets.lou, targets.sam];
    await followedOnX(gwen, all);
    // One request per 2 s: stop comes between two follows, and the run notices before the next.
    instance.rateLimit = { limit: 1, windowMs: 2000 };
    try {
      await authorizeAs(gwen, linkIn(await dm(gwen, "reconnect", CONNECT), CONNECT));
      await until("a first follow", async () => all.some((t) => followsFrom(t, gwen).length > 0), 30_000, 25);
      expect(await dm(gwen, "stop", /stopped too/)).toContain("the follows already made stay");
      const followedAtStop = all.filter((t) => followsFrom(t, gwen).length > 0).length;
      await settle(4_000);
      const job = (await latestJob(gwen.personId))!;
      expect(job.state).toBe("cancelled");
      // At most a follow already sent when the run noticed.
      const followedAfter = all.filter((t) => followsFrom(t, gwen).length > 0).length;
      expect(followedAfter - followedAtStop).toBeLessThanOrEqual(1);
      expect(followedAfter).toBeLessThan(all.length);
      expect(summaries(gwen)).toEqual([]);
      expect(fromBot(gwen.user).map(textOf).filter((t) => /Reconnection on .* \d+ of \d+ done/.test(t))).toEqual([]);
    } finally {
      instance.rateLimit = { limit: 300, windowMs: 300_000 };
    }
  });

  it("reports progress on a long job, then one summary", async () => {
    const { ivy } = people;
    // 45 accounts on ivy's own instance: the writer takes them in two batches (40, then 5), recording as each ends.
    const many = await Promise.all(Array.from({ length: 45 }, (_, i) => instance.addUser({ name: `ivyt${i}` }).then((a) => target(a.user!))));
    await followedOnX(ivy, many);
    // 20 requests a second per token: the first batch (40 lookups, relationships, 40 follows) takes over 3 s,
    // longer than the 2 s between progress reports here.
    instance.rateLimit = { limit: 20, windowMs: 1000 };
    try {
      await authorizeAs(ivy, linkIn(await dm(ivy, "reconnect", CONNECT), CONNECT));
      const job = await jobDone(ivy.personId);
      expect(Object.values(await outcomes(job.id)).filter((o) => o === "followed")).toHaveLength(45);
    } finally {
      instance.rateLimit = { limit: 300, windowMs: 300_000 };
    }
    await until("the summary DM", () => summaries(ivy).length > 0);
    // Each DM opens with a mention of its recipient.
    const texts = fromBot(ivy.user).map((n) => textOf(n).replace(/^@ivy\b\s*/, ""));
    const summary = texts.find((t) => t.includes("finished"))!;
    expect(summary).toBe("Reconnection on Mastodon (fediverse) finished: 45 followed, 0 already followed.");
    // The first batch's end reports; the second's ends the job, which the summary tells instead.
    const progress = texts.filter((t) => /Reconnection on Mastodon \(fediverse\): \d+ of 45 done/.test(t));
    expect(progress).toEqual(["Reconnection on Mastodon (fediverse): 40 of 45 done — 40 followed, 0 already followed."]);
    expect(texts.indexOf(progress[0]!)).toBeLessThan(texts.indexOf(summary));
    await settle();
    expect(summaries(ivy)).toHaveLength(1);
    expectOnlyDirect(ivy);
    // `status` shows the finished job.
    expect(await dm(ivy, "status", /finished/)).toContain("Reconnection on Mastodon (fediverse): finished — 45/45: 45 followed");
  });

  it("unlink revokes the account's token at the instance, not only here", async () => {
    const { hana } = people;
    await followedOnX(hana, [targets.plain]);
    const token = await authorizeAs(hana, linkIn(await dm(hana, "reconnect", CONNECT), CONNECT));
    await jobDone(hana.personId);
    // Another account to keep (the last one the bots can write to cannot be unlinked).
    await db.store.identities.attach(hana.personId, { platform: "bluesky", stableId: "did:plc:hana7700", handle: "hana7700.test", verifiedBy: "platform" });
    expect(await dm(hana, "unlink mastodon", /detached/)).toContain("detached");
    const check = await fetch(`${instance.origin}/api/v1/accounts/verify_credentials`, { headers: { Authorization: `Bearer ${token}` } });
    expect(check.status).toBe(401);
    const [row] = await db.sql`select 1 from account_authorization where identity_id = ${hana.identityId}`;
    expect(row).toBeUndefined();
  });

  it("refuses an OAuth callback for another account than the linked one, and stores nothing", async () => {
    const { frank, alice } = people;
    await followedOnX(frank, [targets.plain]);
    const link = linkIn(await dm(frank, "reconnect", CONNECT), CONNECT);
    const posts = instance.requests.filter((r) => r.method === "POST" && r.path.endsWith("/follow")).length;
    // Frank's link, but alice signs in on the instance.
    const mark = instance.requests.length;
    const refused = await authorize(link, alice);
    expect(refused.status).toBe(403);
    expect(refused.text).toContain(`Sign in as @frank@${instance.domain}`);
    // The token the instance gave for alice is not kept, nor left valid.
    const aliceToken = instance.requests.slice(mark).find((r) => r.path === "/api/v1/accounts/verify_credentials")!.token!;
    const check = await fetch(`${instance.origin}/api/v1/accounts/verify_credentials`, { headers: { Authorization: `Bearer ${aliceToken}` } });
    expect(check.status).toBe(401);
    const [row] = await db.sql`select 1 from account_authorization where identity_id = ${frank.identityId}`;
    expect(row).toBeUndefined();
    expect((await latestJob(frank.personId))!.state).toBe("needs_authorization");
    await settle();
    expect(instance.requests.filter((r) => r.method === "POST" && r.path.endsWith("/follow")).length).toBe(posts);
    expect(followsFrom(targets.plain, frank)).toHaveLength(0);
    // A state we did not seal (here, the bare token) opens nothing.
    const bare = new URL("/connect/mastodon/callback", origin);
    bare.search = new URLSearchParams({ state: new URL(link).pathname.split("/").pop()!, code: "x" }).toString();
    expect((await fetch(bare)).status).toBe(410);
    // Frank says no on his instance: it sends him back with access_denied, which the page says as it is.
    const start = await fetch(new URL(`${new URL(link).pathname}/mastodon`, link), { method: "POST", redirect: "manual" });
    const state = new URL(start.headers.get("location")!).searchParams.get("state")!;
    const denied = new URL("/connect/mastodon/callback", origin);
    denied.search = new URLSearchParams({ error: "access_denied", error_description: "The resource owner or authorization server denied the request.", state }).toString();
    const deniedPage = await fetch(denied);
    expect(deniedPage.status).toBe(400);
    expect(await deniedPage.text()).toContain("You declined the authorization. Nothing was changed.");
    // The link still works for frank himself.
    expect((await fetch(link)).status).toBe(200);
    await authorizeAs(frank, link);
    await jobDone(frank.personId);
    expect(followsFrom(targets.plain, frank)).toHaveLength(1);
  });
});
