import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importEdges } from "../import/edges.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { registerPerson } from "../../test/harness/graph.ts";

let db: TestDatabase;
let nextX = 500_000;
const xId = () => String(++nextX);

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

/** A registered person on Bluesky (X + Bluesky identities, verified by the platform). */
async function person(name: string, settings: { notify?: boolean; autoReconnect?: boolean } = {}) {
  const x = xId();
  const { personId, identityId } = await registerPerson(db.store, x, { platform: "bluesky", stableId: `did:plc:${name}${x}`, handle: `${name}.test` });
  if (Object.keys(settings).length > 0) await db.store.people.updateSettings(personId, settings);
  return { personId, identityId, x };
}

/** `follower` followed `followed` on X; the matches are brought up to date as an import would. */
async function follows(follower: { x: string; personId: number }, followed: { x: string; personId: number }) {
  await db.sql`insert into x_follow values (${follower.x}, ${followed.x}) on conflict do nothing`;
  await db.store.matches.refreshForFollowers([follower.personId]);
}

describe("Arrivals", () => {
  it("tells an arrival once; matches made by the person's own registration are not news (they go in told)", async () => {
    const early = await person("early");
    const paula = await person("paula");
    await follows(paula, early); // early was here before paula: not news to her
    const late = await person("late");
    await follows(paula, late); // late arrived after paula joined

    const [untold] = await db.sql<{ n: number }[]>`select count(*)::int as n from match where person_id = ${paula.personId} and notified_at is null`;
    expect(untold!.n).toBe(1); // only the arrival waits to be told
    const first = await db.store.arrivals.claim(paula.personId, new Date());
    expect(first).toEqual([{ platform: "bluesky", targetPersonId: late.personId, handle: "late.test" }]);
    expect(await db.store.arrivals.claim(paula.personId, new Date())).toEqual([]);
    const [row] = await db.sql<{ untold: number }[]>`select count(*)::int as untold from match where person_id = ${paula.personId} and notified_at is null`;
    expect(row!.untold).toBe(0);
  });

  it("never gives the same arrival to two claimants at once", async () => {
    const quinn = await person("quinn");
    const arrivals = [];
    for (let i = 0; i < 20; i++) arrivals.push(await person(`q${i}`));
    for (const a of arrivals) await follows(quinn, a);
    const claims = await Promise.all(Array.from({ length: 4 }, (_, i) => db.store.arrivals.claim(quinn.personId, new Date(Date.now() + i))));
    expect(claims.map((c) => c.length).sort((a, b) => a - b)).toEqual([0, 0, 0, 20]);
  });

  it("gives back an undelivered claim, and skips people who turned notifications off", async () => {
    const rita = await person("rita");
    const silent = await person("silent", { notify: false });
    const arrival = await person("arrival");
    await follows(rita, arrival);
    await follows(silent, arrival);
    const stamp = new Date();
    expect(await db.store.arrivals.claim(rita.personId, stamp)).toHaveLength(1);
    expect(await db.store.arrivals.release(rita.personId, stamp)).toBe(1);

    expect(await db.store.arrivals.skipUnwanted()).toBeGreaterThanOrEqual(1);
    const due = await db.store.arrivals.peopleWithUntold(0, 1000);
    expect(due).toContain(rita.personId);
    expect(due).not.toContain(silent.personId);
    expect(await db.store.arrivals.claim(silent.personId, new Date())).toEqual([]);
  });

  it("claims nothing for a person who said stop after the run listed them", async () => {
    const tess = await person("tess");
    const arrival = await person("arrival");
    await follows(tess, arrival);
    expect(await db.store.arrivals.peopleWithUntold(0, 1000)).toContain(tess.personId);
    await db.store.people.updateSettings(tess.personId, { notify: false });
    expect(await db.store.arrivals.claim(tess.personId, new Date())).toEqual([]);
  });

  it("leaves out platforms where automatic reconnection follows arrivals for the person", async () => {
    const sam = await person("sam", { autoReconnect: true });
    await db.store.authorizations.save(sam.identityId, "bluesky-app-password", { identifier: "sam.test", password: "abcd-efgh-ijkl-mnop" });
    const arrival = await person("newcomer");
    await follows(sam, arrival);
    expect(await db.store.arrivals.claim(sam.personId, new Date())).toEqual([]);
  });

  it("keeps a match told when its people are merged (a new account linked to a known one)", async () => {
    const tess = await person("tess");
    const star = await person("star");
    await follows(tess, star);
    expect(await db.store.arrivals.claim(tess.personId, new Date())).toHaveLength(1);
    // star writes from a new Mastodon account and links it to the known one: the kept person is the new one.
    const newcomer = await db.store.people.create();
    await db.store.identities.attach(newcomer.id, { platform: "fediverse", stableId: "https://mastodon.example/users/star", handle: "star@mastodon.example", verifiedBy: "dm" });
    await db.store.mergePeople(newcomer.id, star.personId);
    // Told on Bluesky already; on Mastodon star is news.
    expect(await db.store.arrivals.claim(tess.personId, new Date())).toEqual([
      { platform: "fediverse", targetPersonId: newcomer.id, handle: "star@mastodon.example" },
    ]);
  });

  it("finds people to tell past a run of people who turned notifications off after the run began", async () => {
    const off = [await person("off1"), await person("off2"), await person("off3")];
    const uma = await person("uma");
    const late = await person("lateComer");
    for (const o of off) await follows(o, late);
    await follows(uma, late);
    for (const o of off) await db.store.people.updateSettings(o.personId, { notify: false });
    const first = off[0]!.personId - 1;
    expect(await db.store.arrivals.peopleWithUntold(first, 1)).toEqual([uma.personId]);
  });

  it("never announces matches an edge import makes: those people were here already", async () => {
    const vera = await person("vera");
    const wade = await person("wade");
    const dir = await mkdtemp(path.join(tmpdir(), "arrivals-"));
    try {
      const file = path.join(dir, "edges.csv");
      await writeFile(file, `follower_x_id,followed_x_id\n${vera.x},${wade.x}\n`);
      expect((await importEdges(db.sql, file)).matchesAdded).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(await db.store.arrivals.claim(vera.personId, new Date())).toEqual([]);
    const [row] = await db.sql<{ told: boolean }[]>`select notified_at is not null as told from match where person_id = ${vera.personId}`;
    expect(row!.told).toBe(true);
  });

  it("counts an X account known from an archive as arriving when the registration platform verifies it", async () => {
    const theo = (await db.store.people.create()).id;
    const theoX = xId();
    await db.store.identities.attach(theo, { platform: "bluesky", stableId: "did:plc:theo", handle: "theo.test", verifiedBy: "dm" });
    await db.store.identities.attach(theo, { platform: "x", stableId: theoX, handle: "theo_x", verifiedBy: "archive" });
    const pia = await person("pia");
    await follows(pia, { x: theoX, personId: theo });
    expect(await db.store.arrivals.claim(pia.personId, new Date())).toEqual([]); // an archive claim is no match target
    await db.store.identities.attach(theo, { platform: "x", stableId: theoX, handle: "theo_x", verifiedBy: "platform" });
    await db.store.matches.refreshForTargets([theo]);
    expect(await db.store.arrivals.claim(pia.personId, new Date())).toEqual([{ platform: "bluesky", targetPersonId: theo, handle: "theo.test" }]);
  });

  it("tells an arrival once, however often its person unlinks and links the same account again", async () => {
    const yan = await person("yan");
    const zoe = await person("zoe");
    await follows(yan, zoe);
    expect(await db.store.arrivals.claim(yan.personId, new Date())).toEqual([{ platform: "bluesky", targetPersonId: zoe.personId, handle: "zoe.test" }]);
    const account = (await db.store.identities.get(zoe.identityId))!;
    let linked = account.id;
    for (let i = 0; i < 2; i++) {
      // Unlinked (the match resting on it goes), then linked again: a new identity row, verified now.
      expect(await db.store.unlink(linked)).toBe(true);
      linked = await db.store.transaction(async (s) => {
        const again = await s.identities.attach(zoe.personId, { platform: "bluesky", stableId: account.stableId!, handle: "zoe.test", verifiedBy: "dm" });
        await s.matches.refreshForTargets([zoe.personId]);
        return again.id;
      });
      expect(await db.store.arrivals.peopleWithUntold(0, 100_000)).toContain(yan.personId);
      expect(await db.store.arrivals.claim(yan.personId, new Date())).toEqual([]);
    }
    // Their first arrival on Bluesky is kept, not moved to the new link.
    const [row] = await db.sql<{ later: boolean }[]>`
      select a.arrived_at < (select verified_at from identity where person_id = ${zoe.personId} and platform = 'bluesky') as later
      from arrival a where a.person_id = ${zoe.personId} and a.platform = 'bluesky'`;
    expect(row!.later).toBe(true);
  });

  it("is no news when someone who was here before the person joined links their account again", async () => {
    const old = await person("old");
    const ned = await person("ned");
    await follows(ned, old); // old was here first: told without a word
    const account = (await db.store.identities.get(old.identityId))!;
    expect(await db.store.unlink(account.id)).toBe(true);
    await db.store.transaction(async (s) => {
      await s.identities.attach(old.personId, { platform: "bluesky", stableId: account.stableId!, handle: "old.test", verifiedBy: "dm" });
      await s.matches.refreshForTargets([old.personId]);
    });
    expect(await db.store.arrivals.claim(ned.personId, new Date())).toEqual([]);
  });

  it("takes a forgotten person's arrival with them: registering again is arriving again", async () => {
    const ola = await person("ola");
    const pat = await person("pat");
    await follows(ola, pat);
    expect(await db.store.arrivals.claim(ola.personId, new Date())).toHaveLength(1);
    const account = (await db.store.identities.get(pat.identityId))!;
    expect(await db.store.erase(pat.personId)).toBe(true);
    const [left] = await db.sql<{ n: number }[]>`
      select (select count(*) from arrival where person_id = ${pat.personId})::int
           + (select count(*) from arrival_told where person_id = ${pat.personId} or target_person_id = ${pat.personId})::int as n`;
    expect(left!.n).toBe(0);
    // Same X and Bluesky accounts, a new person.
    const again = await registerPerson(db.store, pat.x, { platform: "bluesky", stableId: account.stableId!, handle: "pat.test" });
    await db.sql`insert into x_follow values (${ola.x}, ${pat.x}) on conflict do nothing`;
    await db.store.matches.refreshForTargets([again.personId]);
    expect(await db.store.arrivals.claim(ola.personId, new Date())).toEqual([{ platform: "bluesky", targetPersonId: again.personId, handle: "pat.test" }]);
  });

  it("gives back exactly what a claim told: the arrivals are news again, once", async () => {
    const quin = await person("quin");
    const rex = await person("rex");
    await follows(quin, rex);
    const stamp = new Date();
    const claimed = await db.store.arrivals.claim(quin.personId, stamp);
    expect(claimed).toHaveLength(1);
    expect(await db.store.arrivals.release(quin.personId, stamp, claimed)).toBe(1);
    expect(await db.store.arrivals.claim(quin.personId, new Date(stamp.getTime() + 1))).toEqual(claimed);
    expect(await db.store.arrivals.claim(quin.personId, new Date(stamp.getTime() + 2))).toEqual([]);
  });

  it("records a person's first arrival on each platform when the identities first belong to them, and keeps it", async () => {
    const arrivals = async (personId: number) =>
      db.sql<{ platform: string; at: Date }[]>`select platform, arrived_at as at from arrival where person_id = ${personId} order by platform`;
    const wyn = (await db.store.people.create()).id;
    const wynX = xId();
    await db.store.identities.attach(wyn, { platform: "bluesky", stableId: `did:plc:wyn${wynX}`, handle: "wyn.test", verifiedBy: "dm" });
    await db.store.identities.attach(wyn, { platform: "x", stableId: wynX, verifiedBy: "archive" });
    expect(await arrivals(wyn)).toEqual([]); // an archive's claim is no arrival
    const x = await db.store.identities.attach(wyn, { platform: "x", stableId: wynX, verifiedBy: "platform" });
    const [bluesky] = await arrivals(wyn);
    const [verified] = await db.sql<{ at: Date }[]>`select verified_at as at from identity where id = ${x.id}`;
    expect(bluesky).toEqual({ platform: "bluesky", at: verified!.at });
    // A Mastodon account of theirs, known as another person, joins them: they arrive there then.
    const other = (await db.store.people.create()).id;
    await db.store.identities.attach(other, { platform: "fediverse", stableId: `https://m.example/users/wyn${wynX}`, handle: `wyn${wynX}@m.example`, verifiedBy: "dm" });
    await db.store.mergePeople(wyn, other);
    expect((await arrivals(wyn)).map((a) => a.platform)).toEqual(["bluesky", "fediverse"]);
    // Unlinking X and linking it again moves neither.
    const before = await arrivals(wyn);
    expect(await db.store.unlink(x.id)).toBe(true);
    await db.store.identities.attach(wyn, { platform: "x", stableId: wynX, verifiedBy: "dm" });
    expect(await arrivals(wyn)).toEqual(before);
  });

  it("keeps what either person was told, and was told about either, when two people are merged", async () => {
    const abe = await person("abe");
    const bea = await person("bea");
    await follows(abe, bea);
    expect(await db.store.arrivals.claim(abe.personId, new Date())).toHaveLength(1);
    // bea's Bluesky account, known as another person (as a merge leaves things before it deletes them).
    const kept = (await db.store.people.create()).id;
    await db.store.arrivals.merge(kept, bea.personId);
    const [row] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from arrival_told where person_id = ${abe.personId} and platform = 'bluesky' and target_person_id = ${kept}`;
    expect(row!.n).toBe(1);
    const [arrived] = await db.sql<{ same: boolean }[]>`
      select k.arrived_at = d.arrived_at as same from arrival k, arrival d
      where k.person_id = ${kept} and d.person_id = ${bea.personId} and k.platform = 'bluesky' and d.platform = 'bluesky'`;
    expect(arrived!.same).toBe(true);
  });

  it("keeps them through a merge of people (the store's, not only this class's)", async () => {
    const cal = await person("cal");
    const dee = await person("dee");
    await follows(cal, dee);
    expect(await db.store.arrivals.claim(cal.personId, new Date())).toHaveLength(1);
    const kept = (await db.store.people.create()).id;
    await db.store.mergePeople(kept, dee.personId);
    const [row] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from arrival_told where person_id = ${cal.personId} and target_person_id = ${kept}`;
    expect(row!.n).toBe(1);
    expect(await db.store.arrivals.claim(cal.personId, new Date())).toHaveLength(0);
  });

  it("new matches start untold; the ones there before the migration count as told", async () => {
    const [column] = await db.sql<{ column_default: string | null }[]>`
      select column_default from information_schema.columns where table_name = 'match' and column_name = 'notified_at'`;
    expect(column!.column_default).toBeNull();
  });
});
