import { mkdir, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import yazl from "yazl";
import { createWriteStream } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { until } from "../../test/harness/wait.ts";
import { archiveFiles, writeArchiveFolder, writeArchiveZip } from "../../test/harness/x-archive.ts";
import { importArchive } from "./archive.ts";
import { ImportError } from "./types.ts";

let db: TestDatabase;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), "archive-test-"));
});
afterAll(async () => {
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

const ids = (from: number, n: number) => Array.from({ length: n }, (_, i) => String(from + i));

async function snapshot() {
  const [row] = await db.sql`
    select (select count(*) from person)::int as people, (select count(*) from identity)::int as identities,
           (select count(*) from x_follow)::int as edges, (select count(*) from match)::int as matches`;
  return row;
}

async function expectImportError(promise: Promise<unknown>, pattern: RegExp) {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(ImportError);
  expect((error as Error).message).toMatch(pattern);
  return error as ImportError;
}

describe("import archive", () => {
  it("reads a split zip the way X builds it, once", async () => {
    const file = await writeArchiveZip(path.join(dir, "twitter-2024.zip"), {
      accountId: "1000",
      username: "Alice_X",
      followings: ids(5000, 2500),
      followers: ids(9000, 300),
      perPart: 1000,
    });
    const first = await importArchive(db.sql, file);
    expect(first).toMatchObject({ xAccountId: "1000", xUsername: "Alice_X", personCreated: true, followings: 2500, followers: 300, edgesAdded: 2800 });
    const before = await snapshot();
    const second = await importArchive(db.sql, file);
    expect(second).toMatchObject({ personId: first.personId, personCreated: false, edgesAdded: 0, matchesAdded: 0 });
    expect(await snapshot()).toEqual(before);
    const [identity] = await db.store.identities.listForPerson(first.personId);
    expect(identity).toMatchObject({ platform: "x", stableId: "1000", handle: "Alice_X", verifiedBy: "archive" });
  });

  it("keeps going when another import adds one of its edges at the same moment", async () => {
    const file = await writeArchiveZip(path.join(dir, "race.zip"), { accountId: "1300", username: "race", followings: ids(13_000, 50), followers: ids(14_000, 5) });
    // Another transaction holds a new edge of this archive, uncommitted: the import's insert waits for it.
    const other = await db.sql.reserve();
    await other`begin`;
    await other`insert into x_follow values (1300, 13000)`;
    const importing = importArchive(db.sql, file);
    await until("the import to wait on the lock", async () => (await db.sql`select 1 from pg_locks where not granted`).length > 0);
    await other`commit`;
    other.release();
    expect(await importing).toMatchObject({ followings: 50, followers: 5, edgesAdded: 54 });
    const [row] = await db.sql`select count(*)::int as n from x_follow where follower = 1300 or followed = 1300`;
    expect(row!.n).toBe(55);
  });

  it("waits for a bulk edge import's table swap without deadlocking it", async () => {
    const file = await writeArchiveZip(path.join(dir, "swap.zip"), { accountId: "1400", username: "swap", followings: ids(15_000, 20) });
    // What a bulk edge import does: lock out writers, later take the table whole to swap it.
    const bulk = await db.sql.reserve();
    await bulk`begin`;
    await bulk`lock table x_follow in exclusive mode`;
    const importing = importArchive(db.sql, file);
    await until("the import to wait on the lock", async () => (await db.sql`select 1 from pg_locks where not granted`).length > 0);
    await bulk`lock table x_follow in access exclusive mode`; // deadlocks if the waiting import holds a read lock
    await bulk`commit`;
    bulk.release();
    expect(await importing).toMatchObject({ followings: 20, edgesAdded: 20 });
  });

  it("reads an unpacked folder and a lone data file with --x-id", async () => {
    const folder = await writeArchiveFolder(path.join(dir, "unpacked"), { accountId: "1100", username: "bob", followings: ids(100, 10), followers: ids(200, 5) });
    expect(await importArchive(db.sql, folder)).toMatchObject({ followings: 10, followers: 5 });
    const lone = path.join(dir, "following.js");
    await writeFile(lone, archiveFiles({ accountId: "1200", username: "c", followings: ids(300, 7) }).get("data/following.js")!);
    await expectImportError(importArchive(db.sql, lone), /does not say whose archive/);
    expect(await importArchive(db.sql, lone, { xAccountId: "1200" })).toMatchObject({ followings: 7, followers: 0 });
  });

  it("leaves out the account's own id (nobody follows themselves on X), e.g. a lone file given the wrong --x-id", async () => {
    await mkdir(path.join(dir, "self"), { recursive: true });
    const lone = path.join(dir, "self", "following.js");
    await writeFile(lone, archiveFiles({ accountId: "1250", username: "s", followings: ["1250", "1251", "1252"] }).get("data/following.js")!);
    expect(await importArchive(db.sql, lone, { xAccountId: "1250" })).toMatchObject({ followings: 2, edgesAdded: 2 });
    expect(await db.sql`select 1 from x_follow where follower = 1250 and followed = 1250`).toHaveLength(0);
  });

  it("matches the uploader, but never offers an archive-claimed account to others", async () => {
    const target = await db.store.people.create();
    await db.store.identities.attach(target.id, { platform: "x", stableId: "7001", verifiedBy: "platform" });
    await db.store.identities.attach(target.id, { platform: "bluesky", stableId: "did:plc:t7001", handle: "t.test", verifiedBy: "platform" });
    const fan = await db.store.people.create();
    await db.store.identities.attach(fan.id, { platform: "x", stableId: "7002", verifiedBy: "platform" });
    // The uploader follows 7001; 7002 follows the uploader and the uploader claims Bluesky too.
    const file = await writeArchiveZip(path.join(dir, "claim.zip"), { accountId: "7003", username: "claimer", followings: ["7001"], followers: ["7002"] });
    const summary = await importArchive(db.sql, file);
    expect((await db.store.matches.counts(summary.personId)).bluesky.total).toBe(1);
    await db.store.identities.attach(summary.personId, { platform: "bluesky", stableId: "did:plc:claimer", verifiedBy: "dm" });
    await db.store.matches.refreshForTargets([summary.personId]);
    expect((await db.store.matches.counts(fan.id)).bluesky.total).toBe(0);
  });

  it("refuses an archive whose X account belongs to someone else", async () => {
    const owner = await db.store.people.create();
    await db.store.identities.attach(owner.id, { platform: "x", stableId: "8001", verifiedBy: "platform" });
    const other = await db.store.people.create();
    const file = await writeArchiveZip(path.join(dir, "stolen.zip"), { accountId: "8001", username: "owner", followings: ids(10, 3) });
    await expectImportError(importArchive(db.sql, file, { personId: other.id }), /belongs to another person/);
  });

  it("rolls everything back when a later part is broken, naming file and line", async () => {
    const before = await snapshot();
    const file = path.join(dir, "broken.zip");
    const good = archiveFiles({ accountId: "9001", username: "broken", followings: ids(10, 50), followers: ids(20, 50) });
    const zip = new yazl.ZipFile();
    for (const [name, text] of good) zip.addBuffer(Buffer.from(text), name);
    zip.addBuffer(Buffer.from('window.YTD.follower.part1 = [ {\n  "follower" : {\n    "accountId" : "5"\n  }\n}, {\n  "follower" : { "accountId" : 6, \n} } ]'), "data/follower-part1.js");
    zip.end();
    await new Promise<void>((r) => zip.outputStream.pipe(createWriteStream(file)).on("close", () => r()));
    const error = await expectImportError(importArchive(db.sql, file), /^\S*broken\.zip: data\/follower-part1\.js, line 7: /);
    expect(error).toMatchObject({ archive: file, file: "data/follower-part1.js" });
    expect(error.line).toBe(7); // where JSON.parse stops: the "}" after the trailing comma
    expect(await snapshot()).toEqual(before);
  });

  it("names the archive, its data file and the line of an entry without a valid account id, in a zip or a folder", async () => {
    const before = await snapshot();
    const { "data/account.js": account } = Object.fromEntries(archiveFiles({ accountId: "9601", username: "badid", followings: [] }));
    const following = [
      'window.YTD.following.part0 = [ {', // line 1: entry 1
      '  "following" : {',
      '    "accountId" : "9602"',
      '  }',
      '}, {', // line 5: entry 2
      '  "following" : {',
      '    "accountId" : "nine"',
      '  }',
      '} ]',
    ].join("\n");
    const zipFile = path.join(dir, "bad-id.zip");
    const zip = new yazl.ZipFile();
    zip.addBuffer(Buffer.from(account!), "data/account.js");
    zip.addBuffer(Buffer.from(following), "data/following.js");
    zip.end();
    await new Promise<void>((r) => zip.outputStream.pipe(createWriteStream(zipFile)).on("close", () => r()));
    const inZip = await expectImportError(importArchive(db.sql, zipFile), /./);
    expect(inZip.message).toBe(`${zipFile}: data/following.js, line 5: entry 2 has no valid "accountId".`);
    expect(inZip).toMatchObject({ archive: zipFile, file: "data/following.js", line: 5, problem: { kind: "bad-content" } });

    const folder = path.join(dir, "bad-id");
    await mkdir(path.join(folder, "data"), { recursive: true });
    await writeFile(path.join(folder, "data", "account.js"), account!);
    await writeFile(path.join(folder, "data", "following.js"), following);
    const inFolder = await expectImportError(importArchive(db.sql, folder), /./);
    expect(inFolder.message).toBe(`${folder}: ${path.join("data", "following.js")}, line 5: entry 2 has no valid "accountId".`);

    // A lone data file is named as given, with no archive around it.
    const lone = path.join(folder, "data", "following.js");
    const alone = await expectImportError(importArchive(db.sql, lone, { xAccountId: "9601" }), /./);
    expect(alone.message).toBe(`following.js, line 5: entry 2 has no valid "accountId".`);
    expect(await snapshot()).toEqual(before);
  });

  it("explains truncated zips, zip bombs, huge files and files that are not archives", async () => {
    const before = await snapshot();
    const whole = await readFile(await writeArchiveZip(path.join(dir, "whole.zip"), { accountId: "9100", username: "t", followings: ids(1, 2000) }));
    const truncated = path.join(dir, "truncated.zip");
    await writeFile(truncated, whole.subarray(0, Math.floor(whole.length * 0.6)));
    await expectImportError(importArchive(db.sql, truncated), /truncated\.zip.*(truncated|damaged)/);

    // Damage inside the compressed data of data/following.js (the directory at the end is intact).
    const damaged = path.join(dir, "damaged.zip");
    const bytes = Buffer.from(whole);
    for (let i = Math.floor(bytes.length * 0.3); i < Math.floor(bytes.length * 0.3) + 64; i++) bytes[i] = bytes[i]! ^ 0x5a;
    await writeFile(damaged, bytes);
    await expectImportError(importArchive(db.sql, damaged), /damaged\.zip: data\/following\.js: /);

    const bomb = path.join(dir, "bomb.zip");
    const zip = new yazl.ZipFile();
    zip.addBuffer(Buffer.from(archiveFiles({ accountId: "9200", username: "b", followings: [] }).get("data/account.js")!), "data/account.js");
    zip.addBuffer(Buffer.concat([Buffer.from("window.YTD.following.part0 = ["), Buffer.alloc(30 * 1024 * 1024, 32), Buffer.from("]")]), "data/following.js");
    zip.end();
    await new Promise<void>((r) => zip.outputStream.pipe(createWriteStream(bomb)).on("close", () => r()));
    await expectImportError(importArchive(db.sql, bomb), /bomb\.zip: data\/following\.js: .*zip bomb/);

    const tooBig = await writeArchiveZip(path.join(dir, "big.zip"), { accountId: "9300", username: "big", followings: ids(1, 5000) });
    await expectImportError(importArchive(db.sql, tooBig, { limits: { maxFileBytes: 64 * 1024, maxCompressionRatio: 1000 } }), /big\.zip: data\/following\.js: .*larger than/);

    // A 2 GB file (sparse: it costs no disk) is refused without being read whole.
    const huge = path.join(dir, "following.js");
    const handle = await open(huge, "w");
    await handle.write("window.YTD.following.part0 = [ ");
    await handle.truncate(2 * 1024 * 1024 * 1024);
    await handle.close();
    await expectImportError(importArchive(db.sql, huge, { xAccountId: "9400" }), /following\.js.*(larger than|where an entry)/);
    const hugeZip = path.join(dir, "huge.zip");
    await (await open(hugeZip, "w")).truncate(2 * 1024 * 1024 * 1024).then(() => undefined);
    await expectImportError(importArchive(db.sql, hugeZip), /huge\.zip.*not an X archive/);

    const png = path.join(dir, "photo.png");
    await writeFile(png, Buffer.from("89504e470d0a1a0a0000000d49484452", "hex"));
    await expectImportError(importArchive(db.sql, png), /photo\.png.*not an X archive/);
    const notX = path.join(dir, "other.zip");
    const z2 = new yazl.ZipFile();
    z2.addBuffer(Buffer.from("hello"), "readme.txt");
    z2.end();
    await new Promise<void>((r) => z2.outputStream.pipe(createWriteStream(notX)).on("close", () => r()));
    await expectImportError(importArchive(db.sql, notX), /other\.zip.*not an X archive/);
    await expectImportError(importArchive(db.sql, path.join(dir, "missing.zip")), /missing\.zip.*cannot be read/);
    const garbage = path.join(dir, "follower.js");
    await writeFile(garbage, "window.YTD.follower.part0 = [ { \"follower\" : { \"accountId\" : \"12\" } }, ");
    await expectImportError(importArchive(db.sql, garbage, { xAccountId: "9500" }), /follower\.js, line 1: .*truncated/);
    const wrongKind = path.join(dir, "following-part2.js");
    await writeFile(wrongKind, "window.YTD.like.part0 = [ ]");
    await expectImportError(importArchive(db.sql, wrongKind, { xAccountId: "9500" }), /"like" data where "following"/);
    expect(await snapshot()).toEqual(before);
  });
});
