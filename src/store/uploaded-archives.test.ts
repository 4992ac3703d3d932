/**
 * Uploaded archives on a real PostgreSQL: they serve their uploader's own
 * matching both ways (what they followed, and who of those arrives later),
 * and nothing else reaches the uploader through the X account they name.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import type { Store } from "./index.ts";

let db: TestDatabase;
let store: Store;

beforeAll(async () => {
  db = await createTestDatabase();
  store = db.store;
});
afterAll(() => db.drop());

let next = 0;
/** Someone who wrote from Bluesky, with nothing on X. */
async function newcomer() {
  const person = await store.people.create();
  await store.identities.attach(person.id, { platform: "bluesky", stableId: `did:plc:newcomer${++next}`, verifiedBy: "dm" });
  return person.id;
}

/** Someone registered with X account `xId` and a Bluesky account. */
async function registered(xId: string) {
  const person = await store.people.create();
  await store.identities.attach(person.id, { platform: "x", stableId: xId, verifiedBy: "platform" });
  await store.identities.attach(person.id, { platform: "bluesky", stableId: `did:plc:x${xId}`, verifiedBy: "platform" });
  return person.id;
}

/** What the archive importer does with an upload, on a list of followed X ids. */
async function upload(personId: number, xAccountId: string, followed: string[]) {
  return store.transaction(async (s) => {
    await s.db`create temporary table upload_edge (followed bigint not null) on commit drop`;
    if (followed.length > 0) await s.db`insert into upload_edge select unnest(${followed}::bigint[])`;
    const n = await s.uploadedArchives.replace(personId, { xAccountId, xUsername: `u${xAccountId}` }, "upload_edge");
    await s.matches.prune([personId]);
    await s.matches.refreshForFollowers([personId]);
    return n;
  });
}

const pendingTargets = async (personId: number) =>
  (await store.matches.list(personId, "bluesky", { states: ["pending"] })).entries.map((e) => e.targetPersonId).sort();

