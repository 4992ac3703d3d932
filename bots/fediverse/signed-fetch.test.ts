/**
 * People on servers that serve actors to signed requests only (GoToSocial
 * always; Mastodon and Akkoma in authorized-fetch mode), their keys
 * unsigned: every actor the bot fetches, it fetches signed with its key —
 * on its shared inbox (where Mastodon and others deliver DMs) as on its
 * own, and when it writes first, announces, or follows a Move.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { startFediServer, type FediServer } from "../../test/harness/fediverse.ts";
import { freePort, startBot, type RunningBot } from "../../test/harness/fediverse-bot.ts";
import { createNote, type BotRef } from "../../test/harness/fediverse-shapes.ts";
import { until } from "../../test/harness/wait.ts";

let db: TestDatabase;
let bot: RunningBot;
let ref: BotRef;
let server: FediServer;

beforeAll(async () => {
  db = await createTestDatabase();
  const port = await freePort();
  bot = await startBot(db, port);
  ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
  server = await startFediServer({
    signedFetch: true,
    users: [{ name: "personal" }, { name: "shared" }, { name: "unprompted" }, { name: "named" }, { name: "mover" }, { name: "follower" }],
  });
});

afterAll(async () => {
  await bot?.stop();
  await server?.close();
  await db?.drop();
});

describe("a server that refuses unsigned GETs of its actors", () => {
  it("refuses them indeed, and serves the key document to anyone (the harness)", async () => {
    const u = server.user("personal");
    expect((await fetch(u.actorId, { headers: { Accept: "application/activity+json" } })).status).toBe(401);
    const key = await fetch(u.keyId, { headers: { Accept: "application/activity+json" } });
    expect(key.status).toBe(200);
    expect(((await key.json()) as { publicKey: { id: string } }).publicKey.id).toBe(u.keyId);
    server.refusedFetches.length = 0;
  });

  it("gets answers to a DM sent to the bot's own inbox", async () => {
    const u = server.user("personal");
    expect((await u.post(bot.inbox, createNote("gotosocial", u, ref, "help"))).status).toBeLessThan(300);
    const [reply] = await u.waitForNotes(1, 15_000);
    expect(new Set(reply!.to)).toEqual(new Set([u.actorId]));
    expect(server.refusedFetches).toEqual([]);
  });

  it("gets answers to a DM sent to the bot's shared inbox", async () => {
    const u = server.user("shared");
    expect((await u.post(bot.sharedInbox, createNote("mastodon", u, ref, "help"))).status).toBeLessThan(300);
    const [reply] = await u.waitForNotes(1, 15_000);
    expect(new Set(reply!.to)).toEqual(new Set([u.actorId]));
    expect(server.refusedFetches).toEqual([]);
  });

  it("is written to unprompted (reconnection reports, digests)", async () => {
    const u = server.user("unprompted");
    expect(await bot.bot.message(u.actorId, u.acct, ["hello"])).toBe(true);
    const [note] = await u.waitForNotes(1, 15_000);
    expect(note!.content).toContain("hello");
    expect(server.refusedFetches).toEqual([]);
  });

  it("is mentioned by a public post that names them", async () => {
    const u = server.user("named");
    const uri = await bot.bot.announce(`Welcome @${u.acct}`, [{ actorUri: u.actorId, acct: u.acct }]);
    const [note] = await u.waitForNotes(1, 15_000);
    expect(note!.id).toBe(uri.href);
    expect(server.refusedFetches).toEqual([]);
  });

  it("has a follow accepted when it comes through the shared inbox", async () => {
    const u = server.user("follower");
    const follow = { "@context": "https://www.w3.org/ns/activitystreams", id: `${u.actorId}#follows/1`, type: "Follow", actor: u.actorId, object: bot.actorId };
    expect((await u.post(bot.sharedInbox, follow)).status).toBeLessThan(300);
    await u.waitFor(() => u.accepts.length === 1, 15_000);
    expect(server.refusedFetches).toEqual([]);
  });

  it("has a Move to it followed", async () => {
    const mover = server.user("mover");
    const moved = await server.addUser({ name: "mover2", alsoKnownAs: [mover.actorId] });
    const p = await db.store.people.create({});
    await db.store.identities.attach(p.id, { platform: "fediverse", stableId: mover.actorId, handle: mover.acct, verifiedBy: "dm" });
    const move = { "@context": "https://www.w3.org/ns/activitystreams", id: `${mover.actorId}#moves/1`, type: "Move", actor: mover.actorId, object: mover.actorId, target: moved.actorId };
    expect((await mover.post(bot.sharedInbox, move)).status).toBeLessThan(300);
    await until("the Move to be recorded", async () => (await db.store.identities.find({ platform: "fediverse", stableId: moved.actorId }))?.personId === p.id, 15_000, 50);
    expect(server.refusedFetches).toEqual([]);
  });
});
