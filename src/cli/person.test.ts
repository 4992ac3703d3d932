import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { formatPersonReport, personReport, PersonRefError, resolvePerson } from "./person.ts";

let db: TestDatabase;
let ann: number;
let ben: number;
beforeAll(async () => {
  db = await createTestDatabase();
  ann = (await db.store.people.create({ language: "fr", announceMe: true })).id;
  await db.store.identities.attach(ann, { platform: "x", stableId: "501", handle: "Ann", verifiedBy: "platform" });
  await db.store.identities.attach(ann, { platform: "bluesky", stableId: "did:plc:ann", handle: "ann.test", verifiedBy: "platform" });
  ben = (await db.store.people.create()).id;
  await db.store.identities.attach(ben, { platform: "x", stableId: "502", handle: "ben", verifiedBy: "platform" });
  await db.store.identities.attach(ben, { platform: "fediverse", stableId: "https://ben.example/users/ben", handle: "ben@ben.example", verifiedBy: "platform" });
});
afterAll(() => db.drop());

describe("resolvePerson", () => {
  it("finds a person by id or by any identity, in the forms people write them", async () => {
    const cases: [string, number][] = [
      [String(ann), ann],
      ["x:501", ann],
      ["x:@ANN", ann],
      ["x:ann", ann],
      ["bluesky:did:plc:ann", ann],
      ["bluesky:@Ann.Test", ann],
      ["did:plc:ann", ann],
      ["ann.test", ann],
      ["https://bsky.app/profile/ann.test", ann],
      ["fediverse:ben@BEN.example", ben],
      ["mastodon:@ben@ben.example", ben],
      ["@ben@ben.example", ben],
      ["fediverse:https://ben.example/users/ben", ben],
      ["https://ben.example/users/ben", ben],
      ["https://ben.example/@ben", ben],
    ];
    for (const [ref, id] of cases) expect([ref, await resolvePerson(db.store, ref)]).toEqual([ref, id]);
  });

  it("says in one sentence when nobody matches, or the reference cannot be read", async () => {
    await expect(resolvePerson(db.store, "99999")).rejects.toThrow(new PersonRefError("No person 99999 in the store."));
    await expect(resolvePerson(db.store, "bluesky:nobody.test")).rejects.toThrow(
      new PersonRefError('Nobody in the store has the bluesky account "nobody.test".'),
    );
    await expect(resolvePerson(db.store, "x:999")).rejects.toThrow(/Nobody in the store has the x account "999"/);
    await expect(resolvePerson(db.store, "myspace:tom")).rejects.toThrow(PersonRefError);
    await expect(resolvePerson(db.store, "")).rejects.toThrow(/a person id .* or an account/);
    await expect(resolvePerson(db.store, "x:not a name")).rejects.toThrow(PersonRefError);
  });

  it("takes a number too large for a person id as a person id that does not exist, and says how to name an X account", async () => {
    for (const id of ["2147483648", "1234567890123", "99999999999999999999999"]) {
      await expect(resolvePerson(db.store, id)).rejects.toThrow(
        new PersonRefError(`No person ${id} in the store (person ids are below 2147483648); for the X account ${id}, write x:${id}.`),
      );
    }
    expect(await resolvePerson(db.store, "x:501")).toBe(ann);
  });
});

describe("personReport", () => {
  it("tells what the store holds about a person, tokens left out", async () => {
    await db.store.authorizations.save((await db.store.identities.find({ platform: "bluesky", stableId: "did:plc:ann" }))!.id,
      "bluesky-app-password", { identifier: "ann.test", appPassword: "secret-app-password" });
    await db.sql`insert into x_follow (follower, followed) values (501, 502)`;
    await db.store.matches.refreshForFollowers([ann]);
    const report = await personReport(db.store, ann);
    expect(report).toMatchObject({
      id: ann,
      settings: { language: "fr", notify: true, autoReconnect: false, announceMe: true },
      identities: [
        { platform: "bluesky", stableId: "did:plc:ann", handle: "ann.test", authorization: { kind: "bluesky-app-password" } },
        { platform: "x", stableId: "501", handle: "Ann", verifiedBy: "platform", authorization: null },
      ],
      followedOnX: 1,
      matches: { fediverse: { pending: 1, total: 1 }, bluesky: { total: 0 } },
      jobs: [],
    });
    const text = formatPersonReport(report);
    expect(text).toMatch(new RegExp(`^person ${ann}, since \\d{4}-\\d\\d-\\d\\d`));
    expect(text).toMatch(/language fr, notify on, auto-reconnect off, announce me on/);
    expect(text).toMatch(/bluesky\s+@ann\.test\s+did:plc:ann\s+verified by platform, authorized \(bluesky-app-password, granted \d{4}-/);
    expect(text).toMatch(/fediverse\s+pending 1\b.*total 1/);
    expect(JSON.stringify(report) + text).not.toContain("secret-app-password");
  });
});
