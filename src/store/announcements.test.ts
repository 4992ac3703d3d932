import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { registerPerson } from "../../test/harness/graph.ts";
import type { AnnouncementWindow } from "./announcements.ts";

let db: TestDatabase;
let nextX = 600_000;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const hours = (h: number) => new Date(Date.now() + h * 3_600_000);
/** A window of the Bluesky bot's, from `from` to `to` hours from now. */
const window = (from: number, to: number): AnnouncementWindow => ({ platform: "bluesky", since: hours(from), until: hours(to) });

/** Someone registering on Bluesky (and X), agreeing to be named, arriving `at` hours from now. */
async function arrive(name: string, at: number) {
  const x = String(++nextX);
  const { personId, identityId } = await registerPerson(db.store, x, { platform: "bluesky", stableId: `did:plc:${name}`, handle: `${name}.test` });
  await db.store.people.updateSettings(personId, { announceMe: true });
  // As if it all happened then.
  await db.sql`update identity set verified_at = ${hours(at)} where person_id = ${personId}`;
  await db.sql`update arrival set arrived_at = ${hours(at)} where person_id = ${personId}`;
  return { personId, identityId, x };
}

/** Unlinks the person's Bluesky account and links the same one again, `at` hours from now. */
async function relink(person: { personId: number }, name: string, at: number) {
  const [bluesky] = (await db.store.identities.listForPerson(person.personId)).filter((i) => i.platform === "bluesky");
  expect(await db.store.unlink(bluesky!.id)).toBe(true);
  await db.store.identities.attach(person.personId, { platform: "bluesky", stableId: `did:plc:${name}`, handle: `${name}.test`, verifiedBy: "dm" });
  await db.sql`update identity set verified_at = ${hours(at)} where person_id = ${person.personId} and platform = 'bluesky'`;
}

describe("Announcements.tally", () => {
  it("counts and names a person once, in the window of their first arrival, however often they link the same account again", async () => {
    const uma = await arrive("uma", 1.5);
    expect(await db.store.announcements.tally(window(1, 2), 5)).toEqual({
      count: 1,
      named: [{ personId: uma.personId, stableId: "did:plc:uma", handle: "uma.test" }],
    });
    await relink(uma, "uma", 2.5);
    expect(await db.store.announcements.tally(window(2, 3), 5)).toEqual({ count: 0, named: [] });
    await relink(uma, "uma", 3.5);
    expect(await db.store.announcements.tally(window(3, 4), 5)).toEqual({ count: 0, named: [] });
  });

  it("counts someone who forgot and registered again as a new arrival", async () => {
    const vic = await arrive("vic", 20.5);
    expect(await db.store.announcements.tally(window(20, 21), 5)).toMatchObject({ count: 1 });
    expect(await db.store.erase(vic.personId)).toBe(true);
    const again = await registerPerson(db.store, vic.x, { platform: "bluesky", stableId: "did:plc:vic", handle: "vic.test" });
    await db.sql`update arrival set arrived_at = ${hours(21.5)} where person_id = ${again.personId}`;
    expect(await db.store.announcements.tally(window(21, 22), 5)).toEqual({ count: 1, named: [] }); // a new person: not agreed to be named yet
  });
});
