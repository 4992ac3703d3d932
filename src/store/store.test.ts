import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, TEST_SECRET_KEY, type TestDatabase } from "../../test/harness/database.ts";
import { connect, listMigrations, migrate, openDatabase } from "./database.ts";
import { IdentityTakenError, Store } from "./index.ts";
import { SecretBox } from "./secrets.ts";
import { Matches } from "./matches.ts";

let db: TestDatabase;
let store: Store;

beforeAll(async () => {
  db = await createTestDatabase();
  store = db.store;
});
afterAll(() => db.drop());

async function personWith(identities: { platform: "x" | "bluesky" | "fediverse"; stableId?: string; handle?: string; verifiedBy?: "platform" | "dm" | "archive" }[]) {
  const person = await store.people.create();
  for (const i of identities) await store.identities.attach(person.id, { verifiedBy: "platform", ...i });
  return person;
}

async function follow(follower: string, followed: string) {
  await db.sql`insert into x_follow values (${follower}, ${followed}) on conflict do nothing`;
}

describe("migrations", () => {
  it("apply once, even when several processes start together", async () => {
    const versions = (await listMigrations()).map((m) => m.version);
    // An empty database: the migrations are still to apply.
    const empty = await createTestDatabase({ migrate: false });
    const conns = [connect(empty.url, { max: 1 }), connect(empty.url, { max: 1 }), connect(empty.url, { max: 1 })];
    try {
      const applied = await Promise.all(conns.map((c) => migrate(c)));
      // Between them, each migration once: one call applies all, the others find nothing left.
      expect(applied.flat().sort((a, b) => a - b)).toEqual(versions);
      expect(applied.map((a) => a.length).sort((a, b) => a - b)).toEqual([0, 0, versions.length]);
      const rows = await conns[0]!<{ version: number }[]>`select version from schema_migration order by version`;
      expect(rows.map((r) => r.version)).toEqual(versions);
      // And the schema they made works (on a connection opened after it, as the service's are).
      const fresh = connect(empty.url, { max: 1 });
      try {
        const store = new Store(fresh, new SecretBox(TEST_SECRET_KEY));
        const person = await store.people.create();
        await store.identities.attach(person.id, { platform: "x", stableId: "42", verifiedBy: "platform" });
        expect((await store.findPerson({ platform: "x", stableId: "42" }))?.person.id).toBe(person.id);
      } finally {
        await fresh.end();
      }
    } finally {
      await Promise.all(conns.map((c) => c.end()));
      await empty.drop();
    }
  });

  it("leave the service's connections knowing the types they created (an enum array as a parameter)", async () => {
    // postgres.js learns array types when a connection opens: one opened
    // before the migrations would not know match_state[] and send a filter
    // by one state as a bare word ("malformed array literal").
    const fresh = await createTestDatabase({ migrate: false });
    const opened = await openDatabase({ databaseUrl: fresh.url, dataDir: "unused" });
    try {
      expect(opened.migrationsApplied.length).toBeGreaterThan(0);
      const page = await new Matches(opened.sql).list(1, "bluesky", { states: ["failed"] });
      expect(page.total).toBe(0);
    } finally {
      await opened.close();
      await fresh.drop();
    }
  });
});

describe("identities", () => {
  it("compare fediverse accts and instance names case-insensitively", async () => {
    const p = await personWith([{ platform: "fediverse", handle: "@Alice@Mastodon.Social" }]);
    const found = await store.findPerson({ platform: "fediverse", handle: "alice@MASTODON.social" });
    expect(found?.person.id).toBe(p.id);
    expect(found?.identities[0]?.handle).toBe("Alice@mastodon.social");
  });

  it("give an acct-only fediverse identity its actor URI when it writes", async () => {
    const p = await personWith([{ platform: "fediverse", handle: "bob@example.org" }]);
    const id = await store.identities.attach(p.id, {
      platform: "fediverse",
      stableId: "https://example.org/users/bob",
      handle: "Bob@Example.org",
      verifiedBy: "dm",
    });
    expect(id.stableId).toBe("https://example.org/users/bob");
    expect(id.verifiedBy).toBe("platform"); // never downgraded
    expect((await store.identities.listForPerson(p.id)).length).toBe(1);
  });

  it("refuse an identity that belongs to someone else", async () => {
    await personWith([{ platform: "bluesky", stableId: "did:plc:taken", handle: "taken.test" }]);
    const other = await store.people.create();
    await expect(
      store.identities.attach(other.id, { platform: "bluesky", stableId: "did:plc:taken", verifiedBy: "dm" }),
    ).rejects.toBeInstanceOf(IdentityTakenError);
  });

  it("let a verified owner take an X id over from an archive claim", async () => {
    const claimer = await personWith([{ platform: "x", stableId: "4242", verifiedBy: "archive" }]);
    const owner = await store.people.create();
    const id = await store.identities.attach(owner.id, { platform: "x", stableId: "4242", verifiedBy: "platform" });
    expect(id.personId).toBe(owner.id);
    expect(await store.identities.listForPerson(claimer.id)).toEqual([]);
  });
});

