/**
 * The job runner's own safety nets, on the real queue (pg-boss on the test
 * database) with the real writers: a job whose server stays unreachable
 * gives up and reports instead of retrying forever, and a job whose wake-up
 * was lost is found again by the periodic rescan.
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../config.ts";
import type { Logger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { registerFollowed, registerPerson } from "../../test/harness/graph.ts";
import { until } from "../../test/harness/wait.ts";
import { createReconnection, type Reconnection } from "./index.ts";
import { ACCOUNT_LOCK, Reconnector } from "./reconnector.ts";
import { startMastodonInstance } from "../../test/harness/mastodon-instance.ts";
import { MastodonClient } from "./mastodon/client.ts";
import { AuthorizationExpiredError, type MastodonAuthorization } from "./types.ts";

let db: TestDatabase;
let reconnection: Reconnection;
const sent: { to: number; text: string }[] = [];
/** Identities whose next summary is not delivered (the bot not logged in yet, say). */
const undeliverable = new Set<number>();
let nextX = 8_000_000;

beforeAll(async () => {
  db = await createTestDatabase();
  reconnection = createReconnection({
    config: loadConfig({ PUBLIC_URL: "http://127.0.0.1:9", ALLOW_PRIVATE_ADDRESSES: "1", DEFAULT_LANGUAGE: "en" }),
    store: db.store,
    sql: db.sql,
    databaseUrl: db.url,
    log: pino({ level: "silent" }) as unknown as Logger,
    userAgent: "reconnexion-test",
    // No bot runs here: what would be DMed is kept to check it.
    messenger: {
      send: async (to, text) => {
        if (text.includes("finished") && undeliverable.delete(to.id)) return false;
        sent.push({ to: to.id, text });
        return true;
      },
    },
    runner: { autoSweepSeconds: 0, retryDelaySeconds: 1, maxFailures: 3, rescanSeconds: 1 },
  });
  await reconnection.start();
});
afterAll(async () => {
  await reconnection?.stop();
  await db?.drop();
});

/** A person on a Mastodon instance at `instance`, who followed `n` people on X now on the fediverse. */
async function fediversePerson(n: number, instance: string) {
  const x = String(nextX++);
  const host = new URL(instance).host;
  const me = await registerPerson(db.store, x, { platform: "fediverse", stableId: `${instance}/users/p${x}`, handle: `p${x}@${host}` });
  const targets: number[] = [];
  for (let i = 0; i < n; i++) {
    const tx = String(nextX++);
    targets.push(await registerFollowed(db, x, tx, { platform: "fediverse", stableId: `https://t.example/users/t${tx}`, handle: `t${tx}@t.example` }));
  }
  await db.store.matches.refreshForFollowers([me.personId]);
  return { personId: me.personId, identity: { id: me.identityId }, targets };
}

