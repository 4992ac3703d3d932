/**
 * A bulk edge import holds `x_follow` (exclusive, then access exclusive for
 * its swap) and then takes key-share locks on person rows: the foreign keys
 * of the matches it derives. Whatever locks a person row and then waits for
 * `x_follow` would deadlock with it, and PostgreSQL would abort one of the
 * two (a minute's import, or someone's `forget`). Each case: a transaction
 * holding `x_follow` as the import does, the operation started meanwhile,
 * then the import's next step, a match that names the person.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { registerPerson } from "../../test/harness/graph.ts";
import { someoneWaitsForLock } from "../../test/harness/wait.ts";
import { writeArchiveZip } from "../../test/harness/x-archive.ts";
import { importArchive } from "../import/archive.ts";
import { lockEdgesBeforePeople } from "./lock-order.ts";

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), "lock-order-"));
});
afterAll(async () => {
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Runs `operation` while a transaction holds `x_follow` in `mode`, then has
 * that transaction add a match naming `personId` and commit. Both must succeed.
 */
async function duringBulkImport<T>(mode: "exclusive" | "access exclusive", personId: number, otherId: number, operation: () => Promise<T>): Promise<T> {
  const importer = await db.sql.reserve();
  try {
    await importer`begin`;
    await importer.unsafe(`lock table x_follow in ${mode} mode`);
    const running = operation();
    running.catch(() => undefined);
    await someoneWaitsForLock(db.sql);
    await importer`insert into match (person_id, platform, target_person_id) values (${otherId}, 'bluesky', ${personId}) on conflict do nothing`;
    await importer`commit`;
    return await running;
  } finally {
    await importer`rollback`.catch(() => undefined);
    importer.release();
  }
}

let n = 0;
async function person() {
  n++;
  return registerPerson(db.store, `${77_000 + n}`, { platform: "bluesky", stableId: `did:plc:lock-order-${n}`, handle: `p${n}.lock.example` });
}