describe("matches", () => {
  it("are the verified people one followed on X, per platform, never archive claims", async () => {
    const alice = await personWith([{ platform: "x", stableId: "100" }, { platform: "fediverse", handle: "alice@a.example" }]);
    const bob = await personWith([{ platform: "x", stableId: "101" }, { platform: "bluesky", stableId: "did:plc:bob", handle: "bob.test" }]);
    const carol = await personWith([
      { platform: "x", stableId: "102" },
      { platform: "bluesky", stableId: "did:plc:carol", handle: "carol.test" },
      { platform: "fediverse", handle: "carol@c.example" },
    ]);
    // An impostor claims X account 103 through an archive: never a target.
    await personWith([{ platform: "x", stableId: "103", verifiedBy: "archive" }, { platform: "bluesky", stableId: "did:plc:imp", handle: "imp.test" }]);
    for (const t of ["101", "102", "103", "999"]) await follow("100", t);
    await store.matches.refreshForFollowers([alice.id]);
    const counts = await store.matches.counts(alice.id);
    expect(counts.bluesky.total).toBe(2);
    expect(counts.fediverse.total).toBe(1);
    const page = await store.matches.list(alice.id, "bluesky");
    expect(page.entries.map((e) => e.handle).sort()).toEqual(["bob.test", "carol.test"]);
    expect(page.entries.every((e) => e.state === "pending")).toBe(true);
    expect([bob.id, carol.id]).toContain(page.entries[0]!.targetPersonId);
  });

  it("fan out to the registered followers of an arrival", async () => {
    const star = await personWith([{ platform: "x", stableId: "200" }]);
    const fans = [];
    for (let i = 0; i < 5; i++) {
      const fan = await personWith([{ platform: "x", stableId: String(210 + i) }]);
      await follow(String(210 + i), "200");
      fans.push(fan.id);
    }
    await follow("777777", "200"); // not registered
    await follow("200", "200"); // self-follow is not a fan
    expect((await store.matches.registeredFollowersOf("200")).sort()).toEqual(fans.sort());
    // star arrives on Bluesky: every fan gets a match
    await store.identities.attach(star.id, { platform: "bluesky", stableId: "did:plc:star", verifiedBy: "dm" });
    expect(await store.matches.refreshForTargets([star.id])).toBe(5);
    expect((await store.matches.counts(fans[0]!)).bluesky.pending).toBe(1);
    expect((await store.matches.arrivalFollowers(star.id)).sort()).toEqual(fans.sort());
  });

  it("page through long lists", async () => {
    const reader = await personWith([{ platform: "x", stableId: "300" }]);
    for (let i = 0; i < 45; i++) {
      await personWith([{ platform: "x", stableId: String(3000 + i) }, { platform: "bluesky", stableId: `did:plc:p${i}`, handle: `p${i}.test` }]);
      await follow("300", String(3000 + i));
    }
    await store.matches.refreshForFollowers([reader.id]);
    const p1 = await store.matches.list(reader.id, "bluesky", { pageSize: 20 });
    const p3 = await store.matches.list(reader.id, "bluesky", { pageSize: 20, page: 3 });
    expect([p1.total, p1.pages, p1.entries.length, p3.entries.length]).toEqual([45, 3, 20, 5]);
    const all = new Set([...p1.entries, ...(await store.matches.list(reader.id, "bluesky", { pageSize: 20, page: 2 })).entries, ...p3.entries].map((e) => e.handle));
    expect(all.size).toBe(45);
    await store.matches.setState(reader.id, "bluesky", p1.entries[0]!.targetPersonId, "ignored");
    expect((await store.matches.list(reader.id, "bluesky")).total).toBe(44);
  });

  it("come in bulk with the table's indexes rebuilt, keeping existing ones and their state", async () => {
    const schema = async () =>
      db.sql<{ def: string }[]>`
        select pg_get_indexdef(indexrelid) as def from pg_index where indrelid = 'match'::regclass
        union all select conname || ' ' || pg_get_constraintdef(oid) from pg_constraint where conrelid = 'match'::regclass
        order by 1`;
    const before = await schema();
    const reader = await personWith([{ platform: "x", stableId: "9400" }]);
    const stars = [];
    for (let i = 0; i < 6; i++) {
      stars.push(await personWith([{ platform: "x", stableId: String(94000 + i) }, { platform: "fediverse", handle: `s${i}@s.example` }]));
      await follow("9400", String(94000 + i));
    }
    await store.matches.refreshForFollowers([reader.id]);
    await store.matches.setState(reader.id, "fediverse", stars[0]!.id, "followed");
    const fan = await personWith([{ platform: "x", stableId: "9401" }]);
    for (const star of ["94000", "94001"]) await follow("9401", star);

    // Bulk whatever the size: the fan's two matches are new, the reader's six are kept.
    const added = await db.sql.begin((tx) => new Matches(tx).refreshForEdges("x_follow", 1));
    expect(added).toBe(2);
    expect(await schema()).toEqual(before);
    expect((await store.matches.counts(fan.id)).fediverse.pending).toBe(2);
    expect((await store.matches.counts(reader.id)).fediverse).toMatchObject({ total: 6, followed: 1 });
    // The rebuilt primary key still refuses a repeat, and the foreign keys still cascade.
    await expect(db.sql`insert into match (person_id, platform, target_person_id) values (${fan.id}, 'fediverse', ${stars[0]!.id})`).rejects.toThrow(/duplicate key/);
    await store.forget(fan.id);
    expect((await store.matches.counts(fan.id)).fediverse.total).toBe(0);

    // With people in use elsewhere (a transaction reading them), the bulk path
    // keeps the foreign keys rather than wait for that transaction to end.
    const other = await db.sql.reserve();
    await other`begin`;
    await other`select count(*) from person`;
    const late = await personWith([{ platform: "x", stableId: "9402" }]);
    await follow("9402", "94002");
    const more = await db.sql.begin((tx) => new Matches(tx).refreshForEdges("x_follow", 1));
    await other`commit`;
    expect(more).toBe(1);
    expect((await store.matches.counts(late.id)).fediverse.pending).toBe(1);
    expect(await schema()).toEqual(before);

    // With matches themselves in use, it inserts the usual way, again without waiting.
    await other`begin`;
    await other`select count(*) from match`;
    const later = await personWith([{ platform: "x", stableId: "9403" }]);
    await follow("9403", "94003");
    const usual = await db.sql.begin((tx) => new Matches(tx).refreshForEdges("x_follow", 1));
    await other`commit`;
    other.release();
    expect(usual).toBe(1);
    expect((await store.matches.counts(later.id)).fediverse.pending).toBe(1);
    expect(await schema()).toEqual(before);
  });
});

