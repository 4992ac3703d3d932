/**
 * What the fediverse bot keeps: claims on notes (owned, renewed, and
 * needed to save or close), and Moves.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { NoteClaimLostError } from "./fediverse-state.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("claims on notes", () => {
  it("are their holder's: renewed, the claim holds past its lease; once taken over, the old holder can neither save, fail nor close the note", async () => {
    const state = db.store.fediverse;
    const note = "https://a.example/notes/claim-1";
    const first = await state.claimNote(note, null, "https://a.example/users/a", 1);
    if (first.status !== "new") throw new Error(first.status);
    // Renewed past its lease: still busy for anyone else.
    for (let i = 0; i < 4; i++) {
      await sleep(400);
      expect(await state.renewNote(note, first.token)).toBe(true);
    }
    expect((await state.claimNote(note, null, "https://a.example/users/a", 1)).status).toBe("busy");
    await state.saveReplies(note, first.token, ["one"]);
    // Not renewed: taken over after the lease, with what was saved.
    await sleep(1200);
    const second = await state.claimNote(note, null, "https://a.example/users/a", 1);
    if (second.status !== "resume") throw new Error(second.status);
    expect(second.token).not.toBe(first.token);
    expect(second.replies).toEqual(["one"]);
    expect(await state.renewNote(note, first.token)).toBe(false);
    await expect(state.saveReplies(note, first.token, ["other"])).rejects.toBeInstanceOf(NoteClaimLostError);
    await expect(state.markAnswered(note, first.token)).rejects.toBeInstanceOf(NoteClaimLostError);
    await expect(state.noteFailed(note, first.token)).rejects.toBeInstanceOf(NoteClaimLostError);
    const [row] = await db.sql<{ failures: number; answered: boolean }[]>`
      select failures, answered_at is not null as answered from fediverse_inbound where note_id = ${note}`;
    expect(row).toEqual({ failures: 0, answered: false });
    // The new holder closes it.
    await state.markAnswered(note, second.token);
    expect((await state.claimNote(note, null, "https://a.example/users/a", 1)).status).toBe("answered");
    await expect(state.markAnswered(note, second.token)).rejects.toBeInstanceOf(NoteClaimLostError);
  });

  it("a failed try releases the claim at once, counted (the last one keeps it); the next try gets a new token", async () => {
    const state = db.store.fediverse;
    const note = "https://a.example/notes/claim-2";
    const first = await state.claimNote(note, null, "https://a.example/users/a");
    if (first.status !== "new") throw new Error(first.status);
    expect(await state.noteFailed(note, first.token)).toBe(1);
    const next = await state.claimNote(note, null, "https://a.example/users/a");
    if (next.status !== "resume") throw new Error(next.status);
    expect(next.failures).toBe(1);
    await expect(state.saveReplies(note, first.token, ["x"])).rejects.toBeInstanceOf(NoteClaimLostError);
    await state.saveReplies(note, next.token, ["x"]);
    // The last try keeps its claim, to close the note (telling its sender).
    expect(await state.noteFailed(note, next.token, { release: false })).toBe(2);
    expect((await state.claimNote(note, null, "https://a.example/users/a")).status).toBe("busy");
    await state.markAnswered(note, next.token);
  });
});

describe("a Move", () => {
  const move = (from: string, host: string, name: string) =>
    db.store.fediverse.moveIdentity(from, { actorUri: `https://${host}/users/${name}`, acct: `${name}@${host}`, apiBase: `https://${host}` });

  it("to an address the registry named for the same person (acct only): that row is merged into the moved identity, its authorization and links with it", async () => {
    const p = await db.store.people.create();
    const old = await db.store.identities.attach(p.id, { platform: "fediverse", stableId: "https://old.example/users/alice", handle: "alice@old.example", verifiedBy: "dm" });
    const named = await db.store.identities.attach(p.id, { platform: "fediverse", handle: "alice@new.example", verifiedBy: "platform" });
    await db.store.authorizations.save(named.id, "mastodon-oauth", { token: "new-account-token" });
    const link = await db.store.webLinks.create("connect", p.id, named.id, 3600);
    expect(await move("https://old.example/users/alice", "new.example", "alice")).toBe(true);
    const identities = await db.store.identities.listForPerson(p.id);
    expect(identities.filter((i) => i.platform === "fediverse")).toEqual([
      expect.objectContaining({ id: old.id, stableId: "https://new.example/users/alice", handle: "alice@new.example", apiBase: "https://new.example", verifiedBy: "dm" }),
    ]);
    expect((await db.store.authorizations.get<{ token: string }>(old.id))?.data).toEqual({ token: "new-account-token" });
    expect((await db.store.webLinks.peek(link, "connect"))?.identityId).toBe(old.id);
  });

  it("drops the old account's authorization, queued to be revoked at the old server: its token acts for the account left, and the person is asked again", async () => {
    await db.sql`delete from authorization_revocation`;
    const p = await db.store.people.create();
    const old = await db.store.identities.attach(p.id, { platform: "fediverse", stableId: "https://old.example/users/dan", handle: "dan@old.example", verifiedBy: "dm" });
    await db.store.authorizations.save(old.id, "mastodon-oauth", { instance: "https://old.example", token: "old-account-token" });
    expect(await move("https://old.example/users/dan", "new.example", "dan")).toBe(true);
    expect(await db.store.authorizations.get(old.id)).toBeUndefined();
    // Moved within one server, it is still another account.
    await db.store.authorizations.save(old.id, "mastodon-oauth", { instance: "https://new.example", token: "dan-token" });
    expect(await move("https://new.example/users/dan", "new.example", "dan2")).toBe(true);
    expect(await db.store.authorizations.get(old.id)).toBeUndefined();
    const queued = await db.store.revocations.claimDue();
    expect(queued.map((r) => (r.unreadable ? undefined : r.data))).toEqual([
      { instance: "https://old.example", token: "old-account-token" },
      { instance: "https://new.example", token: "dan-token" },
    ]);
    for (const r of queued) await db.store.revocations.done(r.id);
  });

  it("to an address the registry named for someone else is refused cleanly: nothing changes", async () => {
    const p = await db.store.people.create();
    const q = await db.store.people.create();
    await db.store.identities.attach(p.id, { platform: "fediverse", stableId: "https://old.example/users/bob", handle: "bob@old.example", verifiedBy: "dm" });
    const theirs = await db.store.identities.attach(q.id, { platform: "fediverse", handle: "bob@new.example", verifiedBy: "platform" });
    const bob = (await db.store.identities.find({ platform: "fediverse", stableId: "https://old.example/users/bob" }))!;
    await db.store.authorizations.save(bob.id, "mastodon-oauth", { token: "bob-token" });
    expect(await move("https://old.example/users/bob", "new.example", "bob")).toBe(false);
    expect((await db.store.authorizations.get<{ token: string }>(bob.id))?.data).toEqual({ token: "bob-token" });
    expect(await db.store.identities.find({ platform: "fediverse", stableId: "https://old.example/users/bob" })).toMatchObject({ personId: p.id, handle: "bob@old.example" });
    expect(await db.store.identities.get(theirs.id)).toMatchObject({ personId: q.id, stableId: null, handle: "bob@new.example" });
  });

  it("to an address another actor holds is refused cleanly", async () => {
    const p = await db.store.people.create();
    await db.store.identities.attach(p.id, { platform: "fediverse", stableId: "https://old.example/users/cat", handle: "cat@old.example", verifiedBy: "dm" });
    const q = await db.store.people.create();
    await db.store.identities.attach(q.id, { platform: "fediverse", stableId: "https://other.example/users/cat", handle: "cat@new.example", verifiedBy: "dm" });
    expect(await move("https://old.example/users/cat", "new.example", "cat")).toBe(false);
    expect(await db.store.identities.find({ platform: "fediverse", stableId: "https://old.example/users/cat" })).toMatchObject({ handle: "cat@old.example" });
    expect(await db.store.identities.find({ platform: "fediverse", stableId: "https://other.example/users/cat" })).toMatchObject({ personId: q.id, handle: "cat@new.example" });
  });
});

describe("answers kept for a retry", () => {
  it("are sealed at rest, bound to their note; ones written before they were sealed are still read", async () => {
    const state = db.store.fediverse;
    const note = "https://a.example/notes/sealed-1";
    const claim = await state.claimNote(note, null, "https://a.example/users/a");
    if (claim.status !== "new") throw new Error(claim.status);
    const { code } = await db.store.linkCodes.create((await db.store.people.create()).id);
    await state.saveReplies(note, claim.token, [`Send link ${code} from your other account.`]);
    await state.noteFailed(note, claim.token);
    const [row] = await db.sql<{ raw: string }[]>`select replies::text as raw from fediverse_inbound where note_id = ${note}`;
    expect(row!.raw).not.toContain(code);
    expect(row!.raw).not.toContain("Send link");
    const resumed = await state.claimNote(note, null, "https://a.example/users/a");
    expect(resumed).toMatchObject({ status: "resume", replies: [`Send link ${code} from your other account.`] });
    // Moved to another note, they do not open: that note is run again instead.
    await db.sql`insert into fediverse_inbound (note_id, actor_uri, claimed_at, replies)
      select 'https://a.example/notes/sealed-copy', actor_uri, '-infinity', replies from fediverse_inbound where note_id = ${note}`;
    expect(await state.claimNote("https://a.example/notes/sealed-copy", null, "https://a.example/users/a")).toMatchObject({ status: "resume", replies: null });
    // Written in the clear before: read as they are.
    await db.sql`insert into fediverse_inbound (note_id, actor_uri, claimed_at, replies)
      values ('https://a.example/notes/plain', 'https://a.example/users/a', '-infinity', ${db.sql.json(["plain answer"])})`;
    expect(await state.claimNote("https://a.example/notes/plain", null, "https://a.example/users/a")).toMatchObject({ status: "resume", replies: ["plain answer"] });
  });

  it("are dropped for a person forgotten (their actors), and those notes closed; a worker about to queue them queues nothing", async () => {
    const state = db.store.fediverse;
    const gone = "https://a.example/users/gone";
    const kept = "https://a.example/users/kept";
    const held = async (note: string, actor: string, release: boolean) => {
      const claim = await state.claimNote(note, null, actor);
      if (claim.status !== "new") throw new Error(claim.status);
      await state.saveReplies(note, claim.token, [`for ${actor}`]);
      if (release) await state.noteFailed(note, claim.token);
      return claim.token;
    };
    await held("https://a.example/notes/gone-1", gone, true);
    const live = await held("https://a.example/notes/gone-2", gone, false);
    await held("https://a.example/notes/kept-1", kept, true);
    // The note being answered right now (replies not saved yet) is left alone.
    const current = await state.claimNote("https://a.example/notes/gone-3", null, gone);
    if (current.status !== "new") throw new Error(current.status);
    expect(await state.dropHeldReplies([{ platform: "fediverse", stableId: gone }, { platform: "bluesky", stableId: "did:plc:x" }])).toBe(2);
    const rows = await db.sql<{ note_id: string; held: boolean; answered: boolean }[]>`
      select note_id, replies is not null as held, answered_at is not null as answered from fediverse_inbound
      where note_id like 'https://a.example/notes/gone-%' or note_id like 'https://a.example/notes/kept-%' order by note_id`;
    expect(rows).toEqual([
      { note_id: "https://a.example/notes/gone-1", held: false, answered: true },
      { note_id: "https://a.example/notes/gone-2", held: false, answered: true },
      { note_id: "https://a.example/notes/gone-3", held: false, answered: false },
      { note_id: "https://a.example/notes/kept-1", held: true, answered: false },
    ]);
    await expect(state.markAnswered("https://a.example/notes/gone-2", live)).rejects.toBeInstanceOf(NoteClaimLostError);
    await state.saveReplies("https://a.example/notes/gone-3", current.token, ["forgotten: done"]);
    await state.markAnswered("https://a.example/notes/gone-3", current.token);
  });
  it("are dropped when the person is erased (forget)", async () => {
    const actor = "https://a.example/users/erased";
    const did = "did:plc:erasedheld";
    const person = await db.store.people.create();
    await db.store.identities.attach(person.id, { platform: "fediverse", stableId: actor, handle: "erased@a.example", verifiedBy: "dm" });
    await db.store.identities.attach(person.id, { platform: "bluesky", stableId: did, handle: "erased.test", verifiedBy: "dm" });
    const note = "https://a.example/notes/erased-1";
    const claim = await db.store.fediverse.claimNote(note, null, actor);
    if (claim.status !== "new") throw new Error(claim.status);
    await db.store.fediverse.saveReplies(note, claim.token, ["your matches: …"]);
    await db.store.fediverse.noteFailed(note, claim.token);
    expect(await db.store.erase(person.id)).toBe(true);
    const [row] = await db.sql<{ held: boolean; answered: boolean }[]>`
      select replies is not null as held, answered_at is not null as answered from fediverse_inbound where note_id = ${note}`;
    expect(row).toEqual({ held: false, answered: true });
  });
});
