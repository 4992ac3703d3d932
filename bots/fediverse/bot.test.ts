/**
 * The fediverse bot against a local fediverse: real signed activities from
 * separate Fedify servers on 127.0.0.1, replies collected in their inboxes.
 */
import { createExponentialBackoffPolicy } from "@fedify/fedify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BOT_SUMMARY } from "./actor.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { startFediServer, type FediServer, type FediUser, type ReceivedNote } from "../../test/harness/fediverse.ts";
import { freePort, startBot, type RunningBot } from "../../test/harness/fediverse-bot.ts";
import { createNote, SHAPES, type Audience, type BotRef, type Shape } from "../../test/harness/fediverse-shapes.ts";
import { until } from "../../test/harness/wait.ts";

let db: TestDatabase;
let port: number;
let bot: RunningBot;
let ref: BotRef;
let server: FediServer;
let split: FediServer;
/** A server of its own for the delivery-retry test (Fedify's circuit breaker counts failures per host). */
let flaky: FediServer;
/** Every Create the bot handled (its onHandled callback), in order. */
const handled: { noteId: string; handledAs: string; replies: number }[] = [];
/** Fedify's back-off, from 150 ms instead of 1 s so that retries show within a test. */
const RETRY_MS = 150;

beforeAll(async () => {
  db = await createTestDatabase();
  port = await freePort();
  bot = await startBot(db, port, {
    onHandled: (info) => void handled.push(info),
    outboxRetryPolicy: createExponentialBackoffPolicy({ initialDelay: { milliseconds: RETRY_MS }, jitter: false, maxAttempts: 5 }),
  });
  ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
  server = await startFediServer({
    users: [
      { name: "alice" }, { name: "bob" }, { name: "robot", type: "Service" }, { name: "app", type: "Application" }, { name: "frank" }, { name: "gina" }, { name: "hank" },
      { name: "ivy" }, { name: "dave" }, { name: "eve" }, { name: "fol" }, ...SHAPES.map((s) => ({ name: `u_${s}` }))],
  });
  split = await startFediServer({ users: [{ name: "carol" }], splitDomain: true });
  flaky = await startFediServer({ users: [{ name: "rita" }] });
});

afterAll(async () => {
  await bot?.stop();
  await server?.close();
  await split?.close();
  await flaky?.close();
  await db?.drop();
});

/** See RunningBot.drained: what has not arrived by then was never sent. */
const drained = () => bot.drained();

/** Waits for the bot to have handled the note `noteId` (onHandled), and returns what it reported. */
function handledNote(noteId: string): Promise<(typeof handled)[number]> {
  return until(`note ${noteId} to be handled`, () => handled.find((h) => h.noteId === noteId), 10_000, 20);
}

