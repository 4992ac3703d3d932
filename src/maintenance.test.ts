import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../test/harness/database.ts";
import { runMaintenance } from "./maintenance.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

describe("maintenance", () => {
  it("drops expired codes, idle counters and old note claims, and keeps the rest", async () => {
    const person = await db.store.people.create();
    await db.store.linkCodes.create(person.id, { ttlSeconds: -3 * 24 * 3600 }); // long expired
    const live = await db.store.linkCodes.create(person.id);
    await db.sql`insert into fediverse_inbound (note_id, actor_uri, received_at) values ('https://a.example/notes/old', 'https://a.example/u/a', now() - interval '40 days'),
      ('https://a.example/notes/new', 'https://a.example/u/a', now())`;
    const first = await runMaintenance(db.store);
    expect(first).toMatchObject({ linkCodes: 1, fediverseNotes: 1 });
    expect(await db.store.linkCodes.redeem(live.code)).toMatchObject({ personId: person.id });
    expect(await runMaintenance(db.store)).toMatchObject({ linkCodes: 0, conversationState: 0, fediverseNotes: 0 });
  });

  it("drops write-budget ledgers past every window, and the accounts left with none", async () => {
    await db.sql`insert into write_budget (account, updated_at) values ('did:plc:gone', now() - interval '3 days'), ('did:plc:busy', now() - interval '3 days')`;
    await db.sql`insert into write_budget_use (account, at, points) values
      ('did:plc:gone', now() - interval '3 days', 600), ('did:plc:busy', now() - interval '3 days', 600), ('did:plc:busy', now() - interval '1 hour', 3)`;
    expect(await runMaintenance(db.store)).toMatchObject({ writeBudgets: 1 });
    expect(await db.sql`select account from write_budget order by account`).toEqual([{ account: "did:plc:busy" }]);
    expect(await db.sql`select points from write_budget_use`).toEqual([{ points: 3 }]);
  });
});
