/**
 * Arrival digests end to end: the real fediverse bot (Fedify, its
 * PostgreSQL queues) on 127.0.0.1 sends each person a direct message about
 * the people they followed on X who arrived; a fediverse server of users
 * receives them, signed. Run twice, nothing is sent twice.
 */
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { sendArrivalDigests } from "../src/announce/index.ts";
import type { Logger } from "../src/logger.ts";
import { routeMessages } from "../src/reconnect/index.ts";
import { createTestDatabase, type TestDatabase } from "./harness/database.ts";
import { startFediServer, type FediServer, type FediUser } from "./harness/fediverse.ts";
import { freePort, startBot, type RunningBot } from "./harness/fediverse-bot.ts";
import { registerPerson, type AccountSpec } from "./harness/graph.ts";

const log = pino({ level: "silent" }) as unknown as Logger;
let db: TestDatabase;
let server: FediServer;
let running: RunningBot;
let nextX = 900_000;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startFediServer({ users: [{ name: "alice" }, { name: "amelie" }, { name: "bob" }] });
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