/** Checks that a reply is a direct note to `user` only, mentioning them, answering `noteId`. */
function expectDirectReply(note: ReceivedNote, user: FediUser, noteId: string): void {
  expect(note.attributedTo).toBe(bot.actorId);
  expect(new Set(note.to)).toEqual(new Set([user.actorId]));
  expect(note.cc).toEqual([]);
  expect(JSON.stringify(note.raw)).not.toMatch(/#Public|as:Public|followers/);
  expect(note.mentions).toContainEqual({ href: user.actorId, name: expect.stringContaining(`@${user.name}@`) });
  expect(note.content).toMatch(new RegExp(`^<p><span class="h-card"[^>]*><a href="[^"]+" class="u-url mention">@<span>${user.name}</span></a></span> `));
  expect(note.inReplyTo).toBe(noteId);
  // On the wire: to the user's own inbox, HTTP-signed, and nothing in the
  // body that would let a receiver prove to others what the bot told them.
  const wire = user.server.posted.find((p) => p.body.id === note.activityId);
  expect(wire).toMatchObject({ path: `/users/${user.name}/inbox`, signed: true });
  expect(Object.keys(wire!.body)).not.toContain("signature");
  expect(Object.keys(wire!.body)).not.toContain("proof");
  expect(Object.keys(wire!.body.object as object)).not.toContain("proof");
}

describe("the actor", () => {
  it("answers a browser opening its URL with 406, and goes on serving (the 404 page must not answer first)", async () => {
    for (const accept of ["text/html", "*/*"]) {
      const page = await fetch(bot.actorId, { headers: { Accept: accept } });
      expect(page.status, accept).toBe(406);
      await page.text();
    }
    expect((await fetch(bot.actorId, { method: "HEAD", headers: { Accept: "text/html" } })).status).toBe(406);
    await new Promise((r) => setTimeout(r, 100));
    const actor = await fetch(bot.actorId, { headers: { Accept: "application/activity+json" } });
    expect(actor.status).toBe(200);
    expect((await fetch(new URL("/nowhere", bot.actorId), { headers: { Accept: "text/html" } })).status).toBe(404);
  });

  it("is a Service with keys, inboxes, outbox, followers, icon; found by WebFinger and NodeInfo", async () => {
    const res = await fetch(bot.actorId, { headers: { Accept: "application/activity+json" } });
    expect(res.status).toBe(200);
    const actor = (await res.json()) as Record<string, any>;
    expect(actor.type).toBe("Service");
    expect(actor.preferredUsername).toBe("reconnexion");
    expect(actor.inbox).toBe(bot.inbox);
    expect(actor.endpoints.sharedInbox).toBe(bot.sharedInbox);
    expect(actor.outbox).toBe(`${bot.actorId}/outbox`);
    expect(actor.followers).toBe(`${bot.actorId}/followers`);
    expect(actor.summary).toMatch(/Écrivez-moi/);
    expect(actor.summary).toMatch(/Send me a direct message/);
    expect(actor.publicKey.publicKeyPem).toMatch(/BEGIN PUBLIC KEY/);
    expect(actor.assertionMethod).toHaveLength(2);
    const icon = await fetch(actor.icon.url);
    expect(icon.headers.get("content-type")).toBe("image/png");
    expect(Buffer.from(await icon.arrayBuffer()).subarray(1, 4).toString()).toBe("PNG");

    const wf = await fetch(`${bot.origin}/.well-known/webfinger?resource=acct:${ref.acct}`);
    const jrd = (await wf.json()) as { subject: string; links: { rel: string; href: string }[] };
    expect(jrd.subject).toBe(`acct:${ref.acct}`);
    expect(jrd.links).toContainEqual(expect.objectContaining({ rel: "self", href: bot.actorId }));
    // The profile link people follow leads to a page (the service's front page), not to JSON.
    expect(actor.url).toBe(`${bot.origin}/`);
    expect(jrd.links).toContainEqual(expect.objectContaining({ rel: "http://webfinger.net/rel/profile-page", href: `${bot.origin}/` }));

    const ni = await fetch(`${bot.origin}/.well-known/nodeinfo`);
    const link = ((await ni.json()) as { links: { href: string }[] }).links[0]!.href;
    const info = (await (await fetch(link)).json()) as { software: { name: string }; protocols: string[] };
    expect(info.software.name).toBe("reconnexion");
    expect(info.protocols).toEqual(["activitypub"]);
  });

  it("shows its name, bilingual summary, front page URL and icon as written in actor.ts", async () => {
    const res = await fetch(bot.actorId, { headers: { Accept: "application/activity+json" } });
    const actor = (await res.json()) as Record<string, any>;
    expect(actor.id).toBe(bot.actorId);
    expect(actor.name).toBe("Reconnexion");
    // One summary carrying both languages (not a language map): French, then English, then the bot notice.
    expect(actor.summary).toBe(BOT_SUMMARY);
    expect(actor.summaryMap).toBeUndefined();
    const paragraphs = [...String(actor.summary).matchAll(/<p>(.*?)<\/p>/g)].map((m) => m[1]);
    expect(paragraphs).toHaveLength(3);
    expect(paragraphs[0]).toMatch(/^🇫🇷 Je retrouve pour vous, ici et sur Bluesky, les comptes que vous suiviez sur X.*<code>aide<\/code>\.$/);
    expect(paragraphs[1]).toMatch(/^🇬🇧 I find the accounts you followed on X here and on Bluesky.*<code>help<\/code>\.$/);
    expect(paragraphs[2]).toBe("Bot — compte automatisé. / Bot — automated account.");
    expect(actor.url).toBe(`${bot.origin}/`);
    expect(actor.icon).toEqual({ type: "Image", url: `${bot.origin}/fediverse/icon.png`, mediaType: "image/png" });
    expect(actor.manuallyApprovesFollowers).toBe(false);
    expect(actor.discoverable).toBe(true);
    expect(actor.indexable).toBe(false);
  });

  it("keeps its key pairs in the database", async () => {
    const rows = await db.sql`select algorithm from fediverse_key order by algorithm`;
    expect(rows.map((r) => r.algorithm)).toEqual(["Ed25519", "RSASSA-PKCS1-v1_5"]);
  });
});

describe("direct messages", () => {
  it("answers a Mastodon DM with a direct note", async () => {
    const alice = server.user("alice");
    const body = createNote("mastodon", alice, ref, "help");
    const res = await alice.post(bot.inbox, body);
    expect(res.status).toBeLessThan(300);
    const [reply] = await alice.waitForNotes(1);
    expectDirectReply(reply!, alice, (body.object as { id: string }).id);
  });

  it("reads an account mentioned by its short name (Mastodon's HTML) as the whole account its Mention tag names", async () => {
    const nora = await server.addUser({ name: "nora" });
    const zed = await server.addUser({ name: "zed" });
    const body = createNote("mastodon", nora, ref, "link");
    const note = body.object as { content: string; contentMap: Record<string, string>; tag: unknown[] };
    // `link @zed`, as Mastodon writes it: the link shows the short name, the tag the whole account.
    const zedLink = `<span class="h-card" translate="no"><a href="${new URL(zed.actorId).origin}/@zed" class="u-url mention">@<span>zed</span></a></span>`;
    note.content = note.content.replace(/ link<\/p>$/, ` link ${zedLink}</p>`);
    note.contentMap = { en: note.content };
    note.tag.push({ type: "Mention", href: zed.actorId, name: `@${zed.acct}` });
    expect((await nora.post(bot.inbox, body)).status).toBeLessThan(300);
    const [reply] = await nora.waitForNotes(1);
    // Taken as that fediverse account (a code to send from it), not as an X username.
    expect(reply!.content).toContain(zed.acct);
    expect(reply!.content).not.toMatch(/X account/i);
  });

  it.each(SHAPES)("answers a %s DM", async (shape) => {
    const user = server.user(`u_${shape}`);
    const body = createNote(shape, user, ref, "help");
    const res = await user.post(bot.sharedInbox, body);
    expect(res.status, await res.text()).toBeLessThan(300);
    const [reply] = await user.waitForNotes(1);
    expectDirectReply(reply!, user, (body.object as { id: string }).id);
  });
});

const noteIdOf = (body: Record<string, unknown>) => (body.object as { id: string }).id;
const AUDIENCES = ["public", "unlisted", "followers"] as const;

describe("mentions in public", () => {
  it.each(AUDIENCES)("answers a %s mention privately", async (audience) => {
    const user = server.user(audience === "public" ? "frank" : audience === "unlisted" ? "ivy" : "gina");
    const before = user.notes.length;
    const body = createNote("mastodon", user, ref, "status", { audience });
    expect((await user.post(bot.sharedInbox, body)).status).toBeLessThan(300);
    const notes = await user.waitForNotes(before + 1);
    expectDirectReply(notes[before]!, user, noteIdOf(body));
  });

  // Each server's own forms: GoToSocial's "as:Public" and single-string to/cc
  // and tag, Misskey's MFM source, Pleroma's litepub context, Friendica's contentMap only.
  const others: [Shape, Exclude<Audience, "direct">][] = SHAPES.filter((s) => s !== "mastodon").flatMap((s) => AUDIENCES.map((a) => [s, a] as [Shape, typeof a]));
  it.each(others)("answers a %s %s mention privately", async (shape, audience) => {
    const user = server.user(`u_${shape}`);
    const before = user.notes.length;
    const body = createNote(shape, user, ref, "status", { audience });
    expect((await user.post(bot.sharedInbox, body)).status).toBeLessThan(300);
    const notes = await user.waitForNotes(before + 1);
    expectDirectReply(notes[before]!, user, noteIdOf(body));
  });
});

describe("senders", () => {
  it("identifies a sender by the acct WebFinger confirms, even on another domain than the web host", async () => {
    const carol = split.user("carol");
    expect(carol.acct).toMatch(/^carol@localhost:\d+$/);
    const person = await db.store.people.create({});
    await db.store.identities.attach(person.id, { platform: "fediverse", handle: carol.acct, verifiedBy: "platform" });
    await carol.post(bot.inbox, createNote("mastodon", carol, ref, "status"));
    await carol.waitForNotes(1);
    const identity = await db.store.identities.find({ platform: "fediverse", handle: carol.acct });
    expect(identity?.stableId).toBe(carol.actorId);
    expect(identity?.personId).toBe(person.id);
  });

  /** A JSON Resource Descriptor response. */
  const jrd = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/jrd+json" } });
  const isWebFinger = (request: Request) => new URL(request.url).pathname === "/.well-known/webfinger";

  /**
   * Sends `status` from `sender`, whose web host claims the acct `claimed`
   * that its account domain does not confirm; checks that the bot answers
   * as to a stranger, mentions the sender by its actor's own host, and
   * binds neither the sender's actor nor the claimed acct's identity.
   */
  async function expectUnconfirmed(sender: FediUser, claimed: string): Promise<void> {
    // Someone the bot knows by that acct only (imported before they ever wrote).
    const person = await db.store.people.create({});
    await db.store.identities.attach(person.id, { platform: "fediverse", handle: claimed, verifiedBy: "platform" });
    const body = createNote("mastodon", sender, ref, "status");
    expect((await sender.post(bot.inbox, body)).status).toBeLessThan(300);
    const { replies } = await handledNote(noteIdOf(body));
    expect(replies).toBeGreaterThan(0);
    const notes = await sender.waitForNotes(replies);
    await drained();
    expect(sender.notes).toHaveLength(replies);
    // A stranger's welcome, not that person's status.
    expect(notes.map((n) => n.content).join(" ")).toMatch(/I don't know this Mastodon \(fediverse\) account yet/);
    const mention = `@${sender.name}@${new URL(sender.actorId).host}`;
    expect(notes[0]!.mentions).toEqual([{ href: sender.actorId, name: mention }]);
    expect(JSON.stringify(notes.map((n) => n.raw))).not.toContain(claimed);
    // The claimed acct's identity untouched, and none made for the sender.
    const identity = await db.store.identities.find({ platform: "fediverse", handle: claimed });
    expect(identity).toMatchObject({ personId: person.id, stableId: null, handle: claimed });
    expect(await db.store.identities.find({ platform: "fediverse", stableId: sender.actorId })).toBeUndefined();
  }

  it("does not take an acct another server claims for its actor: the acct's own domain points to someone else", async () => {
    // Vera's real account; Mallory's server answers WebFinger for Mallory with Vera's acct.
    const vera = await split.addUser({ name: "vera" });
    let liarOrigin = "";
    const liar = await startFediServer({
      users: [{ name: "mallory" }],
      routes: async (request) =>
        isWebFinger(request)
          ? jrd({ subject: `acct:${vera.acct}`, aliases: [`${liarOrigin}/users/mallory`], links: [{ rel: "self", type: "application/activity+json", href: `${liarOrigin}/users/mallory` }] })
          : null,
    });
    liarOrigin = liar.origin;
    try {
      const mallory = liar.user("mallory");
      // What the bot is told: Mallory's host vouches for Vera's acct; Vera's domain names Vera.
      const claim = (await (await fetch(`${liar.origin}/.well-known/webfinger?resource=${encodeURIComponent(mallory.actorId)}`)).json()) as { subject: string };
      expect(claim.subject).toBe(`acct:${vera.acct}`);
      await expectUnconfirmed(mallory, vera.acct);
      // The bot did ask Vera's account domain, which answered for Vera.
      expect(split.fetched.some((f) => f.path.startsWith("/.well-known/webfinger") && decodeURIComponent(f.path).includes(`acct:${vera.acct}`))).toBe(true);
    } finally {
      await liar.close();
    }
  });

  // A server whose account domain differs from its web host (as carol's), but
  // whose account domain does not vouch for the actor.
  const refusals: [string, (actorId: string) => Response][] = [
    ["does not know the account (404)", () => jrd({}, 404)],
    ["names another actor", (actorId) => jrd({ subject: "acct:x@y", links: [{ rel: "self", type: "application/activity+json", href: `${actorId}-other` }] })],
    ["links the actor only as a profile page", (actorId) => jrd({ subject: "acct:x@y", links: [{ rel: "http://webfinger.net/rel/profile-page", href: actorId }] })],
  ];
  it.each(refusals)("treats a sender as unconfirmed when its account domain %s", async (_case, answer) => {
    let accountDomain = "";
    const half = await startFediServer({
      users: [{ name: "walt" }],
      splitDomain: true,
      // Only the account domain's WebFinger is changed; the web host answers as Fedify does.
      routes: async (request) => (isWebFinger(request) && new URL(request.url).host === accountDomain ? answer(half.user("walt").actorId) : null),
    });
    accountDomain = half.accountDomain;
    try {
      const walt = half.user("walt");
      expect(walt.acct).toBe(`walt@${accountDomain}`);
      expect(new URL(walt.actorId).host).not.toBe(accountDomain);
      await expectUnconfirmed(walt, walt.acct);
      expect(half.fetched.some((f) => f.path.startsWith("/.well-known/webfinger") && decodeURIComponent(f.path).includes(`acct:${walt.acct}`))).toBe(true);
    } finally {
      await half.close();
    }
  });

  it.each([["Service", "robot"], ["Application", "app"]])("never answers an automated account (%s)", async (_type, name) => {
    const sender = server.user(name);
    const body = createNote("mastodon", sender, ref, "help");
    expect((await sender.post(bot.inbox, body)).status).toBeLessThan(300);
    // Handled, seen as a bot, and nothing queued for it; then nothing left in flight.
    expect(await handledNote(noteIdOf(body))).toEqual({ noteId: noteIdOf(body), handledAs: "bot", replies: 0 });
    await drained();
    expect(sender.notes).toHaveLength(0);
    expect(server.posted.filter((p) => p.path === `/users/${name}/inbox`)).toEqual([]);
  });
});

describe("signatures and replays", () => {
  it("refuses unsigned, forged and tampered requests", async () => {
    const alice = server.user("alice");
    const bob = server.user("bob");
    const before = alice.notes.length;
    expect((await alice.post(bot.inbox, createNote("mastodon", alice, ref, "help"), { unsigned: true })).status).toBe(401);
    expect((await alice.post(bot.inbox, createNote("mastodon", alice, ref, "help"), { signWith: bob })).status).toBe(401);
    expect((await alice.post(bot.inbox, createNote("mastodon", alice, ref, "help"), { tamper: true })).status).toBe(401);
    await drained();
    expect(alice.notes.length).toBe(before);
  });

  it("handles a message once: replayed, redelivered under another activity id, or edited", async () => {
    const hank = server.user("hank");
    const body = createNote("mastodon", hank, ref, "status");
    expect((await hank.post(bot.inbox, body)).status).toBeLessThan(300);
    await hank.waitForNotes(1);
    // Every piece of the first answer delivered before counting them.
    await drained();
    const count = hank.notes.length;
    expect((await hank.post(bot.inbox, body)).status).toBeLessThan(300);
    const again = createNote("mastodon", hank, ref, "status", { noteId: noteIdOf(body), activityId: `${noteIdOf(body)}/again` });
    expect((await hank.post(bot.sharedInbox, again)).status).toBeLessThan(300);
    const update = { ...again, id: `${noteIdOf(body)}#updates/1`, type: "Update" };
    expect((await hank.post(bot.inbox, update)).status).toBeLessThan(300);
    const del = { "@context": "https://www.w3.org/ns/activitystreams", id: `${noteIdOf(body)}#delete`, type: "Delete", actor: hank.actorId, to: [bot.actorId], object: { id: noteIdOf(body), type: "Tombstone" } };
    expect((await hank.post(bot.inbox, del)).status).toBeLessThan(300);
    // All four handled (taken off the inbox queue) and nothing left to deliver.
    await drained();
    expect(hank.notes.length).toBe(count);
    expect(handled.filter((h) => h.noteId === noteIdOf(body))).toHaveLength(1);
    const claims = await db.sql`select answered_at from fediverse_inbound where note_id = ${noteIdOf(body)}`;
    expect(claims).toHaveLength(1);
    expect(claims[0]!.answered_at).not.toBeNull();
  });
});

describe("follows and account changes", () => {
  it("accepts a follow and forgets it on Undo", async () => {
    const fol = server.user("fol");
    const follow = { "@context": "https://www.w3.org/ns/activitystreams", id: `${fol.actorId}#follows/1`, type: "Follow", actor: fol.actorId, object: bot.actorId };
    expect((await fol.post(bot.inbox, follow)).status).toBeLessThan(300);
    await fol.waitFor(() => fol.accepts.length === 1);
    expect(await db.store.fediverse.followerCount()).toBe(1);
    const res = await fetch(`${bot.actorId}/followers`, { headers: { Accept: "application/activity+json" } });
    expect(((await res.json()) as { totalItems: number }).totalItems).toBe(1);
    const undo = { "@context": "https://www.w3.org/ns/activitystreams", id: `${fol.actorId}#follows/1/undo`, type: "Undo", actor: fol.actorId, object: follow };
    expect((await fol.post(bot.inbox, undo)).status).toBeLessThan(300);
    await until("the follower to be gone", async () => (await db.store.fediverse.followerCount()) === 0, 30_000, 50);
  });

  it("refuses a Move to someone else's account: the target is read from its own server, and an activity's id must be on its actor's server", async () => {
    const mallory = await server.addUser({ name: "mallory" });
    const victor = await split.addUser({ name: "victor" });
    const p = await db.store.people.create({});
    await db.store.identities.attach(p.id, { platform: "fediverse", stableId: mallory.actorId, handle: mallory.acct, verifiedBy: "dm" });
    // Victor's document as Mallory would like it to be: claiming her as his old account.
    const forgedTarget = { id: victor.actorId, type: "Person", preferredUsername: "victor", inbox: `${victor.actorId}/inbox`, alsoKnownAs: [mallory.actorId] };
    const context = ["https://www.w3.org/ns/activitystreams", { alsoKnownAs: { "@id": "as:alsoKnownAs", "@type": "@id" } }];
    const moves = [
      // Under an id on Victor's server, so that the embedded target looks like his server's word.
      { "@context": context, id: `${new URL(victor.actorId).origin}/forged-move/1`, type: "Move", actor: mallory.actorId, object: mallory.actorId, target: forgedTarget },
      { "@context": context, id: `${mallory.actorId}#moves/1`, type: "Move", actor: mallory.actorId, object: mallory.actorId, target: forgedTarget },
    ];
    for (const move of moves) expect((await mallory.post(bot.sharedInbox, move)).status).toBeLessThan(300);
    await drained();
    expect(await db.store.identities.find({ platform: "fediverse", stableId: victor.actorId })).toBeUndefined();
    expect((await db.store.identities.find({ platform: "fediverse", stableId: mallory.actorId }))?.personId).toBe(p.id);
  });

  it("follows a known account's Move, and forgets a deleted actor whose server already answers 410 Gone (the person too, when nothing reachable is left)", async () => {
    const dave = server.user("dave");
    const eve = server.user("eve");
    const newDave = await server.addUser({ name: "dave2", alsoKnownAs: [dave.actorId] });
    const p1 = await db.store.people.create({});
    await db.store.identities.attach(p1.id, { platform: "fediverse", stableId: dave.actorId, handle: dave.acct, verifiedBy: "dm" });
    const p2 = await db.store.people.create({});
    await db.store.identities.attach(p2.id, { platform: "fediverse", stableId: eve.actorId, handle: eve.acct, verifiedBy: "dm" });
    await db.store.identities.attach(p2.id, { platform: "x", stableId: "7700001", handle: "eve_x", verifiedBy: "platform" });
    await db.sql`insert into x_follow values (7700001, 7700002)`;
    // Ivy keeps a Bluesky account when her fediverse actor goes: she stays.
    const ivy = await server.addUser({ name: "ivy2" });
    const p3 = await db.store.people.create({});
    await db.store.identities.attach(p3.id, { platform: "fediverse", stableId: ivy.actorId, handle: ivy.acct, verifiedBy: "dm" });
    await db.store.identities.attach(p3.id, { platform: "bluesky", stableId: "did:plc:ivy7700", handle: "ivy7700.test", verifiedBy: "platform" });

    const move = { "@context": "https://www.w3.org/ns/activitystreams", id: `${dave.actorId}#moves/1`, type: "Move", actor: dave.actorId, object: dave.actorId, target: newDave.actorId };
    expect((await dave.post(bot.sharedInbox, move)).status).toBeLessThan(300);
    // As Mastodon does it: the account is deleted (its actor, and so its key,
    // now answer 410 Gone), then the Delete goes out signed with that key.
    // The bot never saw Eve's or Ivy's key: it cannot fetch it any more.
    eve.gone = true;
    ivy.gone = true;
    expect((await fetch(eve.actorId, { headers: { Accept: "application/activity+json" } })).status).toBe(410);
    const del = { "@context": "https://www.w3.org/ns/activitystreams", id: `${eve.actorId}#delete`, type: "Delete", actor: eve.actorId, to: ["https://www.w3.org/ns/activitystreams#Public"], object: eve.actorId };
    expect((await eve.post(bot.sharedInbox, del)).status).toBeLessThan(300);
    const delIvy = { ...del, id: `${ivy.actorId}#delete`, actor: ivy.actorId, object: ivy.actorId };
    expect((await ivy.post(bot.sharedInbox, delIvy)).status).toBeLessThan(300);
    await until("the Move and the Deletes to be handled", async () => {
      const moved = await db.store.identities.find({ platform: "fediverse", stableId: newDave.actorId });
      const gone = !(await db.store.identities.find({ platform: "fediverse", stableId: eve.actorId }));
      const ivyGone = !(await db.store.identities.find({ platform: "fediverse", stableId: ivy.actorId }));
      return moved && gone && ivyGone && !(await db.store.people.get(p2.id));
    }, 30_000, 50);
    const moved = await db.store.identities.find({ platform: "fediverse", stableId: newDave.actorId });
    expect(moved?.personId).toBe(p1.id);
    expect(moved?.handle).toBe(newDave.acct);
    expect(await db.store.identities.find({ platform: "fediverse", stableId: eve.actorId })).toBeUndefined();
    // Eve had only X left: she is forgotten, her X follows with her.
    expect(await db.store.people.get(p2.id)).toBeUndefined();
    expect(await db.store.identities.find({ platform: "x", stableId: "7700001" })).toBeUndefined();
    expect(await db.sql`select 1 from x_follow where follower = 7700001`).toHaveLength(0);
    expect(await db.store.identities.find({ platform: "fediverse", stableId: ivy.actorId })).toBeUndefined();
    expect((await db.store.identities.find({ platform: "bluesky", stableId: "did:plc:ivy7700" }))?.personId).toBe(p3.id);
  });

  const deleteOf = (user: FediUser) => ({ "@context": "https://www.w3.org/ns/activitystreams", id: `${user.actorId}#delete`, type: "Delete", actor: user.actorId, to: ["https://www.w3.org/ns/activitystreams#Public"], object: user.actorId });

  it("forgets a deleted actor whose key it still remembers from an earlier message", async () => {
    const kim = await server.addUser({ name: "kim" });
    const p = await db.store.people.create({});
    await db.store.identities.attach(p.id, { platform: "fediverse", stableId: kim.actorId, handle: kim.acct, verifiedBy: "dm" });
    await db.store.identities.attach(p.id, { platform: "bluesky", stableId: "did:plc:kim7700", handle: "kim7700.test", verifiedBy: "platform" });
    const body = createNote("mastodon", kim, ref, "help");
    expect((await kim.post(bot.inbox, body)).status).toBeLessThan(300);
    await handledNote(noteIdOf(body));
    kim.gone = true;
    expect((await kim.post(bot.sharedInbox, deleteOf(kim))).status).toBe(202);
    await until("Kim's identity to be gone", async () => !(await db.store.identities.find({ platform: "fediverse", stableId: kim.actorId })), 10_000, 50);
    expect((await db.store.identities.find({ platform: "bluesky", stableId: "did:plc:kim7700" }))?.personId).toBe(p.id);
  });

  it("keeps an actor whose Delete cannot be verified while its own server still serves it", async () => {
    const liv = await server.addUser({ name: "liv" });
    const gus = await server.addUser({ name: "gus" });
    const p = await db.store.people.create({});
    await db.store.identities.attach(p.id, { platform: "fediverse", stableId: liv.actorId, handle: liv.acct, verifiedBy: "dm" });
    gus.gone = true;
    const del = deleteOf(liv);
    // Signed with a key that can no longer be fetched (a gone account's): the
    // sender is unknown, and Liv's server still serves her: nothing happens.
    expect((await liv.post(bot.sharedInbox, del, { signWith: gus, keyId: gus.keyId })).status).toBe(202);
    expect((await liv.post(bot.sharedInbox, { ...del, id: `${del.id}/2` }, { unsigned: true })).status).toBe(401);
    expect((await liv.post(bot.sharedInbox, { ...del, id: `${del.id}/3` }, { signWith: server.user("bob") })).status).toBe(401);
    // Nor may a gone account's key speak for someone else, even someone gone:
    // the Delete must be of the actor itself.
    const ofOther = { ...del, id: `${gus.actorId}#delete-liv`, actor: gus.actorId, object: liv.actorId };
    expect((await gus.post(bot.sharedInbox, ofOther)).status).toBe(401);
    await drained();
    // The bot did ask Liv's server, which still serves her.
    expect(server.fetched.map((f) => f.path)).toContain(new URL(liv.actorId).pathname);
    expect((await db.store.identities.find({ platform: "fediverse", stableId: liv.actorId }))?.personId).toBe(p.id);
  });
});

describe("deliveries", () => {
  it("tries a failed delivery again later, with back-off, and delivers the reply once and in order", async () => {
    const rita = flaky.user("rita");
    // Two attempts refused. Fedify knocks twice per attempt on a failure (once
    // per HTTP signature spec): four POSTs.
    rita.failNextDeliveries(4, 500);
    const body = createNote("mastodon", rita, ref, "help");
    expect((await rita.post(bot.inbox, body)).status).toBeLessThan(300);
    const { replies } = await handledNote(noteIdOf(body));
    expect(replies).toBeGreaterThan(1);
    await rita.waitForNotes(replies, 15_000);
    await drained();
    // Each note once, in order (a numbered reply: "(1/n)", "(2/n)"…).
    expect(rita.notes).toHaveLength(replies);
    expect(new Set(rita.notes.map((n) => n.id)).size).toBe(replies);
    expect(rita.notes.map((n) => n.content.match(/\((\d+)\/\d+\)<\/p>$/)?.[1])).toEqual(Array.from({ length: replies }, (_, i) => String(i + 1)));
    expectDirectReply(rita.notes[0]!, rita, noteIdOf(body));
    // The first note refused twice, then taken; the others after it.
    const attempts = rita.deliveryAttempts;
    expect(attempts.map((a) => a.status < 300)).toEqual([false, false, false, false, ...Array<boolean>(replies).fill(true)]);
    const ids = flaky.posted.filter((p) => p.path === "/users/rita/inbox").map((p) => p.body.id);
    expect(ids.slice(0, 5)).toEqual(Array(5).fill(rita.notes[0]!.activityId));
    // Tried again after the policy's delays (150 ms, then 300 ms), not at once.
    expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(RETRY_MS - 10);
    expect(attempts[4]!.at - attempts[3]!.at).toBeGreaterThanOrEqual(2 * RETRY_MS - 10);
  });
});
