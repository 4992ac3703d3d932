import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Logger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { registerPerson } from "../../test/harness/graph.ts";
import { postPublicAnnouncements, type AnnouncementPoster } from "./public.ts";

const log = pino({ level: "silent" }) as unknown as Logger;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe("postPublicAnnouncements", () => {
  it("never announces again someone who arrived before announcing began and links the same account again", async () => {
    const wes = await registerPerson(db.store, "610001", { platform: "bluesky", stableId: "did:plc:wes", handle: "wes.example.com" });
    await db.store.people.updateSettings(wes.personId, { announceMe: true });
    const posted: string[] = [];
    const poster: AnnouncementPoster = { post: async (t) => (posted.push(t), `at://bot/post/${posted.length}`), retract: async () => {} };
    const post = (hoursAhead: number) =>
      postPublicAnnouncements({ store: db.store, posters: { bluesky: poster }, language: "en", log, settleMs: 0, tick: new Date(Date.now() + hoursAhead * 3_600_000) });
    expect(await post(0)).toMatchObject({ posted: 0 }); // the first run only marks where announcing begins

    expect(await db.store.unlink(wes.identityId)).toBe(true);
    await db.store.identities.attach(wes.personId, { platform: "bluesky", stableId: "did:plc:wes", handle: "wes.example.com", verifiedBy: "dm" });
    await db.sql`update identity set verified_at = now() + interval '30 minutes' where person_id = ${wes.personId} and platform = 'bluesky'`;
    expect(await post(1)).toMatchObject({ posted: 0, arrivals: 0 });
    expect(posted).toEqual([]);
  });
});
