/**
 * Arrival digests end to end: the real fediverse bot (Fedify, its
 * PostgreSQL queues) on 127.0.0.1 sends each person a direct message about
 * the people they followed on X who arrived; a fediverse server of users
 * receives them, signed. Run twice, nothing is sent twice.
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ForeignPostError, postPublicAnnouncements, sendArrivalDigests, type AnnouncementPoster } from "../src/announce/index.ts";
import type { Logger } from "../src/logger.ts";
import { routeMessages } from "../src/reconnect/index.ts";
import { createTestDatabase, type TestDatabase } from "./harness/database.ts";
import { startFediServer, type FediServer, type FediUser } from "./harness/fediverse.ts";
import { freePort, startBot, type RunningBot } from "./harness/fediverse-bot.ts";
import { registerPerson, type AccountSpec } from "./harness/graph.ts";
import { until } from "./harness/wait.ts";

const log = pino({ level: "silent" }) as unknown as Logger;
let db: TestDatabase;
let server: FediServer;
let running: RunningBot;
let nextX = 900_000;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startFediServer({ users: [{ name: "alice" }, { name: "amelie" }, { name: "bob" }, { name: "fan" }, { name: "carla" }, { name: "dora" }, { name: "enzo" }] });
  running = await startBot(db, await freePort());
});
afterAll(async () => {
  await running?.stop();
  await server?.close();
  await db?.drop();
});

const onFedi = (user: FediUser): AccountSpec => ({ platform: "fediverse", stableId: user.actorId, handle: user.acct });
async function register(account: AccountSpec, language?: "fr" | "en") {
  const x = String(++nextX);
  const { personId } = await registerPerson(db.store, x, account);
  if (language) await db.store.people.updateSettings(personId, { language });
  return { personId, x };
}
async function follows(follower: { x: string; personId: number }, ...followed: { x: string }[]) {
  for (const f of followed) await db.sql`insert into x_follow values (${follower.x}, ${f.x})`;
  await db.store.matches.refreshForFollowers([follower.personId]);
}
const run = (messenger = routeMessages({ fediverse: { send: (to, text) => running.bot.message(to.stableId!, to.handle, [text]) } })) =>
  sendArrivalDigests({ store: db.store, messenger, defaultLanguage: "en", log });
const text = (html: string) => html.replace(/<[^>]+>/g, "").replace(/&#39;|&apos;/g, "'").replace(/&amp;/g, "&");

it("sends each person one direct digest of who arrived, in their language, and never the same arrival twice", async () => {
  const alice = server.user("alice");
  const amelie = server.user("amelie");
  const bob = server.user("bob");
  const pAlice = await register(onFedi(alice));
  const pAmelie = await register(onFedi(amelie), "fr");
  // Arrivals, after both joined: one on Bluesky, one on the fediverse.
  const tara = await register({ platform: "bluesky", stableId: "did:plc:tara", handle: "tara.example.com" });
  const pBob = await register(onFedi(bob));
  await follows(pAlice, tara, pBob);
  await follows(pAmelie, tara);

  expect(await run()).toMatchObject({ sent: 2, undelivered: 0 });
  const [toAlice] = await alice.waitForNotes(1);
  const [toAmelie] = await amelie.waitForNotes(1);
  const en = text(toAlice!.content);
  expect(en).toContain("2 people you followed on X have just arrived");
  expect(en).toContain("@tara.example.com");
  expect(en).toContain(`@${bob.acct}`);
  expect(en).toContain("`reconnect`");
  // Direct: addressed to the person alone (the Create and its Note), mentioning them.
  expect(new Set(toAlice!.to)).toEqual(new Set([alice.actorId]));
  expect(toAlice!.cc).toEqual([]);
  expect(JSON.stringify(toAlice!.raw)).not.toMatch(/#Public|as:Public|followers/);
  expect(toAlice!.mentions.map((m) => m.href)).toEqual([alice.actorId]);
  expect(text(toAmelie!.content)).toContain("Une personne que vous suiviez sur X vient d’arriver");

  // Nothing new: nothing sent. A newcomer later: only that one.
  expect(await run()).toMatchObject({ sent: 0 });
  const late = await register({ platform: "bluesky", stableId: "did:plc:late", handle: "late.example.com" });
  await follows(pAlice, late);
  expect(await run()).toMatchObject({ sent: 1 });
  const [, second] = await alice.waitForNotes(2);
  expect(text(second!.content)).toContain("Someone you followed on X has just arrived");
  expect(text(second!.content)).toContain("@late.example.com");
  expect(text(second!.content)).not.toContain("tara");
  await new Promise((r) => setTimeout(r, 500));
  expect(alice.notes).toHaveLength(2);
  expect(amelie.notes).toHaveLength(1);
});

it("keeps a digest no bot could deliver for the next run", async () => {
  const onlyBluesky = await register({ platform: "bluesky", stableId: "did:plc:nobot", handle: "nobot.example.com" });
  const arrival = await register({ platform: "bluesky", stableId: "did:plc:arrival", handle: "arrival.example.com" });
  await follows(onlyBluesky, arrival);
  // No Bluesky bot running: nobody can take it.
  expect(await run()).toMatchObject({ sent: 0, undelivered: 1 });
  expect(await db.store.arrivals.peopleWithUntold(0, 1000)).toContain(onlyBluesky.personId);
  const delivered: string[] = [];
  const bluesky = { send: async (_to: unknown, t: string) => (delivered.push(t), true) };
  expect(await run(routeMessages({ bluesky }))).toMatchObject({ sent: 1 });
  expect(delivered[0]).toContain("@arrival.example.com");
});

describe("public announcements", () => {
  const fediversePoster = (): AnnouncementPoster => ({
    post: async (text, named) => (await running.bot.announce(text, named.map((n) => ({ actorUri: n.stableId, acct: n.handle })))).href,
    retract: (uri) => running.bot.retract(uri),
  });
  // Each run an hour after the one before (as a schedule would), starting now.
  let hours = 0;
  const post = (posters: Parameters<typeof postPublicAnnouncements>[0]["posters"]) =>
    postPublicAnnouncements({ store: db.store, posters, language: "en", log, settleMs: 0, tick: new Date(Date.now() + hours++ * 3_600_000) });

  it("posts to the bot's followers how many arrived, naming only those who agreed, once per window", async () => {
    const fan = server.user("fan");
    const follow = { "@context": "https://www.w3.org/ns/activitystreams", id: `${fan.actorId}#follows/bot`, type: "Follow", actor: fan.actorId, object: running.actorId };
    expect((await fan.post(running.inbox, follow)).status).toBeLessThan(300);
    await fan.waitFor(() => fan.accepts.length === 1);
    // The first run only marks where announcing begins: the people above are not announced.
    const failing: AnnouncementPoster = { post: async () => { throw new Error("PDS down"); }, retract: async () => { throw new Error("PDS down"); } };
    expect(await post({ fediverse: fediversePoster(), bluesky: failing })).toMatchObject({ posted: 0, failed: 0 });

    const carla = server.user("carla");
    const named = await register(onFedi(carla));
    await db.store.people.updateSettings(named.personId, { announceMe: true });
    await register(onFedi(server.user("dora")));
    await register(onFedi(server.user("enzo")));
    // A Bluesky arrival is the Bluesky bot's to announce; its post fails first, and is not lost.
    const bsky = await register({ platform: "bluesky", stableId: "did:plc:welcome", handle: "welcome.example.com" });
    await db.store.people.updateSettings(bsky.personId, { announceMe: true });

    expect(await post({ fediverse: fediversePoster(), bluesky: failing })).toMatchObject({ posted: 1, arrivals: 3, failed: 1 });
    await until("the public note at the follower's server", () => server.publicNotes.length === 1, 10_000);
    const note = server.publicNotes[0]!;
    expect(note.to).toContain("https://www.w3.org/ns/activitystreams#Public");
    expect(note.cc).toContain(`${running.actorId}/followers`);
    const body = text(note.content);
    expect(body).toContain("Welcome to the 3 people who just arrived on Mastodon (fediverse) from X, among them @carla!");
    expect(body).not.toMatch(/dora|enzo|welcome\.example/);
    expect(note.mentions.map((m) => m.href)).toEqual([carla.actorId]);
    // To the followers' shared inbox, and to the one named (here the same server, so twice).
    await until("the post at the followers' inbox too", () => server.posted.filter((p) => p.body.id === note.activityId).length === 2, 10_000);
    // A public post, unlike a DM, carries its signatures: relays and boosts pass it on.
    const wire = server.postedActivity(note.activityId!);
    expect(wire).toHaveProperty("signature");
    expect(wire).toHaveProperty("proof");
    // And it is served at its id and listed in the outbox, for servers that see it boosted.
    const asJson = { headers: { Accept: "application/activity+json" } };
    const served = (await (await fetch(note.id, asJson)).json()) as Record<string, unknown>;
    expect(served).toMatchObject({ id: note.id, type: "Note", attributedTo: running.actorId, to: "as:Public", content: note.raw.content });
    expect(served.published).toBe(note.raw.published);
    const outbox = (await (await fetch(`${running.actorId}/outbox`, asJson)).json()) as { totalItems: number; first: string };
    expect(outbox.totalItems).toBe(1);
    const page = (await (await fetch(outbox.first, asJson)).json()) as { orderedItems: { id: string; object: { id: string } }[] };
    expect(page.orderedItems.map((c) => [c.id, c.object.id])).toEqual([[note.activityId, note.id]]);
    // A person following a link to it from their server gets a page, the mention as text.
    const browser = await fetch(note.id, { headers: { Accept: "text/html,application/xhtml+xml,*/*;q=0.8" } });
    expect(browser.status).toBe(200);
    const pageText = await browser.text();
    expect(pageText).toContain("Welcome to the 3 people who just arrived on Mastodon (fediverse) from X, among them @carla");
    expect(pageText).not.toContain("<a href=\"http");
    // A direct message is neither.
    const fan2 = server.user("enzo");
    const before = fan2.notes.length;
    expect(await running.bot.message(fan2.actorId, fan2.acct, ["only for enzo"])).toBe(true);
    const [dm] = (await fan2.waitForNotes(before + 1)).slice(before);
    expect((await fetch(dm!.id, asJson)).status).toBe(404);
    expect((await fetch(dm!.id, { headers: { Accept: "text/html" } })).status).toBe(404);
    expect((await fetch(dm!.activityId!, asJson)).status).toBe(404);

    const posted: string[] = [];
    const retracted: string[] = [];
    const recording: AnnouncementPoster = { post: async (t) => (posted.push(t), "at://did:plc:bot/app.bsky.feed.post/1"), retract: async (uri) => void retracted.push(uri) };
    expect(await post({ fediverse: fediversePoster(), bluesky: recording })).toMatchObject({ posted: 1, arrivals: 1 });
    expect(posted).toEqual(["Welcome @welcome.example.com, just arrived on Bluesky from X! Left X too? Send me a message: I'll tell you who you followed there is here, and can follow them for you."]);
    // Nothing new since: no post anywhere.
    expect(await post({ fediverse: fediversePoster(), bluesky: recording })).toMatchObject({ posted: 0 });
    await new Promise((r) => setTimeout(r, 500));
    expect(server.publicNotes).toHaveLength(1);

    // Carla, named in the fediverse post, and the Bluesky arrival named in
    // the other, ask to be forgotten: the fediverse copy is no longer served
    // from that moment, and the next run takes both posts back, once.
    expect(await db.store.erase(named.personId)).toBe(true);
    expect(await db.store.erase(bsky.personId)).toBe(true);
    expect((await fetch(note.id, { headers: { Accept: "application/activity+json" } })).status).toBe(404);
    expect(await db.store.fediverse.publicNoteCount()).toBe(0);
    expect(await post({ fediverse: fediversePoster(), bluesky: recording })).toMatchObject({ posted: 0, retracted: 2, retractionsFailed: 0 });
    expect(retracted).toEqual(["at://did:plc:bot/app.bsky.feed.post/1"]);
    // To the followers' shared inbox and to Carla's (here the same server: twice).
    await until("the Delete at the follower's and at Carla's server", () => server.posted.filter((p) => p.body.type === "Delete").length === 2, 10_000);
    expect(server.deleted).toContain(note.id);
    expect(await post({ fediverse: fediversePoster(), bluesky: recording })).toMatchObject({ retracted: 0 });
    expect(retracted).toHaveLength(1);
  });

  it("takes a post back at once when someone it names is forgotten while it goes out", async () => {
    const tick = new Date(Date.now() + 50 * 3_600_000);
    const late = await register({ platform: "bluesky", stableId: "did:plc:leaving", handle: "leaving.example.com" });
    await db.store.people.updateSettings(late.personId, { announceMe: true });
    // Arrived inside the next window (the earlier runs covered up to a few hours ahead).
    await db.sql`update identity set verified_at = ${new Date(Date.now() + 40 * 3_600_000)} where person_id = ${late.personId}`;
    await db.sql`update arrival set arrived_at = ${new Date(Date.now() + 40 * 3_600_000)} where person_id = ${late.personId}`;
    const deleted: string[] = [];
    const forgetting: AnnouncementPoster = {
      post: async (_text, named) => {
        expect(named.map((n) => n.handle)).toEqual(["leaving.example.com"]);
        expect(await db.store.erase(late.personId)).toBe(true);
        return "at://did:plc:bot/app.bsky.feed.post/leaving";
      },
      retract: async (uri) => void deleted.push(uri),
    };
    const run = await postPublicAnnouncements({ store: db.store, posters: { bluesky: forgetting }, language: "en", log, settleMs: 0, tick });
    expect(run).toMatchObject({ posted: 1, retracted: 1 });
    expect(deleted).toEqual(["at://did:plc:bot/app.bsky.feed.post/leaving"]);
  });

  it("tries a take-back its platform refused again after the claim's lease, and drops one that is not the bot's", async () => {
    const tick = new Date(Date.now() + 60 * 3_600_000);
    const window = { platform: "bluesky" as const, since: new Date("2025-01-01T00:00:00Z"), until: new Date("2025-01-01T01:00:00Z") };
    await db.sql`insert into announcement (platform, since, until) values ('bluesky', ${window.since}, ${window.until})`;
    const gone = await register({ platform: "bluesky", stableId: "did:plc:gone", handle: "gone.example.com" });
    await db.store.announcements.posted(window, { count: 1, named: [gone.personId] }, "at://did:plc:bot/app.bsky.feed.post/2");
    await db.store.announcements.posted({ ...window, since: new Date("2024-01-01T00:00:00Z") }, { count: 0, named: [] }, null);
    await db.sql`insert into announcement_retraction (platform, post_uri) values ('bluesky', 'at://did:plc:someone-else/app.bsky.feed.post/3')`;
    expect(await db.store.erase(gone.personId)).toBe(true);
    const run = (bluesky: AnnouncementPoster) => postPublicAnnouncements({ store: db.store, posters: { bluesky }, language: "en", log, settleMs: 0, tick });
    const failing: AnnouncementPoster = {
      post: async () => "x",
      retract: async (uri) => {
        throw uri.includes("someone-else") ? new ForeignPostError(uri) : new Error("PDS down");
      },
    };
    expect(await run(failing)).toMatchObject({ retracted: 0, retractionsFailed: 1 });
    // Claimed for ten minutes: the next run leaves it, one after the lease takes it; the foreign one is gone.
    const done: string[] = [];
    const working: AnnouncementPoster = { post: async () => "x", retract: async (uri) => void done.push(uri) };
    expect(await run(working)).toMatchObject({ retracted: 0 });
    await db.sql`update announcement_retraction set claimed_at = now() - interval '11 minutes'`;
    expect(await run(working)).toMatchObject({ retracted: 1 });
    expect(done).toEqual(["at://did:plc:bot/app.bsky.feed.post/2"]);
  });

  it("lets one replica post a window when several run at once", async () => {
    // Replicas woken by the same schedule share the tick, hence `until`.
    const tick = Date.now() + 100 * 3_600_000;
    const opened = await Promise.all([1, 2, 3].map(() => db.store.announcements.open("fediverse", new Date(tick))));
    expect(opened.filter(Boolean)).toHaveLength(1);
    // One whose clock put it a minute later opens nothing either.
    expect(await db.store.announcements.open("fediverse", new Date(tick + 60_000))).toBeUndefined();
    expect(await db.store.announcements.open("fediverse", new Date(tick + 3_600_000))).toBeDefined();
  });
});
