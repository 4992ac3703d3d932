/**
 * Reconnection jobs in the store: one open job per (person, platform),
 * outcomes settling matches, reports claimed once, one-time links, and jobs
 * surviving a merge of two people or the deletion of one.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import type { Store } from "./index.ts";
import { ReconnectJobs } from "./reconnect-jobs.ts";

let db: TestDatabase;
let store: Store;
let nextX = 9_000_000;

beforeAll(async () => {
  db = await createTestDatabase();
  store = db.store;
});
afterAll(() => db.drop());

/** A person on Bluesky who followed `n` people on X who are on Bluesky. */
async function withMatches(n: number) {
  const person = await store.people.create();
  const x = String(nextX++);
  await store.identities.attach(person.id, { platform: "x", stableId: x, verifiedBy: "platform" });
  const me = await store.identities.attach(person.id, { platform: "bluesky", stableId: `did:plc:p${x}`, handle: `p${x}.test`, verifiedBy: "platform" });
  const targets: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = await store.people.create();
    const tx = String(nextX++);
    await store.identities.attach(t.id, { platform: "x", stableId: tx, verifiedBy: "platform" });
    await store.identities.attach(t.id, { platform: "bluesky", stableId: `did:plc:t${tx}`, handle: `t${tx}.test`, verifiedBy: "platform" });
    await db.sql`insert into x_follow values (${x}, ${tx})`;
    targets.push(t.id);
  }
  await store.matches.refreshForFollowers([person.id]);
  return { personId: person.id, identityId: me.id, targets };
}

