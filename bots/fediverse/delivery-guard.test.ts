import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
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
