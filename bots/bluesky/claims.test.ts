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