describe("lock order with a bulk edge import", () => {
  it("a forget waits for the import instead of deadlocking with it", async () => {
    const [gone, other] = [await person(), await person()];
    await db.sql`insert into x_follow values (${`${77_000 + n - 1}`}, 1)`;
    expect(await duringBulkImport("exclusive", gone.personId, other.personId, () => db.store.forget(gone.personId))).toBe(true);
    expect(await db.store.people.get(gone.personId)).toBeUndefined();
  });

  it("a merge waits for the import's swap instead of deadlocking with it", async () => {
    const [keep, drop, other] = [await person(), await person(), await person()];
    await duringBulkImport("access exclusive", drop.personId, other.personId, () => db.store.mergePeople(keep.personId, drop.personId));
    expect(await db.store.people.get(drop.personId)).toBeUndefined();
    expect((await db.store.matches.counts(other.personId)).bluesky.total).toBe(1);
  });

  for (const mode of ["exclusive", "row exclusive"] as const) {
    it(`a merge waits for an import that holds x_follow in ${mode} mode and adds matches naming both people, in any order`, async () => {
      const [keep, drop, a, b] = [await person(), await person(), await person(), await person()];
      const importer = await db.sql.reserve();
      try {
        await importer`begin`;
        await importer.unsafe(`lock table x_follow in ${mode} mode`);
        // Its matches' foreign keys lock the people they name, in no set order.
        await importer`insert into match (person_id, platform, target_person_id) values (${a.personId}, 'bluesky', ${drop.personId})`;
        const merging = db.store.mergePeople(keep.personId, drop.personId);
        merging.catch(() => undefined);
        await someoneWaitsForLock(db.sql);
        await importer`insert into match (person_id, platform, target_person_id) values (${b.personId}, 'bluesky', ${keep.personId})`;
        await importer`commit`;
        await merging;
      } finally {
        await importer`rollback`.catch(() => undefined);
        importer.release();
      }
      expect(await db.store.people.get(drop.personId)).toBeUndefined();
    });
  }

  it("an uploaded archive waits for the import's swap instead of deadlocking with it", async () => {
    const [uploader, other] = [await person(), await person()];
    const zip = await writeArchiveZip(path.join(dir, "upload.zip"), { accountId: `${77_000 + n - 1}`, username: "uploader", followings: ["5", "6"] });
    const summary = await duringBulkImport("access exclusive", uploader.personId, other.personId, () =>
      importArchive(db.sql, zip, { personId: uploader.personId, selfService: true }),
    );
    expect(summary.personId).toBe(uploader.personId);
  });

  it("a fediverse Move waits for the import instead of deadlocking with it", async () => {
    const [moving, other] = [await person(), await person()];
    const from = `https://old.lock.example/users/m${n}`;
    await db.store.identities.attach(moving.personId, { platform: "fediverse", stableId: from, handle: `m${n}@old.lock.example`, verifiedBy: "dm" });
    const to = { actorUri: `https://new.lock.example/users/m${n}`, acct: `m${n}@new.lock.example`, apiBase: null };
    expect(await duringBulkImport("exclusive", moving.personId, other.personId, () => db.store.fediverse.moveIdentity(from, to))).toBe(true);
    expect(await db.store.identities.find({ platform: "fediverse", stableId: to.actorUri })).toMatchObject({ personId: moving.personId });
  });

  it("claiming arrivals for a digest waits for a forget of an arrival instead of deadlocking with it", async () => {
    const [told, arrived] = [await person(), await person()];
    await db.sql`insert into match (person_id, platform, target_person_id) values (${told.personId}, 'bluesky', ${arrived.personId})`;
    // A forget of the one who arrived, as its cascade locks: the person, then the matches naming it.
    const forget = await db.sql.reserve();
    try {
      await forget`begin`;
      await forget`select 1 from person where id = ${arrived.personId} for update`;
      const claiming = db.store.arrivals.claim(told.personId, new Date());
      claiming.catch(() => undefined);
      await someoneWaitsForLock(db.sql);
      await forget`select 1 from match where target_person_id = ${arrived.personId} for update`;
      await forget`delete from person where id = ${arrived.personId}`;
      await forget`commit`;
      expect(await claiming).toEqual([]);
    } finally {
      await forget`rollback`.catch(() => undefined);
      forget.release();
    }
  });

  it("recording a reconnection's outcomes waits for a forget of its target instead of deadlocking with it", async () => {
    const [owner, target] = [await person(), await person()];
    await db.sql`insert into match (person_id, platform, target_person_id) values (${owner.personId}, 'bluesky', ${target.personId})`;
    const { job } = await db.store.reconnectJobs.open(owner.personId, "bluesky", "all", [target.personId], null);
    // A forget of the target, as its cascade locks: the person, the matches
    // naming it, then the reconnection targets naming it.
    const forget = await db.sql.reserve();
    try {
      await forget`begin`;
      await forget`select 1 from person where id = ${target.personId} for update`;
      await forget`select 1 from match where target_person_id = ${target.personId} for update`;
      const recording = db.store.transaction((s) => s.reconnectJobs.record(job, [{ personId: target.personId, outcome: "followed" }]));
      recording.catch(() => undefined);
      await someoneWaitsForLock(db.sql);
      await forget`select 1 from reconnect_target where target_person_id = ${target.personId} for update`;
      await forget`commit`;
      await recording;
    } finally {
      await forget`rollback`.catch(() => undefined);
      forget.release();
    }
    expect((await db.store.reconnectJobs.counts(job.id)).followed).toBe(1);
  });

  it("using a connect link waits for an unlink of its account instead of deadlocking with it", async () => {
    const p = await person();
    const token = await db.store.webLinks.create("connect", p.personId, p.identityId, 600);
    // An unlink (or forget) of the identity, as its cascade locks: the
    // identity, then the links made for it.
    const unlink = await db.sql.reserve();
    try {
      await unlink`begin`;
      await unlink`select 1 from identity where id = ${p.identityId} for update`;
      // As the connect page does once the person has authorized.
      const connecting = db.store.transaction(async (s) => {
        const grant = await s.webLinks.consume(token, "connect");
        if (grant) await s.authorizations.save(grant.identityId, "bluesky-oauth", { did: "did:plc:lock-order" });
        return grant;
      });
      connecting.catch(() => undefined);
      await someoneWaitsForLock(db.sql);
      await unlink`select 1 from web_link where identity_id = ${p.identityId} for update`;
      await unlink`rollback`;
      expect(await connecting).toMatchObject({ identityId: p.identityId });
    } finally {
      await unlink`rollback`.catch(() => undefined);
      unlink.release();
    }
  });

  it("two people who match each other, forgetting at once, wait for each other instead of deadlocking", async () => {
    const [a, b] = [await person(), await person()];
    await db.sql`insert into match (person_id, platform, target_person_id) values (${a.personId}, 'bluesky', ${b.personId}), (${b.personId}, 'bluesky', ${a.personId})`;
    // a's forget, as it locks: the edges' table, the person, then (cascade)
    // the matches it made, then those naming it.
    const first = await db.sql.reserve();
    try {
      await first`begin`;
      await lockEdgesBeforePeople(first); // as People.delete does
      await first`select 1 from person where id = ${a.personId} for update`;
      await first`select 1 from match where person_id = ${a.personId} for update`;
      const second = db.store.forget(b.personId);
      second.catch(() => undefined);
      await someoneWaitsForLock(db.sql);
      await first`select 1 from match where target_person_id = ${a.personId} for update`;
      await first`rollback`;
      expect(await second).toBe(true);
    } finally {
      await first`rollback`.catch(() => undefined);
      first.release();
    }
  });
});

