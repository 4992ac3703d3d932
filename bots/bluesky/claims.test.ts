/**
 * Claims on Bluesky events (src/store/bluesky-state.ts): each has an owner
 * token; only the current holder records progress, finishes or releases it,
 * and a holder that renews its claim (heartbeat) keeps it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { ClaimLostError } from "../../src/store/bluesky-state.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

const account = "claims.test";
let n = 0;
const nextEvent = () => `chat:convo1:msg${++n}`;

async function claimedBy(eventId: string) {
  const [row] = await db.sql<{ state: string; sent: number; claim_token: string | null }[]>`
    select state, sent, claim_token from bluesky_event where account = ${account} and event_id = ${eventId}`;
  return row;
}

describe("event claims", () => {
  it("gives each claim an owner token, and only its holder saves progress, finishes or releases it", async () => {
    const state = db.store.bluesky;
    const event = nextEvent();
    const a = await state.claim(account, event, "chat");
    expect(a.status).toBe("new");
    if (a.status !== "new") throw new Error("unreachable");
    await state.saveReplies(account, event, a.token, ["one", "two"]);
    await state.saveSent(account, event, a.token, 1);
    // B takes the claim over, as it would a stale one.
    const b = await state.claim(account, event, "chat", { staleSeconds: 0 });
    expect(b).toMatchObject({ status: "resume", replies: ["one", "two"], sent: 1 });
    if (b.status !== "resume") throw new Error("unreachable");
    expect(b.token).not.toBe(a.token);
    // A finds out at its next step, and changes nothing.
    await expect(state.saveSent(account, event, a.token, 2)).rejects.toBeInstanceOf(ClaimLostError);
    await expect(state.saveReplies(account, event, a.token, ["other"])).rejects.toBeInstanceOf(ClaimLostError);
    await expect(state.finish(account, event, a.token, "done")).rejects.toBeInstanceOf(ClaimLostError);
    await state.release(account, event, a.token);
    expect(await state.renew(account, event, a.token)).toBe(false);
    expect(await claimedBy(event)).toEqual({ state: "claimed", sent: 1, claim_token: b.token });
    // B carries on.
    await state.saveSent(account, event, b.token, 2);
    await state.finish(account, event, b.token, "done");
    expect(await claimedBy(event)).toMatchObject({ state: "done", sent: 2 });
    expect(await state.claim(account, event, "chat")).toEqual({ status: "done" });
  });

  it("keeps a claim its holder renews, however long it has held it", async () => {
    const state = db.store.bluesky;
    const event = nextEvent();
    const a = await state.claim(account, event, "mention");
    if (a.status !== "new") throw new Error("unreachable");
    // Claimed ten minutes ago: stale, unless renewed.
    await db.sql`update bluesky_event set claimed_at = now() - interval '10 minutes' where account = ${account} and event_id = ${event}`;
    expect(await state.renew(account, event, a.token)).toBe(true);
    expect(await state.claim(account, event, "mention")).toEqual({ status: "busy" });
    // Not renewed: taken over.
    await db.sql`update bluesky_event set claimed_at = now() - interval '10 minutes' where account = ${account} and event_id = ${event}`;
    expect((await state.claim(account, event, "mention")).status).toBe("resume");
    expect(await state.renew(account, event, a.token)).toBe(false);
  });

  it("lets a released claim be taken again, by a new holder", async () => {
    const state = db.store.bluesky;
    const event = nextEvent();
    const a = await state.claim(account, event, "chat");
    if (a.status !== "new") throw new Error("unreachable");
    await state.release(account, event, a.token);
    const b = await state.claim(account, event, "chat");
    expect(b.status).toBe("resume");
    if (b.status !== "resume") throw new Error("unreachable");
    expect(b.token).not.toBe(a.token);
    await expect(state.finish(account, event, a.token, "skipped")).rejects.toBeInstanceOf(ClaimLostError);
    await state.finish(account, event, b.token, "skipped");
    expect((await claimedBy(event))?.state).toBe("skipped");
  });

  it("counts the failures that are the event's own across tries, and gives it up as failed with the last one counted", async () => {
    const state = db.store.bluesky;
    const event = nextEvent();
    const a = await state.claim(account, event, "mention");
    expect(a).toMatchObject({ status: "new", failures: 0 });
    if (a.status !== "new") throw new Error("unreachable");
    await state.release(account, event, a.token, { failed: true });
    const b = await state.claim(account, event, "mention");
    expect(b).toMatchObject({ status: "resume", failures: 1 });
    if (b.status !== "resume") throw new Error("unreachable");
    // Passing trouble (the network) does not count.
    await state.release(account, event, b.token);
    const c = await state.claim(account, event, "mention");
    expect(c).toMatchObject({ status: "resume", failures: 1 });
    if (c.status !== "resume") throw new Error("unreachable");
    await state.finish(account, event, c.token, "failed");
    const [row] = await db.sql<{ state: string; failures: number; done_at: Date | null }[]>`
      select state, failures, done_at from bluesky_event where account = ${account} and event_id = ${event}`;
    expect(row).toMatchObject({ state: "failed", failures: 2 });
    expect(row!.done_at).toBeInstanceOf(Date);
    // Given up is final: never taken up again.
    expect(await state.claim(account, event, "mention")).toEqual({ status: "done" });
  });
});

describe("answers kept for a retry", () => {
  it("are sealed at rest, bound to their event; ones written before they were sealed are still read", async () => {
    const state = db.store.bluesky;
    const event = nextEvent();
    const { code } = await db.store.linkCodes.create((await db.store.people.create()).id);
    const a = await state.claim(account, event, "chat", { sender: "did:plc:sealed" });
    if (a.status !== "new") throw new Error("unreachable");
    await state.saveReplies(account, event, a.token, [`Send link ${code} from your other account.`]);
    await state.release(account, event, a.token);
    const [row] = await db.sql<{ raw: string; sender: string | null }[]>`
      select replies::text as raw, sender_digest as sender from bluesky_event where account = ${account} and event_id = ${event}`;
    expect(row!.raw).not.toContain(code);
    expect(row!.raw).not.toContain("Send link");
    // Who sent it is no DID in the clear either.
    expect(row!.sender).not.toContain("did:plc:sealed");
    expect(await state.claim(account, event, "chat")).toMatchObject({ status: "resume", replies: [`Send link ${code} from your other account.`] });
    // Moved to another event, they do not open: that event is answered afresh.
    const copy = nextEvent();
    await db.sql`insert into bluesky_event (account, event_id, kind, state, replies)
      select account, ${copy}, kind, 'released', replies from bluesky_event where account = ${account} and event_id = ${event}`;
    expect(await state.claim(account, copy, "chat")).toMatchObject({ status: "resume", replies: null });
    // Written in the clear before: read as they are.
    const plain = nextEvent();
    await db.sql`insert into bluesky_event (account, event_id, kind, state, replies) values (${account}, ${plain}, 'chat', 'released', ${db.sql.json({ publicTexts: ["hi"] })})`;
    expect(await state.claim(account, plain, "chat")).toMatchObject({ status: "resume", replies: { publicTexts: ["hi"] } });
  });

  it("are dropped for a person forgotten (their DIDs), those events closed; a worker sending one loses its claim", async () => {
    const state = db.store.bluesky;
    const held = async (sender: string, release: boolean) => {
      const event = nextEvent();
      const c = await state.claim(account, event, "chat", { sender });
      if (c.status !== "new") throw new Error("unreachable");
      await state.saveReplies(account, event, c.token, [`for ${sender}`]);
      if (release) await state.release(account, event, c.token);
      return { event, token: c.token };
    };
    const released = await held("did:plc:gone", true);
    const sending = await held("did:plc:gone", false);
    const other = await held("did:plc:kept", true);
    // The event being answered right now (replies not saved yet) is left alone.
    const current = nextEvent();
    const c = await state.claim(account, current, "chat", { sender: "did:plc:gone" });
    if (c.status !== "new") throw new Error("unreachable");
    expect(await state.dropHeldReplies([{ platform: "bluesky", stableId: "did:plc:gone" }, { platform: "fediverse", stableId: "https://a.example/users/x" }])).toBe(2);
    const rows = async (event: string) =>
      (await db.sql<{ state: string; held: boolean }[]>`
        select state, replies is not null as held from bluesky_event where account = ${account} and event_id = ${event}`)[0];
    expect(await rows(released.event)).toEqual({ state: "skipped", held: false });
    expect(await rows(sending.event)).toEqual({ state: "skipped", held: false });
    expect(await rows(other.event)).toEqual({ state: "released", held: true });
    expect(await rows(current)).toEqual({ state: "claimed", held: false });
    await expect(state.saveSent(account, sending.event, sending.token, 1)).rejects.toBeInstanceOf(ClaimLostError);
    expect((await state.claim(account, released.event, "chat")).status).toBe("done");
    // Finished: who sent it is not kept.
    await state.finish(account, current, c.token, "done");
    expect((await db.sql`select sender_digest from bluesky_event where account = ${account} and event_id = ${current}`)[0]!.sender_digest).toBeNull();
  });
});

describe("where reading notifications began", () => {
  it("is set once, at the first start, with the watermark; moving the watermark on leaves it; an account read before it was kept has none", async () => {
    const state = db.store.bluesky;
    const fresh = "position.test";
    // The session is saved before the first poll: a row, no position yet.
    await state.saveSession(fresh, { did: "did:plc:position" });
    expect(await state.notificationsPosition(fresh)).toEqual({});
    const t0 = new Date("2025-01-01T10:00:00.000Z");
    await state.beginNotifications(fresh, t0);
    expect(await state.notificationsPosition(fresh)).toEqual({ seenAt: t0, from: t0 });
    const later = new Date("2025-01-01T12:00:00.000Z");
    await state.advanceNotifications(fresh, later);
    // A second replica's first start, racing the first: neither moves back.
    await state.beginNotifications(fresh, new Date("2025-01-01T11:00:00.000Z"));
    expect(await state.notificationsPosition(fresh)).toEqual({ seenAt: later, from: t0 });
    // Read before the column existed: a watermark only.
    const legacy = "legacy-position.test";
    await state.advanceNotifications(legacy, later);
    expect(await state.notificationsPosition(legacy)).toEqual({ seenAt: later });
  });
});
