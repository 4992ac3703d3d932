import { Temporal } from "@js-temporal/polyfill";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { FediverseKvStore } from "./kv.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

const keyOf = (id: string) => ["_fedify", "publicKey", id] as const;

describe("FediverseKvStore", () => {
  it("keeps remote public keys in memory, written through; everything else is read from PostgreSQL each time", async () => {
    const kv = new FediverseKvStore(db.sql);
    await kv.set(keyOf("https://a.example/users/a#main-key"), { pem: "one" });
    await kv.set(["_fedify", "activityIdempotence", "x"], true);
    // Gone from the table (another process swept it): the key is still known here, the rest is not.
    await db.sql`delete from fedify_kv_v2`;
    expect(await kv.get(keyOf("https://a.example/users/a#main-key"))).toEqual({ pem: "one" });
    expect(await kv.get(["_fedify", "activityIdempotence", "x"])).toBeUndefined();
    // A key fetched again (its signature failed) replaces the remembered one at once.
    await kv.set(keyOf("https://a.example/users/a#main-key"), { pem: "two" });
    expect(await kv.get(keyOf("https://a.example/users/a#main-key"))).toEqual({ pem: "two" });
    await kv.delete(keyOf("https://a.example/users/a#main-key"));
    expect(await kv.get(keyOf("https://a.example/users/a#main-key"))).toBeUndefined();
  });

  it("remembers a key read from the table for a few minutes only", async () => {
    const writer = new FediverseKvStore(db.sql);
    const reader = new FediverseKvStore(db.sql, { memoryTtlMs: 50 });
    await writer.set(keyOf("https://b.example/users/b#main-key"), null);
    expect(await reader.get(keyOf("https://b.example/users/b#main-key"))).toBeNull();
    await writer.set(keyOf("https://b.example/users/b#main-key"), { pem: "found" });
    expect(await reader.get(keyOf("https://b.example/users/b#main-key"))).toBeNull();
    await new Promise((r) => setTimeout(r, 80));
    expect(await reader.get(keyOf("https://b.example/users/b#main-key"))).toEqual({ pem: "found" });
  });

  it("never returns an expired entry", async () => {
    const kv = new FediverseKvStore(db.sql);
    await kv.set(["reconnexion", "acct", "short"], "a@b.example", { ttl: Temporal.Duration.from({ milliseconds: 1 }) as never });
    await new Promise((r) => setTimeout(r, 20));
    expect(await kv.get(["reconnexion", "acct", "short"])).toBeUndefined();
  });

  it("remembers a key no longer than the table keeps it", async () => {
    const writer = new FediverseKvStore(db.sql);
    const reader = new FediverseKvStore(db.sql);
    // Fedify records an unavailable key for 10 minutes; here 100 ms.
    await writer.set(keyOf("https://c.example/users/c#main-key"), null, { ttl: Temporal.Duration.from({ milliseconds: 100 }) as never });
    expect(await reader.get(keyOf("https://c.example/users/c#main-key"))).toBeNull();
    expect(await writer.get(keyOf("https://c.example/users/c#main-key"))).toBeNull();
    await new Promise((r) => setTimeout(r, 150));
    expect(await reader.get(keyOf("https://c.example/users/c#main-key"))).toBeUndefined();
    expect(await writer.get(keyOf("https://c.example/users/c#main-key"))).toBeUndefined();
  });
});