/**
 * A forget as it locks: the edges' table, the person, then (its cascades)
 * `next` rows; `operation` starts once the person is held, and must wait for
 * the forget (here rolled back) instead of holding what the forget reaches next.
 */
async function duringForget<T>(personId: number, next: string[], operation: () => Promise<T>): Promise<T> {
  const forget = await db.sql.reserve();
  try {
    await forget`begin`;
    await lockEdgesBeforePeople(forget);
    await forget`select 1 from person where id = ${personId} for update`;
    await forget.unsafe(`select 1 from match where person_id = $1 for update`, [personId]);
    const running = operation();
    running.catch(() => undefined);
    await someoneWaitsForLock(db.sql);
    for (const table of next) await forget.unsafe(`select 1 from ${table} where person_id = $1 for update`, [personId]);
    await forget`rollback`;
    return await running;
  } finally {
    await forget`rollback`.catch(() => undefined);
    forget.release();
  }
}

describe("lock order with a person's own operations", () => {
  it("an operator's archive import waits for a forget of its owner instead of deadlocking with it", async () => {
    const owner = await person();
    const xId = `${77_000 + n}`;
    const zip = await writeArchiveZip(path.join(dir, "operator.zip"), { accountId: xId, username: "owner", followings: ["5", "6"], followers: ["7"] });
    const summary = await duringForget(owner.personId, ["identity"], () => importArchive(db.sql, zip));
    expect(summary).toMatchObject({ personId: owner.personId, edgesAdded: 3 });
  });

  it("removing an uploaded archive waits for a forget of its person instead of deadlocking with it", async () => {
    const [uploader, other] = [await person(), await person()];
    const zip = await writeArchiveZip(path.join(dir, "removed.zip"), { accountId: `${77_000 + n - 1}`, username: "uploader", followings: ["5"] });
    await importArchive(db.sql, zip, { personId: uploader.personId, selfService: true });
    await db.sql`insert into match (person_id, platform, target_person_id) values (${uploader.personId}, 'bluesky', ${other.personId})`;
    expect(await duringForget(uploader.personId, ["uploaded_archive"], () => db.store.removeUpload(uploader.personId))).toBe(true);
  });

  it("unlinking a Bluesky account waits for a forget of its person instead of deadlocking with it", async () => {
    const [p, other] = [await person(), await person()];
    await db.sql`insert into match (person_id, platform, target_person_id) values (${p.personId}, 'bluesky', ${other.personId})`;
    expect(await duringForget(p.personId, ["identity"], () => db.store.unlink(p.identityId))).toBe(true);
    expect(await db.store.identities.get(p.identityId)).toBeUndefined();
  });

  it("opening a reconnection job waits for a merge of two of its targets instead of deadlocking with it", async () => {
    const [owner, keep, drop] = [await person(), await person(), await person()];
    // A merge as it locks: the edges' table, then both people in id order.
    const merge = await db.sql.reserve();
    try {
      await merge`begin`;
      await lockEdgesBeforePeople(merge);
      await merge`select 1 from person where id = ${keep.personId} for update`;
      // The later arrival first, as `reconnect` lists them.
      const opening = db.store.transaction((s) => s.reconnectJobs.open(owner.personId, "bluesky", "all", [drop.personId, keep.personId], null));
      opening.catch(() => undefined);
      await someoneWaitsForLock(db.sql);
      await merge`select 1 from person where id = ${drop.personId} for update`;
      await merge`rollback`;
      expect((await opening).added).toBe(2);
    } finally {
      await merge`rollback`.catch(() => undefined);
      merge.release();
    }
  });
});
