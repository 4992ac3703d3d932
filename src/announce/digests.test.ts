import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Logger } from "../logger.ts";
import type { Store } from "../store/index.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { registerPerson } from "../../test/harness/graph.ts";
import { sendArrivalDigests } from "./digests.ts";

const log = pino({ level: "silent" }) as unknown as Logger;
let db: TestDatabase;
let nextX = 700_000;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

async function person(name: string) {
  const x = String(++nextX);
  const { personId, identityId } = await registerPerson(db.store, x, { platform: "bluesky", stableId: `did:plc:${name}`, handle: `${name}.test` });
  return { personId, identityId, x };
}
async function follows(follower: { x: string; personId: number }, followed: { x: string }) {
  await db.sql`insert into x_follow values (${follower.x}, ${followed.x})`;
  await db.store.matches.refreshForFollowers([follower.personId]);
}
function recorder() {
  const sent: { to: number; text: string }[] = [];
  return { sent, send: async (to: { personId: number }, text: string) => (sent.push({ to: to.personId, text }), true) };
}
/** The store, with `namespace.method` throwing once. */
function failingOnce(namespace: "people" | "identities", method: string): Store {
  let failures = 1;
  const inner = db.store[namespace] as unknown as object;
  const flaky = new Proxy(inner, {
    get(target, prop) {
      if (prop === method && failures > 0) {
        return async () => {
          failures--;
          throw new Error("connection terminated");
        };
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return new Proxy(db.store, { get: (t, p, r) => (p === namespace ? flaky : Reflect.get(t, p, r)) });
}
const run = (messenger: ReturnType<typeof recorder>, store: Store = db.store) =>
  sendArrivalDigests({ store, messenger, defaultLanguage: "en", log });

describe("sendArrivalDigests", () => {
  it("tells next run a digest that failed on the store after its claim (reading the person's language, or their accounts)", async () => {
    for (const [namespace, method] of [["people", "get"], ["identities", "listForPerson"]] as const) {
      const reader = await person(`reader-${method.toLowerCase()}`);
      const arrival = await person(`arrival-${method.toLowerCase()}`);
      await follows(reader, arrival);
      const messenger = recorder();
      expect(await run(messenger, failingOnce(namespace, method))).toMatchObject({ sent: 0, failed: 1 });
      expect(messenger.sent).toEqual([]);
      expect(await run(messenger)).toMatchObject({ sent: 1, failed: 0 });
      expect(messenger.sent).toHaveLength(1);
      expect(messenger.sent[0]!.text).toContain(`@arrival-${method.toLowerCase()}.test`);
      expect(await run(messenger)).toMatchObject({ sent: 0 });
    }
  });

  it("keeps a digest that went out told, even when an earlier channel failed", async () => {
    const sue = await person("sue");
    await db.store.identities.attach(sue.personId, { platform: "fediverse", stableId: "https://m.example/users/sue", handle: "sue@m.example", verifiedBy: "platform" });
    const tom = await person("tom");
    await follows(sue, tom);
    const sent: string[] = [];
    const messenger = {
      send: async (to: { platform: string }, text: string) => {
        if (to.platform === "bluesky") throw new Error("chat down");
        sent.push(text);
        return true;
      },
    };
    const go = () => sendArrivalDigests({ store: db.store, messenger, defaultLanguage: "en", log });
    expect(await go()).toMatchObject({ sent: 1, failed: 0 });
    expect(await go()).toMatchObject({ sent: 0 });
    expect(sent).toHaveLength(1);
  });

  it("does not tell the same arrival again when its person unlinks and links the same account", async () => {
    const uri = await person("uri");
    const val = await person("val");
    await follows(uri, val);
    const messenger = recorder();
    expect(await run(messenger)).toMatchObject({ sent: 1 });
    expect(await db.store.detach(val.personId, [val.identityId])).toBe("lastReachable"); // Bluesky is val's only writable account
    await db.store.identities.attach(val.personId, { platform: "fediverse", stableId: "https://m.example/users/val", handle: "val@m.example", verifiedBy: "dm" });
    expect(await db.store.detach(val.personId, [val.identityId])).toBe("detached");
    await db.store.transaction(async (s) => {
      await s.identities.attach(val.personId, { platform: "bluesky", stableId: "did:plc:val", handle: "val.test", verifiedBy: "dm" });
      await s.matches.refreshForTargets([val.personId]);
    });
    // On Mastodon val is news (a first arrival there); on Bluesky, not again.
    expect(await run(messenger)).toMatchObject({ sent: 1 });
    expect(messenger.sent[1]!.text).toContain("@val@m.example");
    expect(messenger.sent[1]!.text).not.toContain("val.test");
    expect(await run(messenger)).toMatchObject({ sent: 0 });
  });
});
