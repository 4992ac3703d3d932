import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { startFediServer } from "../../test/harness/fediverse.ts";
import { freePort, startBot } from "../../test/harness/fediverse-bot.ts";
import { createNote } from "../../test/harness/fediverse-shapes.ts";
import { createLogger } from "../../src/logger.ts";
import { publicInboxesOnly } from "./delivery-guard.ts";
import { PostgresQueue } from "./queue.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

describe("publicInboxesOnly", () => {
  it("drops deliveries to inboxes on this machine's network (an actor may name any inbox), and lets public ones through", async () => {
    const lines: string[] = [];
    const log = createLogger("warn", { write: (line: string) => void lines.push(line) });
    const queue = new PostgresQueue(db.sql, "outbox-guard-test", { pollMs: 50, admit: publicInboxesOnly(log) });
    const outbox = (inbox: string) => ({ type: "outbox", id: inbox, inbox, activity: {} });
    const refused = ["http://127.0.0.1:9/internal/admin", "http://[::1]/inbox", "https://10.0.0.5/admin", "http://localhost:8080/inbox", "not a url"];
    const delivered = ["https://93.184.216.34/inbox", "http://[2606:4700::1111]/users/a/inbox"];
    for (const inbox of [...refused, ...delivered]) await queue.enqueue(outbox(inbox));
    await queue.enqueue({ type: "fanout", inboxes: {} });
    const handled: string[] = [];
    const controller = new AbortController();
    await queue.listen(async (m: { type: string; inbox?: string }) => {
      handled.push(m.inbox ?? m.type);
      if (handled.length === delivered.length + 1) setTimeout(() => controller.abort(), 300);
    }, { signal: controller.signal });
    expect(handled.sort()).toEqual([...delivered, "fanout"].sort());
    expect(await queue.depth()).toBe(0);
    expect(lines.join("")).toContain("delivery to a non-public address refused");
    expect(lines.join("")).toContain("http://127.0.0.1:9");
  });
});

describe("with ALLOW_PRIVATE_ADDRESSES unset (the default)", () => {
  it("never fetches a sender's actor or key on this machine's network: the message is refused unread", async () => {
    const server = await startFediServer({ users: [{ name: "alice" }, { name: "gone" }] });
    const port = await freePort();
    const handled: unknown[] = [];
    const bot = await startBot(db, port, { env: { ALLOW_PRIVATE_ADDRESSES: undefined }, onHandled: (info) => void handled.push(info) });
    try {
      expect(bot.config.allowPrivateAddresses).toBe(false);
      const alice = server.user("alice");
      const ref = { actorId: bot.actorId, acct: `reconnexion@127.0.0.1:${port}` };
      // Its key is on 127.0.0.1: not fetched, so the signature cannot be checked.
      expect((await alice.post(bot.inbox, createNote("mastodon", alice, ref, "help"))).status).toBe(401);
      expect((await alice.post(bot.sharedInbox, createNote("mastodon", alice, ref, "help", { audience: "public" }))).status).toBe(401);
      // Nor is a Delete of an actor whose key cannot be fetched a way in (the bot would ask its server whether it is gone).
      const person = await db.store.people.create({});
      await db.store.identities.attach(person.id, { platform: "fediverse", stableId: alice.actorId, handle: alice.acct, verifiedBy: "dm" });
      const del = { "@context": "https://www.w3.org/ns/activitystreams", id: `${alice.actorId}#delete`, type: "Delete", actor: alice.actorId, object: alice.actorId };
      expect((await alice.post(bot.sharedInbox, del)).status).toBeLessThan(300);
      // Writing to someone unprompted looks their actor up first: refused too.
      expect(await bot.bot.message(alice.actorId, alice.acct, ["hello"])).toBe(false);
      await bot.drained();
      expect(server.fetched).toEqual([]);
      expect(handled).toEqual([]);
      expect(alice.notes).toEqual([]);
      expect((await db.store.identities.find({ platform: "fediverse", stableId: alice.actorId }))?.personId).toBe(person.id);
    } finally {
      await bot.stop();
      await server.close();
    }
  });
});