describe("Reconnector", () => {
  it("gives up on a job whose server stays unreachable, recording every target as failed, and reports once", async () => {
    // Nothing listens on port 1: every request is refused.
    const p = await fediversePerson(2, "http://127.0.0.1:1");
    await db.store.authorizations.save(p.identity.id, "mastodon-oauth", { instance: "http://127.0.0.1:1", accessToken: "t", scope: "read write follow", accountId: "1" });
    const result = await reconnection.reconnector.request({ personId: p.personId, platform: "fediverse", request: "all", targets: p.targets, notifyIdentityId: p.identity.id });
    expect(result.status).toBe("queued");
    const job = await until("the job to give up", async () => {
      const j = await db.store.reconnectJobs.openFor(p.personId, "fediverse");
      return j === undefined && (await db.sql<{ id: number; state: string; failures: number }[]>`select id, state, failures from reconnect_job where person_id = ${p.personId}`)[0];
    }, 60_000, 200);
    expect(job.state).toBe("done");
    const outcomes = await db.sql`select outcome, reason from reconnect_target where job_id = ${job.id}`;
    expect(outcomes).toEqual([
      { outcome: "failed", reason: "gave_up" },
      { outcome: "failed", reason: "gave_up" },
    ]);
    const summaries = sent.filter((m) => m.to === p.identity.id && m.text.includes("finished"));
    expect(summaries).toHaveLength(1);
    expect(summaries[0]!.text).toContain("2 failed");
  });

  it("counts a session that cannot be opened (the PDS does not answer) as a failed run, and gives up after a few", async () => {
    const x = String(nextX++);
    const did = `did:plc:unreachable${x}`;
    const me = await registerPerson(db.store, x, { platform: "bluesky", stableId: did, handle: `p${x}.test` });
    const tx = String(nextX++);
    const target = await registerFollowed(db, x, tx, { platform: "bluesky", stableId: `did:plc:target${tx}`, handle: `t${tx}.test` });
    await db.store.matches.refreshForFollowers([me.personId]);
    // An app password whose PDS refuses every connection: the writer cannot even resume its session.
    await db.store.authorizations.save(me.identityId, "bluesky-app-password", {
      did, service: "http://127.0.0.1:1", identifier: did, appPassword: "aaaa-bbbb-cccc-dddd",
      session: { did, handle: `p${x}.test`, accessJwt: "a", refreshJwt: "r", active: true },
    });
    const result = await reconnection.reconnector.request({ personId: me.personId, platform: "bluesky", request: "all", targets: [target], notifyIdentityId: me.identityId });
    expect(result.status).toBe("queued");
    const job = await until("the job to give up", async () => {
      const j = await db.store.reconnectJobs.openFor(me.personId, "bluesky");
      return j === undefined && (await db.sql<{ id: number; state: string }[]>`select id, state from reconnect_job where person_id = ${me.personId}`)[0];
    }, 60_000, 200);
    expect(job.state).toBe("done");
    expect(await db.sql`select outcome, reason from reconnect_target where job_id = ${job.id}`).toEqual([{ outcome: "failed", reason: "gave_up" }]);
    // Still authorized: nothing said the grant is dead.
    expect(await db.store.authorizations.get(me.identityId)).toBeDefined();
    expect(sent.filter((m) => m.to === me.identityId && m.text.includes("finished"))).toHaveLength(1);
  });

  it("waits longer after each failed run (1 s, then 2 s), and the periodic rescan does not cut the wait short", async () => {
    const p = await fediversePerson(1, "http://127.0.0.1:1");
    await db.store.authorizations.save(p.identity.id, "mastodon-oauth", { instance: "http://127.0.0.1:1", accessToken: "t", scope: "read write follow", accountId: "1" });
    await reconnection.reconnector.request({ personId: p.personId, platform: "fediverse", request: "all", targets: p.targets, notifyIdentityId: p.identity.id });
    // When each failure was counted, and the wait it set.
    const seen: { failures: number; at: number; waitMs: number }[] = [];
    await until("the job to give up", async () => {
      const [j] = await db.sql<{ failures: number; state: string; wait_ms: number | null }[]>`
        select failures, state, extract(epoch from wait_until - now()) * 1000 as wait_ms
        from reconnect_job where person_id = ${p.personId}`;
      if (j && j.failures > (seen.at(-1)?.failures ?? 0)) seen.push({ failures: j.failures, at: Date.now(), waitMs: Number(j.wait_ms ?? 0) });
      return j?.state === "done";
    }, 60_000, 25);
    // (A third failure, the last allowed, gives up at once.)
    expect(seen.slice(0, 2).map((s) => s.failures)).toEqual([1, 2]);
    expect(seen[0]!.waitMs).toBeGreaterThan(500);
    expect(seen[1]!.waitMs).toBeGreaterThan(1_500);
    expect(seen[1]!.at - seen[0]!.at).toBeGreaterThanOrEqual(900);
  });

  it("never runs two jobs on one account at once: a job waits while another run holds the account", async () => {
    const p = await fediversePerson(1, "http://127.0.0.1:1");
    await db.store.authorizations.save(p.identity.id, "mastodon-oauth", { instance: "http://127.0.0.1:1", accessToken: "t", scope: "read write follow", accountId: "1" });
    // Another run on the account (say, a cancelled job's last write still in flight).
    const other = await db.sql.reserve();
    try {
      await other`select pg_advisory_lock(${ACCOUNT_LOCK}, ${p.identity.id})`;
      const { job } = await reconnection.reconnector.request({ personId: p.personId, platform: "fediverse", request: "all", targets: p.targets, notifyIdentityId: p.identity.id }) as { job: { id: number } };
      await new Promise((r) => setTimeout(r, 3_000));
      expect(await db.store.reconnectJobs.get(job.id)).toMatchObject({ state: "queued", attempts: 0 });
      await other`select pg_advisory_unlock(${ACCOUNT_LOCK}, ${p.identity.id})`;
      // Free again: the job runs (and, its server unreachable, counts a failure) without waiting for the rescan.
      await until("the job to run", async () => ((await db.store.reconnectJobs.get(job.id))?.attempts ?? 0) > 0, 15_000, 100);
    } finally {
      other.release();
    }
  });

  it("sends the summary of a job finished by a process that died before telling the person, once", async () => {
    const p = await fediversePerson(2, "https://died.example");
    const { job } = await db.store.transaction((s) => s.reconnectJobs.open(p.personId, "fediverse", "all", p.targets, p.identity.id));
    // As a run leaves it when killed right after committing the end of its job.
    await db.store.transaction((s) => s.reconnectJobs.record(job, p.targets.map((personId) => ({ personId, outcome: "followed" as const }))));
    await db.store.reconnectJobs.setState(job.id, "done");
    const summaries = () => sent.filter((m) => m.to === p.identity.id && m.text.includes("finished"));
    await until("the summary", async () => summaries().length > 0, 15_000, 100);
    await new Promise((r) => setTimeout(r, 2_500)); // more rescans
    expect(summaries()).toHaveLength(1);
    expect(summaries()[0]!.text).toContain("2 followed");
  });

  it("tries again a summary that could not be delivered, and sends it once", async () => {
    const p = await fediversePerson(1, "https://undelivered.example");
    const { job } = await db.store.transaction((s) => s.reconnectJobs.open(p.personId, "fediverse", "all", p.targets, p.identity.id));
    await db.store.transaction((s) => s.reconnectJobs.record(job, p.targets.map((personId) => ({ personId, outcome: "followed" as const }))));
    undeliverable.add(p.identity.id);
    await db.store.reconnectJobs.setState(job.id, "done");
    const summaries = () => sent.filter((m) => m.to === p.identity.id && m.text.includes("finished"));
    await until("the summary, on a later try", async () => summaries().length > 0, 20_000, 100);
    expect(undeliverable.has(p.identity.id)).toBe(false);
    await new Promise((r) => setTimeout(r, 2_500)); // more rescans
    expect(summaries()).toHaveLength(1);
  });

  it("finds a job whose wake-up was lost, within the rescan interval", async () => {
    // A job row with no queued run (as after a dropped send): no authorization either, so its run pauses it.
    const p = await fediversePerson(1, "https://lost.example");
    const { job } = await db.store.reconnectJobs.open(p.personId, "fediverse", "all", p.targets, p.identity.id);
    expect(job.state).toBe("queued");
    await until("the rescan to run it", async () => (await db.store.reconnectJobs.get(job.id))?.state === "needs_authorization", 15_000, 200);
    // The pause is recorded first, then the person is asked (a moment later).
    await until("the person to be asked to authorize", async () => sent.some((m) => m.to === p.identity.id && /\/connect\/[A-Za-z0-9_-]{32}/.test(m.text)), 5_000, 50);
  });

  it("keeps an authorization given again while a run held the expired one, and runs with it instead of asking again", async () => {
    // Its own database and queue: the writer here plays the person re-authorizing mid-run.
    const own = await createTestDatabase();
    const told: string[] = [];
    let builds = 0;
    const runner = new Reconnector({
      store: own.store,
      sql: own.sql,
      databaseUrl: own.url,
      config: loadConfig({ PUBLIC_URL: "http://127.0.0.1:9", DEFAULT_LANGUAGE: "en" }),
      log: pino({ level: "silent" }) as unknown as Logger,
      messenger: { send: async (_to, text) => (told.push(text), true) },
      autoSweepSeconds: 0,
      rescanSeconds: 1,
      writers: async ({ identity, store }) => ({
        async run(run) {
          if (++builds === 1) {
            // The connect page stores a new grant while this run still holds the old token…
            await store.authorizations.save(identity.id, "mastodon-oauth", { accessToken: "new" });
            // …which the server then refuses.
            throw new AuthorizationExpiredError("401");
          }
          await run.record(run.targets.map((t) => ({ personId: t.personId, outcome: "followed" as const })));
        },
      }),
    });
    await runner.start();
    try {
      const me = await registerPerson(own.store, "7000001", { platform: "fediverse", stableId: "https://m.example/users/me", handle: "me@m.example" });
      const target = await registerFollowed(own, "7000001", "7000002", { platform: "fediverse", stableId: "https://t.example/users/t", handle: "t@t.example" });
      await own.store.matches.refreshForFollowers([me.personId]);
      await own.store.authorizations.save(me.identityId, "mastodon-oauth", { accessToken: "old" });
      const result = await runner.request({ personId: me.personId, platform: "fediverse", request: "all", targets: [target], notifyIdentityId: me.identityId });
      const job = await until("the job to finish", async () => {
        const j = await own.store.reconnectJobs.get((result as { job: { id: number } }).job.id);
        return j?.state === "done" && j;
      }, 20_000, 100);
      expect(job.state).toBe("done");
      expect((await own.store.authorizations.get<{ accessToken: string }>(me.identityId))?.data.accessToken).toBe("new");
      expect(told.filter((t) => t.includes("/connect/"))).toEqual([]);
    } finally {
      await runner.stop();
      await own.drop();
    }
  });
  it("revokes at the old server, within the rescan interval, the token of an account that moved away", async () => {
    const instance = await startMastodonInstance({ users: [{ name: "mover" }] });
    try {
      const token = instance.issueToken("mover");
      const app = instance.apps.at(-1)!;
      const p = await fediversePerson(0, instance.origin);
      const grant: MastodonAuthorization = {
        instance: instance.origin, accessToken: token, scope: "read write follow", accountId: "1",
        app: { clientId: app.clientId, clientSecret: app.clientSecret },
      };
      await db.store.authorizations.save(p.identity.id, "mastodon-oauth", grant);
      const from = (await db.store.identities.get(p.identity.id))!.stableId!;
      expect(await db.store.fediverse.moveIdentity(from, { actorUri: "https://elsewhere.example/users/mover", acct: "mover@elsewhere.example", apiBase: null })).toBe(true);
      const works = () =>
        new MastodonClient({ instance: instance.origin, accessToken: token, allowPrivateAddresses: true }).verifyCredentials().then(() => true, () => false);
      // Refused at the instance, then its row done with (a moment later).
      await until("the moved account's old token refused", async () => !(await works()), 10_000);
      await until("the revocation done with", async () => (await db.store.revocations.count()) === 0, 10_000);
    } finally {
      await instance.close();
    }
  });
});
