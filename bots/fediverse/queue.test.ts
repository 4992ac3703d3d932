import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { PostgresQueue } from "./queue.ts";

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
});