describe("people", () => {
  it("merge without losing identities, matches or choices", async () => {
    const a = await personWith([{ platform: "x", stableId: "400" }]);
    const b = await personWith([{ platform: "bluesky", stableId: "did:plc:b400", handle: "b400.test" }]);
    const t = await personWith([{ platform: "x", stableId: "401" }, { platform: "fediverse", handle: "t@t.example" }]);
    await follow("400", "401");
    await store.people.updateSettings(a.id, { notify: false });
    await store.people.updateSettings(b.id, { language: "en", autoReconnect: true });
    await store.matches.refreshForFollowers([a.id]);
    await store.matches.setState(a.id, "fediverse", t.id, "followed");
    await store.mergePeople(b.id, a.id);
    const merged = await store.personView(b.id);
    expect(merged?.identities.map((i) => i.platform).sort()).toEqual(["bluesky", "x"]);
    expect(merged?.person).toMatchObject({ language: "en", notify: false, autoReconnect: true });
    expect((await store.matches.counts(b.id)).fediverse.followed).toBe(1);
    expect(await store.people.get(a.id)).toBeUndefined();
  });

  it("merge never undoes a `stop`: automatic reconnection stays off unless the stopped side turned it on again since", async () => {
    const stopped = await store.people.create();
    await store.people.stop(stopped.id);
    const eager = await store.people.create({ autoReconnect: true });
    await store.mergePeople(eager.id, stopped.id);
    expect(await store.people.get(eager.id)).toMatchObject({ notify: false, autoReconnect: false, announceMe: false });
    // Merged again with someone else who has it on: still stopped.
    const other = await store.people.create({ autoReconnect: true });
    await store.mergePeople(other.id, eager.id);
    expect(await store.people.get(other.id)).toMatchObject({ autoReconnect: false });
    // `auto on` after the stop is a choice made since: kept, and merged as an opt-in.
    await store.people.updateSettings(other.id, { autoReconnect: true });
    const third = await store.people.create();
    await store.mergePeople(third.id, other.id);
    expect(await store.people.get(third.id)).toMatchObject({ autoReconnect: true, notify: false });
  });

  it("merge never undoes a refusal to be named in public: announce-me needs both sides", async () => {
    const stopped = await store.people.create({ announceMe: false, notify: false });
    const agreed = await store.people.create({ announceMe: true });
    await store.mergePeople(agreed.id, stopped.id);
    expect(await store.people.get(agreed.id)).toMatchObject({ announceMe: false, notify: false });
    const both = [await store.people.create({ announceMe: true }), await store.people.create({ announceMe: true })] as const;
    await store.mergePeople(both[0].id, both[1].id);
    expect(await store.people.get(both[0].id)).toMatchObject({ announceMe: true, notify: true });
  });

  it("a post that named someone is taken back when they are forgotten, also after they were merged into another person", async () => {
    const named = await store.people.create({ announceMe: true });
    const other = await store.people.create({ announceMe: true });
    const window = { platform: "bluesky" as const, since: new Date("2026-01-01T00:00:00Z"), until: new Date("2026-01-01T01:00:00Z") };
    await db.sql`insert into announcement (platform, since, until) values ('bluesky', ${window.since}, ${window.until})`;
    await store.announcements.posted(window, { count: 2, named: [named.id] }, "at://did:plc:bot/app.bsky.feed.post/named");
    await store.mergePeople(other.id, named.id);
    expect(await store.announcements.claimRetraction("bluesky")).toBeUndefined();
    expect(await store.forget(other.id)).toBe(true);
    expect(await store.announcements.claimRetraction("bluesky")).toBe("at://did:plc:bot/app.bsky.feed.post/named");
    await store.announcements.retracted("bluesky", "at://did:plc:bot/app.bsky.feed.post/named");
  });

  it("a post recorded while someone it names is being forgotten is taken back, whichever commits first", async () => {
    const window = { platform: "bluesky" as const, since: new Date("2026-02-01T00:00:00Z"), until: new Date("2026-02-01T01:00:00Z") };
    await db.sql`insert into announcement (platform, since, until) values ('bluesky', ${window.since}, ${window.until})`;
    const p = await store.people.create({ announceMe: true });
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    // The forget has done its work but not committed when the post is recorded.
    const forgetting = store.transaction(async (s) => {
      await s.people.delete(p.id);
      await gate;
    });
    await new Promise((r) => setTimeout(r, 100));
    const recording = store.transaction((s) => s.announcements.posted(window, { count: 1, named: [p.id] }, "at://did:plc:bot/app.bsky.feed.post/race"));
    await new Promise((r) => setTimeout(r, 100));
    release();
    await Promise.all([forgetting, recording]);
    expect(await store.announcements.claimRetraction("bluesky")).toBe("at://did:plc:bot/app.bsky.feed.post/race");
    await store.announcements.retracted("bluesky", "at://did:plc:bot/app.bsky.feed.post/race");
  });

  it("forget deletes everything about a person", async () => {
    const p = await personWith([{ platform: "x", stableId: "500" }, { platform: "bluesky", stableId: "did:plc:p500" }]);
    const t = await personWith([{ platform: "x", stableId: "501" }, { platform: "bluesky", stableId: "did:plc:p501" }]);
    await follow("500", "501");
    await follow("501", "500");
    await store.matches.refreshForFollowers([p.id, t.id]);
    const [bsky] = (await store.identities.listForPerson(p.id)).filter((i) => i.platform === "bluesky");
    await store.authorizations.save(bsky!.id, "bluesky-app-password", { password: "hunter2" });
    await store.linkCodes.create(p.id);
    expect(await store.forget(p.id)).toBe(true);
    const left = await db.sql`
      select (select count(*) from identity where person_id = ${p.id})::int as identities,
             (select count(*) from match where person_id = ${p.id} or target_person_id = ${p.id})::int as matches,
             (select count(*) from x_follow where follower = 500)::int as edges,
             (select count(*) from account_authorization)::int as auths,
             (select count(*) from link_code where person_id = ${p.id})::int as codes`;
    expect(left[0]).toEqual({ identities: 0, matches: 0, edges: 0, auths: 0, codes: 0 });
  });
});