describe("reconnect jobs", () => {
  it("keep one open job per person and platform; a new request joins it", async () => {
    const p = await withMatches(3);
    const first = await store.reconnectJobs.open(p.personId, "bluesky", "first", p.targets.slice(0, 1), p.identityId);
    const second = await store.reconnectJobs.open(p.personId, "bluesky", "named", p.targets, null);
    expect(second.job.id).toBe(first.job.id);
    expect([first.created, second.created]).toEqual([true, false]);
    expect(second.added).toBe(2);
    expect(second.job.notifyIdentityId).toBe(p.identityId);
    expect((await store.reconnectJobs.todo(first.job.id)).map((t) => t.personId)).toEqual([p.targets[0], p.targets[1], p.targets[2]]);
    await store.reconnectJobs.setState(first.job.id, "done");
    const third = await store.reconnectJobs.open(p.personId, "bluesky", "all", p.targets, null);
    expect(third.job.id).not.toBe(first.job.id);
  });

  it("record outcomes once, settle the matches, and count them", async () => {
    const p = await withMatches(4);
    const { job } = await store.reconnectJobs.open(p.personId, "bluesky", "all", p.targets, p.identityId);
    await store.reconnectJobs.markInFlight(job.id, [{ personId: p.targets[0]!, marker: "3lrkey" }]);
    expect((await store.reconnectJobs.todo(job.id))[0]!.marker).toBe("3lrkey");
    await store.reconnectJobs.record(job, [
      { personId: p.targets[0]!, outcome: "followed" },
      { personId: p.targets[1]!, outcome: "already_following" },
      { personId: p.targets[2]!, outcome: "failed", reason: "http_500" },
    ]);
    // A second record of the same target changes nothing.
    await store.reconnectJobs.record(job, [{ personId: p.targets[0]!, outcome: "failed" }]);
    expect(await store.reconnectJobs.counts(job.id)).toMatchObject({ followed: 1, already_following: 1, failed: 1, todo: 1, total: 4 });
    const states = await db.sql<{ state: string; reason: string | null }[]>`
      select state, reason from match where person_id = ${p.personId} order by target_person_id`;
    expect(states).toEqual([
      { state: "followed", reason: null },
      { state: "already_following", reason: null },
      { state: "failed", reason: "failed: http_500" },
      { state: "pending", reason: null },
    ]);
    // Failures are selected again by the next request; settled ones are not.
    expect(new Set(await store.reconnectJobs.selectTargets(p.personId, "bluesky"))).toEqual(new Set([p.targets[2], p.targets[3]]));
  });

  it("count failed runs in a row only: a run that records outcomes starts the count again", async () => {
    const { personId, targets } = await withMatches(3);
    const { job } = await store.reconnectJobs.open(personId, "bluesky", "all", targets, null);
    const delay = () => 1;
    expect((await store.reconnectJobs.countFailure(job.id, "502", delay)).failures).toBe(1);
    expect((await store.reconnectJobs.countFailure(job.id, "502", delay)).failures).toBe(2);
    await store.reconnectJobs.record(job, [{ personId: targets[0]!, outcome: "followed" }]);
    expect((await store.reconnectJobs.countFailure(job.id, "502", delay)).failures).toBe(1);
    // Nothing new recorded (a target recorded already): the count goes on.
    await store.reconnectJobs.record(job, [{ personId: targets[0]!, outcome: "followed" }]);
    expect((await store.reconnectJobs.countFailure(job.id, "502", delay)).failures).toBe(2);
  });

  it("mark writes in flight only from the session holding the run's lock, when fenced", async () => {
    const { personId, targets } = await withMatches(2);
    const { job } = await store.reconnectJobs.open(personId, "bluesky", "all", targets, null);
    const fence = { lockClass: 0x7465_7374, key: job.id };
    const holder = await db.sql.reserve();
    try {
      await holder`select pg_advisory_lock(${fence.lockClass}, ${fence.key})`;
      // Another session (as a reserved connection replaced after it died): nothing marked.
      expect(await store.reconnectJobs.markInFlight(job.id, [{ personId: targets[0]!, marker: "3k-a" }], fence)).toBe(0);
      expect((await store.reconnectJobs.todo(job.id)).every((t) => t.marker === null)).toBe(true);
      // The holder's own session: marked.
      expect(await new ReconnectJobs(holder).markInFlight(job.id, [{ personId: targets[0]!, marker: "3k-a" }], fence)).toBe(1);
      await holder`select pg_advisory_unlock(${fence.lockClass}, ${fence.key})`;
    } finally {
      holder.release();
    }
  });

  it("let one progress message through per interval, and one summary ever", async () => {
    const p = await withMatches(1);
    const { job } = await store.reconnectJobs.open(p.personId, "bluesky", "all", p.targets, null);
    await store.reconnectJobs.setState(job.id, "running");
    // Just started: no progress report yet.
    expect(await store.reconnectJobs.claimProgress(job.id, 300)).toBe(false);
    await db.sql`update reconnect_job set started_at = now() - interval '10 minutes' where id = ${job.id}`;
    expect(await store.reconnectJobs.claimProgress(job.id, 300)).toBe(true);
    expect(await store.reconnectJobs.claimProgress(job.id, 300)).toBe(false);
    const claims = await Promise.all([1, 2, 3].map(() => store.reconnectJobs.claimSummary(job.id)));
    expect(claims.filter(Boolean)).toHaveLength(1);
  });

  it("follow their person through a merge, joining an open job of the kept person", async () => {
    const keep = await withMatches(2);
    const drop = await withMatches(2);
    const kept = await store.reconnectJobs.open(keep.personId, "bluesky", "all", keep.targets, null);
    const dropped = await store.reconnectJobs.open(drop.personId, "bluesky", "all", drop.targets, null);
    await store.mergePeople(keep.personId, drop.personId);
    const todo = (await store.reconnectJobs.todo(kept.job.id)).map((t) => t.personId);
    expect(new Set(todo)).toEqual(new Set([...keep.targets, ...drop.targets]));
    expect((await store.reconnectJobs.get(dropped.job.id))?.state).toBe("cancelled");
    expect((await store.reconnectJobs.get(dropped.job.id))?.personId).toBe(keep.personId);
  });

  it("keep a target who merges with another person, as that person; and nobody is made to follow themselves", async () => {
    const owner = await withMatches(2);
    const [merging, other] = owner.targets as [number, number];
    const { job } = await store.reconnectJobs.open(owner.personId, "bluesky", "all", owner.targets, null);
    await store.reconnectJobs.record(job, [{ personId: other, outcome: "followed" }]);
    // The target who merges away had a job of their own that named the kept person.
    const theirs = await store.reconnectJobs.open(merging, "bluesky", "all", [other], null);
    // `merging` links into `other`: the owner's job now follows `other` once (done already).
    await store.mergePeople(other, merging);
    expect(await store.reconnectJobs.todo(job.id)).toEqual([]);
    expect((await store.reconnectJobs.counts(job.id)).followed).toBe(1);
    // `other` took over the job that targeted it: nothing left for it to do to itself.
    expect((await store.reconnectJobs.todo(theirs.job.id)).map((t) => t.personId)).not.toContain(other);

    // And a target still to do moves to the kept person.
    const second = await withMatches(1);
    const lone = await store.people.create();
    const { job: pending } = await store.reconnectJobs.open(second.personId, "bluesky", "all", second.targets, null);
    await store.mergePeople(lone.id, second.targets[0]!);
    expect((await store.reconnectJobs.todo(pending.id)).map((t) => t.personId)).toEqual([lone.id]);
  });

  it("keep what a job knew about both targets when they merge: an outcome, or a write in flight", async () => {
    const owner = await withMatches(4);
    const [keepDone, dropDone, keepFlight, dropFlight] = owner.targets as [number, number, number, number];
    const { job } = await store.reconnectJobs.open(owner.personId, "bluesky", "all", owner.targets, null);
    await store.reconnectJobs.markInFlight(job.id, [{ personId: dropFlight, marker: "3lrkey" }]);
    await store.reconnectJobs.record(job, [{ personId: dropDone, outcome: "followed" }]);
    await store.mergePeople(keepDone, dropDone);
    await store.mergePeople(keepFlight, dropFlight);
    // The kept targets were still to do; what the dropped rows knew is not lost with them.
    expect(await store.reconnectJobs.counts(job.id)).toMatchObject({ followed: 1, todo: 1, total: 2 });
    expect(await store.reconnectJobs.todo(job.id)).toEqual([expect.objectContaining({ personId: keepFlight, marker: "3lrkey" })]);
  });

  it("open without the targets forgotten since they were listed", async () => {
    const p = await withMatches(2);
    const listed = await store.reconnectJobs.selectTargets(p.personId, "bluesky");
    await store.forget(p.targets[0]!);
    const opened = await store.transaction((s) => s.reconnectJobs.open(p.personId, "bluesky", "all", listed, null));
    expect(opened.added).toBe(1);
    expect((await store.reconnectJobs.todo(opened.job.id)).map((t) => t.personId)).toEqual([p.targets[1]]);
  });

  it("go with the person who is deleted, and with a target who is", async () => {
    const p = await withMatches(2);
    const { job } = await store.reconnectJobs.open(p.personId, "bluesky", "all", p.targets, null);
    await store.transaction((s) => s.people.delete(p.targets[0]!));
    expect((await store.reconnectJobs.todo(job.id)).map((t) => t.personId)).toEqual([p.targets[1]]);
    await store.transaction((s) => s.people.delete(p.personId));
    expect(await store.reconnectJobs.get(job.id)).toBeUndefined();
    // A run still going finds nothing to mark, and stops before writing.
    expect(await store.reconnectJobs.markInFlight(job.id, [{ personId: p.targets[1]!, marker: "x" }])).toBe(0);
  });

  it("list automatic-reconnection candidates: auto on, authorized, matches waiting, no open job", async () => {
    const p = await withMatches(1);
    const mine = (c: { personId: number }[]) => c.filter((x) => x.personId === p.personId);
    expect(mine(await store.reconnectJobs.autoCandidates())).toHaveLength(0);
    await store.people.updateSettings(p.personId, { autoReconnect: true });
    expect(mine(await store.reconnectJobs.autoCandidates())).toHaveLength(0);
    await store.authorizations.save(p.identityId, "bluesky-app-password", { did: "x" });
    expect(mine(await store.reconnectJobs.autoCandidates())).toEqual([{ personId: p.personId, platform: "bluesky", identityId: p.identityId }]);
    await store.reconnectJobs.open(p.personId, "bluesky", "all", p.targets, null);
    expect(mine(await store.reconnectJobs.autoCandidates())).toHaveLength(0);
  });
});

describe("web links", () => {
  it("are single use, expire, and keep only a hash", async () => {
    const p = await withMatches(0);
    const token = await store.webLinks.create("connect", p.personId, p.identityId, 60);
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/);
    const [row] = await db.sql<{ token_hash: Buffer }[]>`select token_hash from web_link where person_id = ${p.personId}`;
    expect(row!.token_hash.toString("latin1")).not.toContain(token);
    expect(await store.webLinks.peek(token, "export")).toBeUndefined();
    expect((await store.webLinks.peek(token, "connect"))?.identityId).toBe(p.identityId);
    const uses = await Promise.all([1, 2, 3].map(() => store.webLinks.consume(token, "connect")));
    expect(uses.filter(Boolean)).toHaveLength(1);
    expect(await store.webLinks.peek(token, "connect")).toBeUndefined();
    const expired = await store.webLinks.create("export", p.personId, p.identityId, -1);
    expect(await store.webLinks.consume(expired, "export")).toBeUndefined();
    expect(await store.webLinks.peek("../../etc/passwd", "connect")).toBeUndefined();
  });
});
