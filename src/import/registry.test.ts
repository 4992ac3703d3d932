import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { importEdges } from "./edges.ts";
import { importRegistry, REGISTRY_COLUMNS } from "./registry.ts";
import { ImportError } from "./types.ts";

let db: TestDatabase;
let dir: string;
beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), "registry-test-"));
});
afterAll(async () => {
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

const HEADER = REGISTRY_COLUMNS.join(",");
let n = 0;
async function csv(lines: string[], header = HEADER): Promise<string> {
  const file = path.join(dir, `registry-${++n}.csv`);
  await writeFile(file, [header, ...lines].join("\n") + "\n");
  return file;
}

async function snapshot() {
  const [row] = await db.sql`
    select (select count(*) from person)::int as people, (select count(*) from identity)::int as identities,
           (select count(*) from match)::int as matches, (select count(*) from x_follow)::int as edges`;
  return row;
}

describe("import registry", () => {
  it("creates people with trusted identities, once, and computes their matches", async () => {
    const edges = path.join(dir, "edges.csv");
    await writeFile(edges, "follower_x_id,followed_x_id\n11,12\n11,13\n12,11\n13,11\n");
    await importEdges(db.sql, edges);
    const file = await csv([
      "11,alice,did:plc:alice,Alice.bsky.social,,fr,true,false,true",
      '12,bob,,,"@Bob@Mastodon.Social",en,false,,',
      "13,carol,did:plc:carol,carol.example.com,carol@example.com,,,,",
    ]);
    const first = await importRegistry(db.sql, file);
    expect(first).toMatchObject({ rows: 3, peopleCreated: 3, peopleMerged: 0, identitiesAdded: 7 });
    // alice follows bob (fediverse) and carol (both); bob and carol follow alice (bluesky)
    expect(first.matchesAdded).toBe(5);
    const alice = await db.store.findPerson({ platform: "bluesky", handle: "alice.bsky.social" });
    expect(alice?.person).toMatchObject({ language: "fr", notify: true, autoReconnect: false, announceMe: true });
    expect(alice?.identities.every((i) => i.verifiedBy === "platform")).toBe(true);
    const bob = await db.store.findPerson({ platform: "fediverse", handle: "bob@mastodon.social" });
    expect(bob?.person).toMatchObject({ language: "en", notify: false });
    const aliceCounts = await db.store.matches.counts(alice!.person.id);
    expect([aliceCounts.bluesky.total, aliceCounts.fediverse.total]).toEqual([1, 2]);

    const before = await snapshot();
    const again = await importRegistry(db.sql, file);
    expect(again).toMatchObject({ peopleCreated: 0, peopleMerged: 0, identitiesAdded: 0, identitiesUpdated: 0, matchesAdded: 0 });
    expect(await snapshot()).toEqual(before);
  });

  it("keeps settings people chose, merges people the registry says are one, and overrides archive claims", async () => {
    const x = await db.store.people.create();
    await db.store.identities.attach(x.id, { platform: "x", stableId: "21", verifiedBy: "dm" });
    await db.store.people.updateSettings(x.id, { notify: false });
    const b = await db.store.people.create({ language: "en" });
    await db.store.identities.attach(b.id, { platform: "bluesky", stableId: "did:plc:dave", verifiedBy: "dm" });
    const impostor = await db.store.people.create();
    await db.store.identities.attach(impostor.id, { platform: "x", stableId: "22", verifiedBy: "archive" });
    const result = await importRegistry(db.sql, await csv(["21,dave,did:plc:dave,dave.test,,fr,true,true,false", "22,erin,,,erin@example.net,,,,"]));
    expect(result).toMatchObject({ peopleMerged: 1, peopleCreated: 1 });
    const dave = await db.store.findPerson({ platform: "x", stableId: "21" });
    expect(dave?.person).toMatchObject({ id: x.id, notify: false, language: "en" });
    expect(dave?.identities.map((i) => i.platform).sort()).toEqual(["bluesky", "x"]);
    const erin = await db.store.findPerson({ platform: "x", stableId: "22" });
    expect(erin?.person.id).not.toBe(impostor.id);
    expect(erin?.identities.find((i) => i.platform === "x")?.verifiedBy).toBe("platform");
    expect(await db.store.identities.listForPerson(impostor.id)).toEqual([]);
  });

  it("gives a person the one Bluesky or fediverse account a later export names, replacing the one they had (its authorization queued for revocation)", async () => {
    await importRegistry(db.sql, await csv(["501,alice,did:plc:old501,alice-old.bsky.social,alice@old.example,,,,"]));
    const before = (await db.store.findPerson({ platform: "x", stableId: "501" }))!;
    const oldBluesky = before.identities.find((i) => i.platform === "bluesky")!;
    const oldFediverse = before.identities.find((i) => i.platform === "fediverse")!;
    await db.store.authorizations.save(oldBluesky.id, "bluesky-app-password", { session: 1 });
    await db.store.authorizations.save(oldFediverse.id, "mastodon-oauth", { accessToken: "old-token" });
    await db.sql`delete from authorization_revocation`;
    const result = await importRegistry(db.sql, await csv(["501,alice,did:plc:new501,alice.bsky.social,alice@new.example,,,,"]));
    expect(result).toMatchObject({ identitiesAdded: 2, identitiesReplaced: 2 });
    const after = (await db.store.findPerson({ platform: "x", stableId: "501" }))!;
    expect(after.identities.filter((i) => i.platform === "bluesky").map((i) => i.stableId)).toEqual(["did:plc:new501"]);
    expect(after.identities.filter((i) => i.platform === "fediverse").map((i) => i.handle)).toEqual(["alice@new.example"]);
    expect(await db.store.authorizations.get(oldBluesky.id)).toBeUndefined();
    // Both tokens still work at their servers: the service revokes them there.
    const queued = await db.store.revocations.claimDue();
    expect(queued.map((r) => ({ kind: r.kind, data: r.unreadable ? undefined : r.data })).sort((a, b) => a.kind.localeCompare(b.kind))).toEqual([
      { kind: "bluesky-app-password", data: { session: 1 } },
      { kind: "mastodon-oauth", data: { accessToken: "old-token" } },
    ]);
    for (const r of queued) await db.store.revocations.done(r.id);
    // A row that names no account on a platform leaves that platform's account alone.
    await importRegistry(db.sql, await csv(["501,alice,,,,,,,"]));
    expect((await db.store.findPerson({ platform: "x", stableId: "501" }))!.identities).toHaveLength(3);
  });

  it("keeps one account per platform when it merges two people who each had one there: the one its row names", async () => {
    const a = await db.store.people.create();
    await db.store.identities.attach(a.id, { platform: "x", stableId: "511", verifiedBy: "dm" });
    await db.store.identities.attach(a.id, { platform: "bluesky", stableId: "did:plc:a511", verifiedBy: "dm" });
    const b = await db.store.people.create();
    await db.store.identities.attach(b.id, { platform: "fediverse", stableId: "https://b.example/users/b", handle: "b@b.example", verifiedBy: "dm" });
    await db.store.identities.attach(b.id, { platform: "bluesky", stableId: "did:plc:b511", verifiedBy: "dm" });
    const result = await importRegistry(db.sql, await csv(["511,,did:plc:b511,,b@b.example,,,,"]));
    expect(result).toMatchObject({ peopleMerged: 1, identitiesReplaced: 1 });
    const merged = (await db.store.findPerson({ platform: "x", stableId: "511" }))!;
    expect(merged.identities.map((i) => `${i.platform} ${i.stableId}`).sort()).toEqual([
      "bluesky did:plc:b511", "fediverse https://b.example/users/b", "x 511",
    ]);
  });

  it("merges chains of people (a row joins two, another row one of them with a third) into one, whatever the order", async () => {
    // Two chains, one written in each direction, so that one of them is met
    // in the order where the first merge drops the person the second keeps.
    const chain = async (base: number) => {
      const ids: number[] = [];
      for (let i = 0; i < 3; i++) {
        const p = await db.store.people.create();
        await db.store.identities.attach(p.id, { platform: "x", stableId: String(base + i), verifiedBy: "dm" });
        await db.store.identities.attach(p.id, { platform: "bluesky", stableId: `did:plc:chain${base + i}`, verifiedBy: "dm" });
        ids.push(p.id);
      }
      return ids;
    };
    const a = await chain(4100);
    const b = await chain(4200);
    const result = await importRegistry(db.sql, await csv([
      "4100,,did:plc:chain4101,,,,,,", // a0 + a1
      "4101,,did:plc:chain4102,,,,,,", // a1 + a2
      "4201,,did:plc:chain4202,,,,,,", // b1 + b2
      "4200,,did:plc:chain4201,,,,,,", // b0 + b1
    ]));
    expect(result.peopleMerged).toBe(4);
    for (const [chainIds, base] of [[a, 4100], [b, 4200]] as const) {
      const owners = new Set<number>();
      for (let i = 0; i < 3; i++) owners.add((await db.store.findPerson({ platform: "x", stableId: String(base + i) }))!.person.id);
      expect([...owners]).toEqual([Math.min(...chainIds)]);
    }
  });

  const bad: [string, string[], RegExp, string?][] = [
    ["wrong header", ["1,a,,,,,,,"], /line 1: the header row is "x_id,username/, "x_id,username,bluesky_did,bluesky_handle,fediverse_acct,language,notify,auto_reconnect,announce_me"],
    ["missing columns", ["31,a,,,,,,,", "32,b,,"], /line 3: has 4 columns; the header has 9/],
    ["non-numeric id", ["31,a,,,,,,,", "3x2,b,,,,,,,"], /line 3: x_id must be a positive whole number.*"3x2"/],
    ["negative id", ["-5,a,,,,,,,"], /line 2: x_id must be a positive whole number/],
    ["id over 64 bits", ["99999999999999999999,a,,,,,,,"], /line 2: x_id must be/],
    ["bad did", [",,plc:abc,,,,,,"], /line 2: bluesky_did "plc:abc" is not a DID/],
    ["bad acct", [",,,,https://mastodon.social/@a,,,,"], /line 2: fediverse_acct .* is not an account address/],
    ["no identity", [",,,,,fr,true,,"], /line 2: has no identity/],
    ["bad boolean", ["31,a,,,,,maybe,,"], /line 2: notify must be true or false, not "maybe"/],
    ["bad language", ["31,a,,,,french,,,"], /line 2: language must be a two-letter code/],
    ["duplicate identity", ["31,a,,,,,,,", "32,b,,,,,,,", "31,c,,,,,,,"], /line 4: x_id 31 is also on line 2/],
    ["unclosed quote", ['31,"a,,,,,,,', "32,b,,,,,,,"], /line \d+: is not valid CSV/],
  ];
  for (const [name, lines, pattern, header] of bad) {
    it(`refuses ${name} with the file and line, changing nothing`, async () => {
      const before = await snapshot();
      const file = await csv(lines, header);
      const error = await importRegistry(db.sql, file).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ImportError);
      expect((error as Error).message).toContain(file);
      expect((error as Error).message).toMatch(pattern);
      expect(await snapshot()).toEqual(before);
    });
  }

  it("takes nothing in when it fails inside its transaction, after merging and creating people, and succeeds once it can", async () => {
    // Everything a failed import could have touched, row by row.
    const state = async () => {
      const [row] = await db.sql`
        select (select coalesce(json_agg(p order by p.id), '[]') from person p) as people,
               (select coalesce(json_agg(i order by i.id), '[]') from identity i) as identities,
               (select coalesce(json_agg(m order by m.person_id, m.target_person_id, m.platform), '[]') from match m) as matches`;
      return row;
    };
    const x = await db.store.people.create();
    await db.store.identities.attach(x.id, { platform: "x", stableId: "5101", verifiedBy: "dm" });
    const b = await db.store.people.create();
    await db.store.identities.attach(b.id, { platform: "bluesky", stableId: "did:plc:mid5101", verifiedBy: "dm" });
    const edges = path.join(dir, "mid-edges.csv");
    await writeFile(edges, "follower_x_id,followed_x_id\n5102,5101\n");
    await importEdges(db.sql, edges);
    // Row 1 says x and b are one person; row 2 is someone new who followed them on X.
    const file = await csv(["5101,,did:plc:mid5101,,,,,,", "5102,newbie,,,newbie@mid.example,,,,"]);
    const before = await state();
    const phases: string[] = [];
    const progress = { phase: (name: string) => void phases.push(name), tick() {}, end() {} };
    // The last step (deriving matches) fails: by then people were merged, created and given identities.
    await db.sql`alter table match add constraint refuse_all check (person_id < 0) not valid`;
    try {
      await expect(importRegistry(db.sql, file, { progress })).rejects.toThrow(/refuse_all/);
    } finally {
      await db.sql`alter table match drop constraint refuse_all`;
    }
    expect(phases).toEqual(["checking rows", "loading", "resolving people", "identities", "matching"]);
    expect(await state()).toEqual(before);
    expect(await db.sql`select 1 from pg_class where relname in ('registry_import', 'registry_owner')`).toHaveLength(0);

    expect(await importRegistry(db.sql, file)).toMatchObject({ rows: 2, peopleMerged: 1, peopleCreated: 1, matchesAdded: 1 });
    expect((await db.store.findPerson({ platform: "bluesky", stableId: "did:plc:mid5101" }))?.person.id).toBe(x.id);
  });

  it("refuses a file larger than a registry of people could be (a sparse 2 GB file) before reading it, changing nothing", async () => {
    const before = await snapshot();
    const huge = path.join(dir, "huge.csv");
    const handle = await open(huge, "w");
    await handle.write(`${HEADER}\n5201,a,,,,,,,\n`);
    await handle.truncate(2 * 1024 * 1024 * 1024);
    await handle.close();
    const started = performance.now();
    const error = await importRegistry(db.sql, huge).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImportError);
    expect((error as Error).message).toBe(`${huge}: is 2,048 MB, more than the 256 MB a registry import reads; split it into smaller files.`);
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(await snapshot()).toEqual(before);
  });

  it("refuses more rows than its limit, naming the first line past it", async () => {
    const before = await snapshot();
    const file = await csv(["5301,a,,,,,,,", "5302,b,,,,,,,", "5303,c,,,,,,,"]);
    const error = await importRegistry(db.sql, file, { limits: { maxRows: 2 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImportError);
    expect((error as Error).message).toBe(`${file}, line 4: is past the 2 rows a registry import reads; split the file into smaller ones.`);
    expect(await snapshot()).toEqual(before);
    expect(await importRegistry(db.sql, file, { limits: { maxRows: 3 } })).toMatchObject({ rows: 3, peopleCreated: 3 });
  });

  it("refuses empty files, missing files and binary files", async () => {
    const empty = path.join(dir, "empty.csv");
    await writeFile(empty, "");
    await expect(importRegistry(db.sql, empty)).rejects.toThrow(/empty\.csv, line 1: is empty/);
    await expect(importRegistry(db.sql, path.join(dir, "nope.csv"))).rejects.toThrow(/nope\.csv: cannot be read/);
    const binary = path.join(dir, "binary.csv");
    await writeFile(binary, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0xff, 0xfe, 10, 1, 2]));
    await expect(importRegistry(db.sql, binary)).rejects.toThrow(/binary\.csv, line 1: is not UTF-8 text/);
  });
});