describe("authorizations", () => {
  it("are encrypted at rest and bound to their identity", async () => {
    const p = await personWith([{ platform: "bluesky", stableId: "did:plc:auth", handle: "auth.test" }]);
    const [identity] = await store.identities.listForPerson(p.id);
    await store.authorizations.save(identity!.id, "bluesky-app-password", { password: "very-secret-app-password" });
    const [raw] = await db.sql<{ payload: Buffer }[]>`select payload from account_authorization where identity_id = ${identity!.id}`;
    expect(raw!.payload.toString("latin1")).not.toContain("very-secret");
    expect((await store.authorizations.get<{ password: string }>(identity!.id))?.data.password).toBe("very-secret-app-password");
    // the same ciphertext moved to another row does not decrypt
    const q = await personWith([{ platform: "bluesky", stableId: "did:plc:auth2" }]);
    const [other] = await store.identities.listForPerson(q.id);
    await db.sql`insert into account_authorization (identity_id, kind, payload) values (${other!.id}, 'bluesky-app-password', ${raw!.payload})`;
    await expect(store.authorizations.get(other!.id)).rejects.toThrow();
  });

  it("tell a grant by the person from a renewal by the service, renew and delete only the grant named", async () => {
    const p = await personWith([{ platform: "bluesky", stableId: "did:plc:grant", handle: "grant.test" }]);
    const [identity] = await store.identities.listForPerson(p.id);
    const id = identity!.id;
    await store.authorizations.save(id, "bluesky-app-password", { session: 1 });
    const first = (await store.authorizations.grant(id))!;
    expect((await store.authorizations.get(id))!.grant).toBe(first);
    expect(await store.authorizations.renew(id, first, "bluesky-app-password", { session: 2 })).toBe(true);
    expect(await store.authorizations.grant(id)).toBe(first);
    await store.authorizations.save(id, "bluesky-app-password", { session: 3 });
    const second = (await store.authorizations.grant(id))!;
    expect(second).not.toBe(first);
    // A session refreshed by a job that started before the new grant does not overwrite it, nor bring back a deleted one.
    expect(await store.authorizations.renew(id, first, "bluesky-app-password", { session: 2 })).toBe(false);
    expect((await store.authorizations.get<{ session: number }>(id))!.data.session).toBe(3);
    expect(await store.authorizations.deleteGrant(id, first)).toBe(false);
    expect(await store.authorizations.deleteGrant(id, second)).toBe(true);
    expect(await store.authorizations.get(id)).toBeUndefined();
    expect(await store.authorizations.renew(id, second, "bluesky-app-password", { session: 4 })).toBe(false);
    expect(await store.authorizations.get(id)).toBeUndefined();
  });
});

describe("link codes", () => {
  it("are single use and expire", async () => {
    const p = await store.people.create();
    const { code } = await store.linkCodes.create(p.id, { platform: "bluesky" });
    expect(code).toMatch(/^[2-9A-HJ-NP-Z]{8}$/);
    const [a, b] = await Promise.all([store.linkCodes.redeem(code.toLowerCase()), store.linkCodes.redeem(code)]);
    expect([a, b].filter(Boolean)).toEqual([{ personId: p.id, platform: "bluesky", handle: null }]);
    const expired = await store.linkCodes.create(p.id, { ttlSeconds: -1 });
    expect(await store.linkCodes.redeem(expired.code)).toBeUndefined();
  });
});
