/**
 * `unlink` on a real store: whatever arrives at once, a person always keeps
 * an account the bots can write to (X alone can neither be reached nor
 * forgotten).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import type { ReconnectService } from "../reconnect/service.ts";
import { allText, blueskySender, fediverseSender, makeWorld, unique, type World } from "./testing.ts";

let db: TestDatabase;
let w: World;
const revoked: number[][] = [];
// Revoking at the servers is a network round trip: both unlinks are past their first checks before either detaches.
const reconnect = {
  async revokeAuthorizations(_personId: number, identityIds: readonly number[]) {
    revoked.push([...identityIds]);
    await new Promise((resolve) => setTimeout(resolve, 50));
  },
} as Partial<ReconnectService> as ReconnectService;

beforeAll(async () => {
  db = await createTestDatabase();
  w = makeWorld(db, { reconnect });
});
afterAll(() => db.drop());

describe("unlink", () => {
  it("from each of two accounts at once detaches one of them, never both", async () => {
    const b = blueskySender(unique("ul"));
    const f = fediverseSender(unique("ul"));
    const person = await w.person([
      { platform: "x", stableId: "7000001" },
      { platform: "bluesky", stableId: b.stableId, handle: b.handle! },
      { platform: "fediverse", stableId: f.stableId, handle: f.handle! },
    ]);
    const [fromBluesky, fromFediverse] = await Promise.all([w.send(b, "unlink mastodon"), w.send(f, "unlink bluesky")]);
    const left = (await db.store.identities.listForPerson(person)).map((i) => i.platform).sort();
    expect(left.length).toBe(2);
    expect(left).toContain("x");
    // One was detached and said so; the other was told why not.
    const texts = [allText(fromBluesky), allText(fromFediverse)];
    expect(texts.filter((t) => /detached|unlinked/i.test(t))).toHaveLength(1);
    expect(texts.filter((t) => /forget/i.test(t))).toHaveLength(1);
  });

  it("detaches the platform asked, keeps the rest", async () => {
    const b = blueskySender(unique("ul"));
    const f = fediverseSender(unique("ul"));
    const person = await w.person([
      { platform: "bluesky", stableId: b.stableId, handle: b.handle! },
      { platform: "fediverse", stableId: f.stableId, handle: f.handle! },
    ]);
    await w.send(b, "unlink mastodon");
    expect((await db.store.identities.listForPerson(person)).map((i) => i.platform)).toEqual(["bluesky"]);
    expect(revoked.at(-1)).toHaveLength(1);
  });
});
