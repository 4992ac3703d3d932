/**
 * A restart between receipt and reply loses nothing and doubles nothing:
 * the inbound activity waits in PostgreSQL until a worker handles it, and a
 * queued reply is delivered by the next process.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { startFediServer, type FediServer } from "../../test/harness/fediverse.ts";
import { freePort, startBot } from "../../test/harness/fediverse-bot.ts";
import { createNote } from "../../test/harness/fediverse-shapes.ts";

let db: TestDatabase;
let server: FediServer;
let port: number;

beforeAll(async () => {
  db = await createTestDatabase();
  port = await freePort();
  server = await startFediServer({ users: [{ name: "alice" }, { name: "bob" }] });
});
afterAll(async () => {
  await server?.close();
  await db?.drop();
});

const settle = () => new Promise((r) => setTimeout(r, 800));

it("answers, after a restart, a message received before it", async () => {
  const alice = server.user("alice");
  const first = await startBot(db, port, { workers: false });
  const ref = { actorId: first.actorId, acct: `reconnexion@127.0.0.1:${port}` };
  const res = await alice.post(first.inbox, createNote("mastodon", alice, ref, "help"));
  expect(res.status).toBe(202);
  await first.stop();
  expect(alice.notes).toHaveLength(0);

  const second = await startBot(db, port);
  try {
    const notes = await alice.waitForNotes(1);
    const total = notes[0]!.content.match(/\((\d+)\/(\d+)\)<\/p>$/)?.[2];
    await alice.waitForNotes(Number(total ?? 1));
    await settle();
    expect(alice.notes).toHaveLength(Number(total ?? 1));
  } finally {
    await second.stop();
  }
});

it("delivers, after a restart, a reply queued before it", async () => {
  const bob = server.user("bob");
  const first = await startBot(db, port, { workers: "inbox" });
  const ref = { actorId: first.actorId, acct: `reconnexion@127.0.0.1:${port}` };
  expect((await bob.post(first.inbox, createNote("mastodon", bob, ref, "help"))).status).toBe(202);
  for (let i = 0; i < 100 && (await first.bot.queues.inbox.depth()) > 0; i++) await new Promise((r) => setTimeout(r, 50));
  expect(await first.bot.queues.inbox.depth()).toBe(0);
  const queued = (await first.bot.queues.outbox.depth()) + (await first.bot.queues.fanout.depth());
  expect(queued).toBeGreaterThan(0);
  await first.stop();
  expect(bob.notes).toHaveLength(0);

  const second = await startBot(db, port);
  try {
    await bob.waitForNotes(queued);
    await settle();
    expect(bob.notes).toHaveLength(queued);
    expect(new Set(bob.notes.map((n) => n.id)).size).toBe(queued);
  } finally {
    await second.stop();
  }
});
