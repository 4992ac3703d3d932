import { Temporal } from "@js-temporal/polyfill";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { until } from "../../test/harness/wait.ts";
import { SecretBox } from "../../src/store/secrets.ts";
import { PostgresQueue, UnreadableMessageError } from "./queue.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

describe("PostgresQueue", () => {
  it("handles messages sharing an ordering key one at a time, in order, while others run alongside", async () => {
    const queue = new PostgresQueue(db.sql, "ordering-test", { concurrency: 4, pollMs: 50 });
    const events: string[] = [];
    const done = new Set<string>();
    const all = [
      ...Array.from({ length: 6 }, (_, i) => ({ key: "alice", n: i })),
      ...Array.from({ length: 6 }, (_, i) => ({ key: "bob", n: i })),
      ...Array.from({ length: 4 }, (_, i) => ({ key: null, n: i })),
    ];
    // Interleaved, each enqueued on its own, as a reply's notes are.
    for (let i = 0; i < 6; i++) {
      await queue.enqueue({ key: "alice", n: i }, { orderingKey: "alice" });
      await queue.enqueue({ key: "bob", n: i }, { orderingKey: "bob" });
      if (i < 4) await queue.enqueue({ key: null, n: i });
    }
    const controller = new AbortController();
    const listening = queue.listen(async (m: { key: string | null; n: number }) => {
      events.push(`start ${m.key}:${m.n}`);
      await new Promise((r) => setTimeout(r, 5 + ((m.n * 7) % 11)));
      events.push(`end ${m.key}:${m.n}`);
      done.add(`${m.key}:${m.n}`);
      if (done.size === all.length) controller.abort();
    }, { signal: controller.signal });
    await listening;
    for (const key of ["alice", "bob"]) {
      const mine = events.filter((e) => e.includes(` ${key}:`));
      // start 0, end 0, start 1, end 1, …: never two at once, always in order
      expect(mine).toEqual(Array.from({ length: 6 }, (_, i) => [`start ${key}:${i}`, `end ${key}:${i}`]).flat());
    }
    expect(await queue.depth()).toBe(0);
  });

  it("renews the lease of a message while its handler runs: a handler that outlasts the lease is not run again by another worker", async () => {
    const queue = new PostgresQueue(db.sql, "lease-test", { concurrency: 3, pollMs: 50, leaseMs: 300 });
    await queue.enqueue({ n: 1 });
    const runs: number[] = [];
    const controller = new AbortController();
    const listening = queue.listen(async (m: { n: number }) => {
      runs.push(m.n);
      // Five leases long (a lock held by a bulk import, a slow database).
      await new Promise((r) => setTimeout(r, 1500));
    }, { signal: controller.signal });
    await until("the message to be done", async () => (await queue.depth()) === 0, 10_000, 50);
    // Long enough for another worker to have taken it, had its lease lapsed.
    await new Promise((r) => setTimeout(r, 400));
    controller.abort();
    await listening;
    expect(runs).toEqual([1]);
  });

  it("keeps a message's place among those with its ordering key when its handler queues it again for later (Fedify's retries)", async () => {
    const box = new SecretBox("queue-test-secret-key-of-at-least-32-chars");
    const queue = new PostgresQueue(db.sql, "retry-order-test", { concurrency: 4, pollMs: 50, box });
    for (let n = 0; n < 3; n++) await queue.enqueue({ n, attempt: 0 }, { orderingKey: "alice" });
    await queue.enqueue({ n: 9, attempt: 0 });
    const seen: string[] = [];
    const at: number[] = [];
    const controller = new AbortController();
    await queue.listen(async (m: { n: number; attempt: number }) => {
      seen.push(`${m.n}.${m.attempt}`);
      at.push(Date.now());
      // As Fedify's outbox does when a delivery fails: the same message, one
      // attempt more, under the same key, after a delay; the handler returns.
      if (m.n === 0 && m.attempt < 2) {
        await queue.enqueue({ n: 0, attempt: m.attempt + 1 }, { orderingKey: "alice", delay: Temporal.Duration.from({ milliseconds: 150 }) as never });
      }
      if (seen.length === 6) controller.abort();
    }, { signal: controller.signal });
    const alice = seen.filter((s) => !s.startsWith("9."));
    expect(alice).toEqual(["0.0", "0.1", "0.2", "1.0", "2.0"]);
    // Still delayed as asked, and nothing else held up meanwhile.
    expect(at[seen.indexOf("0.1")]! - at[seen.indexOf("0.0")]!).toBeGreaterThanOrEqual(140);
    expect(seen.indexOf("9.0")).toBeLessThan(seen.indexOf("0.1"));
    expect(await queue.depth()).toBe(0);
  });

  it("still queues a retry whose row is gone meanwhile, and what a handler queues after it returned", async () => {
    const queue = new PostgresQueue(db.sql, "retry-gone-test", { concurrency: 1, pollMs: 50 });
    await queue.enqueue({ n: 0, attempt: 0 }, { orderingKey: "bob" });
    const seen: string[] = [];
    const controller = new AbortController();
    let late: Promise<void> | undefined;
    await queue.listen(async (m: { n: number; attempt: number }) => {
      seen.push(`${m.n}.${m.attempt}`);
      if (m.n === 0 && m.attempt === 0) {
        // As if its lease had run out and another worker had finished it.
        await db.sql`delete from fediverse_queue where queue = 'retry-gone-test'`;
        await queue.enqueue({ n: 0, attempt: 1 }, { orderingKey: "bob" });
        // A continuation of the handler, queueing after it has returned.
        late = new Promise((r) => setTimeout(r, 20)).then(() => queue.enqueue({ n: 1, attempt: 0 }, { orderingKey: "bob" }));
      }
      if (seen.length === 3) controller.abort();
    }, { signal: controller.signal });
    await late;
    expect(seen).toEqual(["0.0", "0.1", "1.0"]);
    expect(await queue.depth()).toBe(0);
  });

  it("keeps messages sealed at rest: a signing key or a DM's text is never in the table in the clear", async () => {
    const box = new SecretBox("queue-test-secret-key-of-at-least-32-chars");
    const queue = new PostgresQueue(db.sql, "sealed-test", { pollMs: 50, box });
    const message = { type: "outbox", keys: [{ keyId: "https://bot.example/users/bot#main-key", privateKey: { kty: "RSA", d: "private-exponent" } }], activity: { content: "You followed @alice.example on X" } };
    await queue.enqueue(message);
    const [row] = await db.sql<{ text: string }[]>`select message::text as text from fediverse_queue where queue = 'sealed-test'`;
    expect(row!.text).not.toMatch(/private-exponent|alice|main-key/);

    // Bound to its queue: another queue with the same key cannot open it.
    await db.sql`update fediverse_queue set queue = 'other-test' where queue = 'sealed-test'`;
    const errors: unknown[] = [];
    const other = new PostgresQueue(db.sql, "other-test", { pollMs: 50, box, onError: (e) => errors.push(e) });
    const handledElsewhere: unknown[] = [];
    let controller = new AbortController();
    const otherListening = other.listen((m) => void handledElsewhere.push(m), { signal: controller.signal });
    await until("the misplaced message refused", () => errors.length > 0);
    controller.abort();
    await otherListening;
    expect(handledElsewhere).toEqual([]);
    // Dropped at once (no retry could open it; it would hold back its ordering key).
    expect(errors[0]).toBeInstanceOf(UnreadableMessageError);
    expect(await other.depth()).toBe(0);

    await queue.enqueue(message);
    const received: unknown[] = [];
    controller = new AbortController();
    const listening = queue.listen((m) => {
      received.push(m);
      controller.abort();
    }, { signal: controller.signal });
    await listening;
    expect(received).toEqual([message]);
  });

  it("keeps who a message goes to out of the table too: its ordering key is a keyed digest, and still orders", async () => {
    const box = new SecretBox("queue-test-secret-key-of-at-least-32-chars");
    const queue = new PostgresQueue(db.sql, "digest-test", { pollMs: 50, box });
    const recipient = "https://mastodon.example/users/alice\nhttps://mastodon.example";
    for (let n = 0; n < 3; n++) await queue.enqueue({ n }, { orderingKey: recipient });
    const keys = await db.sql<{ key: string }[]>`select ordering_key as key from fediverse_queue where queue = 'digest-test' order by id`;
    expect(keys).toHaveLength(3);
    expect(new Set(keys.map((k) => k.key)).size).toBe(1);
    expect(keys[0]!.key).not.toMatch(/alice|mastodon/);
    // Another SECRET_KEY, another digest: it cannot be recomputed from a guess without the key.
    const otherBox = new SecretBox("another-secret-key-of-at-least-32-characters");
    expect(otherBox.digest(recipient, "fediverse_queue:digest-test")).not.toBe(keys[0]!.key);

    const seen: number[] = [];
    const controller = new AbortController();
    await queue.listen(async (m: { n: number }) => {
      seen.push(m.n);
      if (seen.length === 3) controller.abort();
    }, { signal: controller.signal });
    expect(seen).toEqual([0, 1, 2]);
  });
});
