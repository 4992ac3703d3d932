import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { registerPerson } from "../../test/harness/graph.ts";
import { importEdges } from "./edges.ts";
import { ImportError } from "./types.ts";

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), "edges-test-"));
});
afterAll(async () => {
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function csv(body: string, header = "follower_x_id,followed_x_id"): Promise<string> {
  const file = path.join(dir, `edges-${++n}.csv`);
  await writeFile(file, `${header}\n${body}`);
  return file;
}

async function edgeCount() {
  const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from x_follow`;
  return row!.n;
}

describe("import edges", () => {
  it("loads a large file in bulk, deduplicated, and a second time adds nothing", async () => {
    const lines: string[] = [];
    for (let i = 0; i < 60_000; i++) lines.push(`${1 + (i % 3000)},${100_000 + ((i * 7919) % 20_000)}`);
    lines.push("1,100000"); // a repeat
    const file = await csv(lines.join("\r\n") + "\r\n");
    const first = await importEdges(db.sql, file); // rebuild path (empty table)
    expect(first.rows).toBe(60_001);
    expect(first.added).toBe(await edgeCount());
    expect(first.duplicates).toBe(60_001 - first.added);
    const again = await importEdges(db.sql, file);
    expect(again).toMatchObject({ rows: 60_001, added: 0 });
    // a small file goes through the incremental path
    const small = await importEdges(db.sql, await csv("1,100000\n5,6\n5,6\n"));
    expect(small).toMatchObject({ rows: 3, added: 1, duplicates: 2 });
  });

  it("counts the repeats left out on the way in as duplicates, not as edges added", async () => {
    const before = await edgeCount();
    const lines: string[] = [];
    for (let f = 0; f < 2_000; f++) {
      for (let t = 0; t < 20; t++) lines.push(`${7_000_000 + f},${8_000_000 + t}`);
      lines.push(`${7_000_000 + f},${8_000_000 + (f % 20)}`); // the same follow again, in the same run
    }
    const result = await importEdges(db.sql, await csv(lines.join("\n") + "\n"));
    expect(result).toMatchObject({ rows: 42_000, added: 40_000, duplicates: 2_000 });
    expect(await edgeCount()).toBe(before + 40_000);
  });

  it("rebuilds in bulk when a large file holds no duplicates, keeping the edges already there", async () => {
    const before = await edgeCount();
    const lines = Array.from({ length: 40_000 }, (_, i) => `${5_000_000 + i},${6_000_000 + (i % 997)}`);
    const result = await importEdges(db.sql, await csv(lines.join("\n"))); // no final line break
    expect(result).toMatchObject({ rows: 40_000, added: 40_000, duplicates: 0 });
    expect(await edgeCount()).toBe(before + 40_000);
    const [fanIn] = await db.sql<{ n: number }[]>`select count(*)::int as n from x_follow where followed = 6000000`;
    expect(fanIn!.n).toBe(41); // served by the rebuilt (followed, follower) index
    // The rebuilt table keeps the migration's constraints.
    await expect(db.sql`insert into x_follow values (0, 1)`).rejects.toThrow(/check constraint/);
    await expect(db.sql`insert into x_follow values (5000000, 6000000)`).rejects.toThrow(/duplicate key/);
  });

  it("re-imports a whole dump with a few new edges as an increment: only those are added and matched", async () => {
    const a = await registerPerson(db.store, "5000001", { platform: "bluesky", stableId: "did:plc:dump-a", handle: "a.dump.example" });
    await registerPerson(db.store, "9100001", { platform: "fediverse", stableId: "https://dump.example/users/b", handle: "b@dump.example" });
    const before = await edgeCount();
    const lines = Array.from({ length: 40_000 }, (_, i) => `${5_000_000 + i},${6_000_000 + (i % 997)}`);
    lines.push("5000001,9100001", "5000002,9100002");
    const result = await importEdges(db.sql, await csv(lines.join("\n") + "\n"));
    expect(result).toMatchObject({ rows: 40_002, added: 2, duplicates: 40_000, matchesAdded: 1 });
    expect(await edgeCount()).toBe(before + 2);
    expect((await db.store.matches.counts(a.personId)).fediverse.pending).toBe(1);
  });

  it("creates matches for new edges between registered people", async () => {
    const a = await db.store.people.create();
    await db.store.identities.attach(a.id, { platform: "x", stableId: "900001", verifiedBy: "platform" });
    const b = await db.store.people.create();
    await db.store.identities.attach(b.id, { platform: "x", stableId: "900002", verifiedBy: "platform" });
    await db.store.identities.attach(b.id, { platform: "bluesky", stableId: "did:plc:b", verifiedBy: "platform" });
    const result = await importEdges(db.sql, await csv("900001,900002\n900002,900001\n"));
    expect(result.matchesAdded).toBe(1);
    expect((await db.store.matches.counts(a.id)).bluesky.pending).toBe(1);
  });

  const bad: [string, string, RegExp, string?][] = [
    ["a non-numeric id", "1,2\n3,abc\n", /line 3: followed_x_id must be a positive whole number.*"abc"/],
    ["a negative id", "1,2\n-3,4\n", /line 3: X account ids must be positive/],
    ["an id beyond 64 bits", "1,99999999999999999999\n", /line 2: followed_x_id must be a positive whole number/],
    // PostgreSQL reads these as numbers (hexadecimal 16, octal 15, binary 5, 1000): not X account ids as written.
    ["a hexadecimal id", "1,2\n0x10,4\n", /line 3: follower_x_id must be a positive whole number \(an X account id\), not "0x10"\.$/],
    ["an octal id", "1,0o17\n", /line 2: followed_x_id must be a positive whole number.*"0o17"/],
    ["a binary id", "1,2\r\n3,0b101\r\n", /line 3: followed_x_id must be a positive whole number.*"0b101"/],
    ["an id with an underscore", "1,1_000\n", /line 2: followed_x_id must be a positive whole number.*"1_000"/],
    ["an id with a space", "1, 2\n", /line 2: followed_x_id must be a positive whole number.*" 2"/],
    ["an id with a sign", "+1,2\n", /line 2: follower_x_id must be a positive whole number.*"\+1"/],
    ["a quoted hexadecimal id", '"1","2"\n"3","0x4"\n', /line 3: followed_x_id must be a positive whole number.*"0x4"/],
    ["letters in an extra column", "1,2,x\n", /line 2: the row has more columns than the header/],
    ["a missing column", "1,2\n3\n", /line 3: a column is missing/],
    ["an extra column", "1,2,3\n", /line 2: the row has more columns than the header/],
    ["an empty cell", "1,\n", /line 2: .*followed/],
    ["the wrong header", "1,2\n", /line 1: the header row is "follower,followed"/, "follower,followed"],
    ["registry columns", "1,a,,,,,,,\n", /line 1: the header row is "x_id,x_username/, "x_id,x_username,bluesky_did,bluesky_handle,fediverse_acct,language,notify,auto_reconnect,announce_me"],
  ];
  it("takes quoted ids as plain ones", async () => {
    const before = await edgeCount();
    const result = await importEdges(db.sql, await csv('"8800001","8800002"\n8800001,"8800003"\n'));
    expect(result).toMatchObject({ rows: 2, added: 2 });
    expect(await edgeCount()).toBe(before + 2);
  });

  it("names the file's own line of a bad row that comes after repeated lines left out on the way", async () => {
    const body = "7,1\n7,2\n7,1\n7,1\n8,1\n8,1\n8,x\n";
    const error = await importEdges(db.sql, await csv(body)).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/line 8: followed_x_id must be a positive whole number.*"x"/);
  });

  for (const [name, body, pattern, header] of bad) {
    it(`refuses ${name} with file and line, importing nothing`, async () => {
      const before = await edgeCount();
      const file = await csv(`${"10,20\n".repeat(20_000)}${body}`.replace(/^/, ""), header);
      const error = await importEdges(db.sql, file).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ImportError);
      const message = (error as Error).message.replace(/line (\d+)/, (_m, l: string) => `line ${Number(l) - 20_000}`);
      expect((error as Error).message).toContain(file);
      expect(header ? (error as Error).message : message).toMatch(pattern);
      expect(await edgeCount()).toBe(before);
    });
  }
});

describe("import edges in bulk into an empty store", () => {
  let empty: TestDatabase;
  beforeAll(async () => {
    empty = await createTestDatabase();
  });
  afterAll(async () => {
    await empty.drop();
  });

  const edgeRelations = async () =>
    (await empty.sql<{ name: string }[]>`select relname as name from pg_class where relname like 'x_follow%' order by 1`).map((r) => r.name);
  const edges = async () => (await empty.sql<{ n: number }[]>`select count(*)::int as n from x_follow`)[0]!.n;
  const bigFile = (base: number, count = 30_000) =>
    csv(Array.from({ length: count }, (_, i) => `${base + (i % 1000)},${base + 1_000_000 + i}`).join("\n") + "\n");

  it("takes nothing in when its last step (deriving the matches) fails, and succeeds once it can", async () => {
    const a = await registerPerson(empty.store, "100", { platform: "bluesky", stableId: "did:plc:late-a", handle: "a.late.example" });
    await registerPerson(empty.store, "1000000", { platform: "bluesky", stableId: "did:plc:late-b", handle: "b.late.example" });
    const file = await csv(["100,1000000", ...Array.from({ length: 30_000 }, (_, i) => `${200 + (i % 500)},${3_000_000 + i}`)].join("\n") + "\n");
    await empty.sql`alter table match add constraint refuse_all check (person_id < 0) not valid`;
    await expect(importEdges(empty.sql, file)).rejects.toThrow(/refuse_all/);
    expect(await edges()).toBe(0);
    expect(await edgeRelations()).toEqual(["x_follow", "x_follow_followed", "x_follow_pkey"]);
    await empty.sql`alter table match drop constraint refuse_all`;

    expect(await importEdges(empty.sql, file)).toMatchObject({ rows: 30_001, added: 30_001, matchesAdded: 1 });
    expect((await empty.store.matches.counts(a.personId)).bluesky.pending).toBe(1);
    expect(await edgeRelations()).toEqual(["x_follow", "x_follow_followed", "x_follow_pkey"]);
    await expect(empty.sql`insert into x_follow values (100, 1000000)`).rejects.toThrow(/x_follow_pkey/);
    await empty.sql`delete from x_follow`;
    await empty.sql`delete from match`;
  });

  it("runs two bulk imports started together without losing either", async () => {
    const [first, second] = await Promise.all([importEdges(empty.sql, await bigFile(20_000)), importEdges(empty.sql, await bigFile(40_000))]);
    expect(first.added + second.added).toBe(60_000);
    expect(await edges()).toBe(60_000);
    expect(await edgeRelations()).toEqual(["x_follow", "x_follow_followed", "x_follow_pkey"]);
  });

  it("runs a bulk and a small import started together without losing either", async () => {
    const before = await edges();
    const [bulk, small] = await Promise.all([importEdges(empty.sql, await bigFile(60_000, 40_000)), importEdges(empty.sql, await csv("7,8\n9,10\n"))]);
    expect(bulk.added + small.added).toBe(40_002);
    expect(await edges()).toBe(before + 40_002);
  });
});