describe("uploaded archives", () => {
  it("match their uploader with the people they followed, now and when those arrive later (as news)", async () => {
    const here = await registered("1001");
    const uploader = await newcomer();
    expect(await upload(uploader, "1900", ["1001", "1002", "1001"])).toBe(2);
    expect(await pendingTargets(uploader)).toEqual([here]);
    expect(await store.uploadedArchives.get(uploader)).toMatchObject({ xAccountId: "1900", xUsername: "u1900", followings: 2 });
    expect(await store.matches.registeredFollowersOf("1001")).toEqual([uploader]);

    // 1002 registers after the upload: the uploader is among their arrival's fan-out, untold.
    const later = await registered("1002");
    expect(await store.matches.refreshForTargets([later])).toBe(1);
    expect(await store.matches.arrivalFollowers(later)).toEqual([uploader]);
    const [match] = await db.sql<{ notified_at: Date | null }[]>`
      select notified_at from match where person_id = ${uploader} and target_person_id = ${later}`;
    expect(match?.notified_at).toBeNull();
    // The next arrival digest tells them; what was here at the upload is not news.
    expect(await store.arrivals.claim(uploader, new Date())).toEqual([{ platform: "bluesky", targetPersonId: later, handle: null }]);
  });

  it("claim nothing: what other data says about the X account named never reaches the uploader", async () => {
    const followedByOwner = await registered("1101");
    const uploader = await newcomer();
    await upload(uploader, "1190", []);
    // The registry and the operator's edges about X account 1190, before and after the upload.
    await db.sql`insert into x_follow values (1190, 1101)`;
    const owner = await store.people.create();
    await store.identities.attach(owner.id, { platform: "x", stableId: "1190", verifiedBy: "platform" });
    await store.identities.attach(owner.id, { platform: "bluesky", stableId: "did:plc:owner1190", verifiedBy: "platform" });
    await store.matches.refreshForFollowers([uploader, owner.id]);
    await store.matches.refreshForTargets([owner.id, followedByOwner]);
    expect(await pendingTargets(uploader)).toEqual([]);
    expect(await pendingTargets(owner.id)).toEqual([followedByOwner]);
    expect((await store.identities.listForPerson(uploader)).map((i) => i.platform)).toEqual(["bluesky"]);
  });

  it("are replaced whole by a newer upload: matches only the old one gave go, those acted on stay", async () => {
    const a = await registered("1201");
    const b = await registered("1202");
    const c = await registered("1203");
    const uploader = await newcomer();
    await upload(uploader, "1290", ["1201", "1202"]);
    expect(await pendingTargets(uploader)).toEqual([a, b]);
    await store.matches.setState(uploader, "bluesky", b, "followed");
    await upload(uploader, "1291", ["1203"]);
    expect(await pendingTargets(uploader)).toEqual([c]);
    expect((await store.matches.list(uploader, "bluesky", { states: ["followed"] })).entries.map((e) => e.targetPersonId)).toEqual([b]);
    expect(await store.uploadedArchives.get(uploader)).toMatchObject({ xAccountId: "1291", followings: 1 });

    // Removed (`unlink x`): its pending matches go with it.
    expect(await store.removeUpload(uploader)).toBe(true);
    expect(await pendingTargets(uploader)).toEqual([]);
    expect(await store.uploadedArchives.get(uploader)).toBeUndefined();
    expect(await store.removeUpload(uploader)).toBe(false);
  });

  it("are not lost to a merge of their person while the upload is under way", async () => {
    const a = await registered("1401");
    const keep = await newcomer();
    const drop = await newcomer();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let replaced!: () => void;
    const inserted = new Promise<void>((resolve) => (replaced = resolve));
    // The importer's transaction: the person held from its start, the upload in, not yet committed.
    const uploading = store.transaction(async (s) => {
      expect(await s.people.lockForUpdate(drop)).toBe(true);
      await s.db`create temporary table upload_edge (followed bigint not null) on commit drop`;
      await s.db`insert into upload_edge values (1401)`;
      await s.uploadedArchives.replace(drop, { xAccountId: "1490", xUsername: null }, "upload_edge");
      await s.matches.refreshForFollowers([drop]);
      replaced();
      await held;
    });
    await inserted;
    const merging = store.mergePeople(keep, drop);
    await new Promise((resolve) => setTimeout(resolve, 100));
    release();
    await uploading;
    await merging;
    expect(await store.uploadedArchives.get(keep)).toMatchObject({ xAccountId: "1490", followings: 1 });
    expect(await pendingTargets(keep)).toEqual([a]);
    // Once merged away, the person cannot be held for an upload any more.
    expect(await store.transaction((s) => s.people.lockForUpdate(drop))).toBe(false);
  });

  it("follow their person through a merge, the follows of both kept, and go with `forget`", async () => {
    const a = await registered("1301");
    const b = await registered("1302");
    const keep = await newcomer();
    const drop = await newcomer();
    await upload(keep, "1390", ["1301"]);
    await upload(drop, "1391", ["1302"]);
    await store.mergePeople(keep, drop);
    expect(await store.uploadedArchives.get(keep)).toMatchObject({ xAccountId: "1390", followings: 2 });
    expect(await pendingTargets(keep)).toEqual([a, b].sort());
    expect(await store.people.followingCount(keep)).toBe(2);

    // Merged into someone without an upload: it moves over whole.
    const other = await newcomer();
    await store.mergePeople(other, keep);
    expect(await store.uploadedArchives.get(other)).toMatchObject({ xAccountId: "1390", followings: 2 });

    expect(await store.forget(other)).toBe(true);
    const [left] = await db.sql<{ archives: number; follows: number }[]>`
      select (select count(*) from uploaded_archive where person_id in (${keep}, ${drop}, ${other}))::int as archives,
             (select count(*) from uploaded_follow where person_id in (${keep}, ${drop}, ${other}))::int as follows`;
    expect(left).toEqual({ archives: 0, follows: 0 });
  });
});
