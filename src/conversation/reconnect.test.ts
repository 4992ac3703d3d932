/**
 * The `reconnect`, `auto`, `list failed` and `status` commands on the real
 * store, with the real job queue (pg-boss on the test database) enqueuing
 * only: the writers are tested in src/reconnect/.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pino from "pino";
import { Reconnector } from "../reconnect/reconnector.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { blueskySender, fediverseSender, makeWorld, privateText, publicText, testConfig, unique, type World } from "./testing.ts";

let db: TestDatabase;
let world: World;
let reconnector: Reconnector;
const config = testConfig();

beforeAll(async () => {
  db = await createTestDatabase();
  reconnector = Reconnector.enqueueOnly({
    store: db.store,
    sql: db.sql,
    databaseUrl: db.url,
    config,
    log: pino({ level: "silent" }),
  });
  await reconnector.start();
  world = makeWorld(db, { config, reconnect: reconnector });
});
afterAll(async () => {
  await reconnector.stop();
  await db.drop();
});

/** A person on Mastodon and Bluesky who followed `n` people on X, each now on both platforms. */
async function personWithMatches(n: number, language?: string) {
  const name = unique("p");
  const xId = String(1_000_000 + Math.floor(Math.random() * 1e9));
  const me = fediverseSender(name);
  const bsky = blueskySender(name);
  const personId = await world.person(
    [
      { platform: "x", stableId: xId, handle: name },
      { platform: "fediverse", stableId: me.stableId, handle: me.handle! },
      { platform: "bluesky", stableId: bsky.stableId, handle: bsky.handle! },
    ],
    language ? { language } : {},
  );
  const targets: { personId: number; acct: string; bsky: string }[] = [];
  for (let i = 0; i < n; i++) {
    const t = unique("t");
    const tx = String(2_000_000 + Math.floor(Math.random() * 1e9));
    const id = await world.person([
      { platform: "x", stableId: tx, handle: t },
      { platform: "fediverse", stableId: `https://${t}.example/users/${t}`, handle: `${t}@${t}.example` },
      { platform: "bluesky", stableId: `did:plc:${t}`, handle: `${t}.test` },
    ]);
    await world.follow(xId, tx);
    targets.push({ personId: id, acct: `${t}@${t}.example`, bsky: `${t}.test` });
  }
  await db.store.matches.refreshForFollowers([personId]);
  return { personId, me, bsky, targets };
}

async function jobOf(personId: number, platform: "bluesky" | "fediverse") {
  const job = await db.store.reconnectJobs.openFor(personId, platform);
  const targets = job ? await db.sql<{ target_person_id: number }[]>`
    select target_person_id from reconnect_target where job_id = ${job.id} order by position` : [];
  return { job, targets: targets.map((t) => t.target_person_id) };
}

describe("reconnect", () => {
  it("asks for authorization by a private one-time link, and saves the request", async () => {
    const { personId, me, targets } = await personWithMatches(3);
    const out = await world.send(me, "reconnect");
    const text = privateText(out);
    expect(text).toMatch(/https:\/\/bot\.example\/connect\/[A-Za-z0-9_-]{32}/);
    expect(text).toMatch(/https:\/\/bot\.example\/export\/[A-Za-z0-9_-]{32}\/following_accounts\.csv/);
    expect(text).toContain("3 accounts");
    const { job, targets: queued } = await jobOf(personId, "fediverse");
    expect(job?.state).toBe("needs_authorization");
    expect(new Set(queued)).toEqual(new Set(targets.map((t) => t.personId)));
  });

  it("never shows the link in public: a public mention gets a notice only", async () => {
    const { me } = await personWithMatches(1);
    const out = await world.send(me, "reconnect", { isPrivate: false });
    expect(publicText(out)).not.toMatch(/connect|export|http/);
    expect(privateText(out)).toMatch(/\/connect\//);
  });

  it("follows the first N, in list order, or exactly the named accounts", async () => {
    const { personId, me, targets } = await personWithMatches(4);
    await world.send(me, "reconnect 2");
    const listOrder = (await db.store.matches.list(personId, "fediverse", { pageSize: 10 })).entries.map((e) => e.targetPersonId);
    expect((await jobOf(personId, "fediverse")).targets).toEqual(listOrder.slice(0, 2));

    const other = await personWithMatches(3);
    const named = other.targets[2]!;
    const out = await world.send(other.me, `reconnect @${named.acct} @nobody@nowhere.example`);
    expect(privateText(out)).toContain("@nobody@nowhere.example");
    expect((await jobOf(other.personId, "fediverse")).targets).toEqual([named.personId]);
    expect(targets.length).toBe(4);
  });

  it("joins a second request to the open job instead of opening another", async () => {
    const { personId, me } = await personWithMatches(3);
    await world.send(me, "reconnect 1");
    await world.send(me, "reconnect all");
    const jobs = await db.sql`select id from reconnect_job where person_id = ${personId} and platform = 'fediverse'`;
    expect(jobs.length).toBe(1);
    expect((await jobOf(personId, "fediverse")).targets.length).toBe(3);
  });

  it("targets the named platform, in French too", async () => {
    const { personId, me } = await personWithMatches(2, "fr");
    const out = await world.send(me, "reconnecter tout bluesky");
    expect(privateText(out)).toContain("Bluesky");
    expect(privateText(out)).toContain("autorisation");
    expect((await jobOf(personId, "bluesky")).targets.length).toBe(2);
    expect((await jobOf(personId, "fediverse")).job).toBeUndefined();
  });

  it("queues the job at once when an authorization is stored", async () => {
    const { personId, me } = await personWithMatches(2);
    const identity = (await db.store.findPerson({ platform: "fediverse", stableId: me.stableId }))!.identities.find((i) => i.platform === "fediverse")!;
    await db.store.authorizations.save(identity.id, "mastodon-oauth", { instance: "https://x.example", accessToken: "t", scope: "s", accountId: "1" });
    const out = await world.send(me, "reconnect");
    expect(privateText(out)).toContain("On it");
    const { job } = await jobOf(personId, "fediverse");
    expect(job?.state).toBe("queued");
    const [queued] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from pgboss.job where name = 'reconnect' and data->>'jobId' = ${String(job!.id)}`;
    expect(queued!.n).toBe(1);
  });

  it("says when there is nobody to follow, or no account on that platform", async () => {
    const { me } = await personWithMatches(0);
    expect(privateText(await world.send(me, "reconnect"))).toMatch(/Nobody left to follow/);
    const lonely = fediverseSender(unique("l"));
    await world.person([{ platform: "fediverse", stableId: lonely.stableId, handle: lonely.handle! }]);
    expect(privateText(await world.send(lonely, "reconnect bluesky"))).toMatch(/don't know your Bluesky account/);
  });

  it("answers the usage for arguments it cannot read", async () => {
    const { me } = await personWithMatches(1);
    const out = await world.send(me, "reconnect 3 @someone@host.example");
    expect(out.replies[0]!.text).toMatch(/^Usage: reconnect/);
  });
});

describe("auto, status and list failed", () => {
  it("auto on gives an authorization link per platform; auto off turns it off", async () => {
    const { personId, me } = await personWithMatches(1);
    const on = privateText(await world.send(me, "auto on"));
    expect(on.match(/\/connect\//g)?.length).toBe(2);
    expect((await db.store.people.get(personId))!.autoReconnect).toBe(true);
    await world.send(me, "auto off");
    expect((await db.store.people.get(personId))!.autoReconnect).toBe(false);
  });

  it("auto on as the first message of a person the registry knew by address only names their platform and links to authorize", async () => {
    const me = fediverseSender(unique("ao"));
    const personId = await world.person([
      { platform: "x", stableId: String(3_000_000 + Math.floor(Math.random() * 1e9)) },
      { platform: "fediverse", handle: me.handle! },
    ]);
    const first = privateText(await world.send(me, "auto on"));
    expect(first).toContain("/connect/");
    expect(first).not.toMatch(/arrive on ,/);
    expect(first).toMatch(/Mastodon/);
    expect((await db.store.identities.listForPerson(personId)).find((i) => i.platform === "fediverse")?.stableId).toBe(me.stableId);
  });

  it("status shows the job; list failed shows what did not work, with why", async () => {
    const { personId, me, targets } = await personWithMatches(4);
    await world.send(me, "reconnect");
    const { job } = await jobOf(personId, "fediverse");
    await db.store.transaction((s) =>
      s.reconnectJobs.record(job!, [
        { personId: targets[0]!.personId, outcome: "followed" },
        { personId: targets[1]!.personId, outcome: "not_found" },
        { personId: targets[3]!.personId, outcome: "failed", reason: "follow_limit" },
      ]),
    );
    const status = privateText(await world.send(me, "status"));
    expect(status).toContain("Reconnection on Mastodon (fediverse): waiting for your authorization — 3/4: 1 followed");
    const failed = privateText(await world.send(me, "list failed"));
    expect(failed).toContain(`@${targets[1]!.acct}`);
    expect(failed).toContain("(not found)");
    expect(failed).toMatch(new RegExp(`@${targets[3]!.acct} .*— failed \\(your server's limit on follows was reached\\)`));
    expect(failed).not.toContain(targets[0]!.acct);
    const fr = privateText(await world.send(me, "liste échecs bluesky"));
    expect(fr).toMatch(/No failed reconnection on Bluesky|Aucune reconnexion en échec sur Bluesky/);
  });

  it("status tells a wait for the network's limits from a pause after the server failed", async () => {
    const { personId, me } = await personWithMatches(1);
    await world.send(me, "reconnect");
    const { job } = await jobOf(personId, "fediverse");
    const until = new Date(Date.now() + 3_600_000);
    await db.store.reconnectJobs.setState(job!.id, "waiting", { waitUntil: until, reason: "rate_limited" });
    const at = until.toISOString().slice(11, 16);
    expect(privateText(await world.send(me, "status"))).toContain(`waiting for the network's limits (resumes ${at} UTC)`);
    await db.store.reconnectJobs.countFailure(job!.id, "TypeError: fetch failed", () => 3600);
    expect(privateText(await world.send(me, "status"))).toMatch(/paused: the server did not answer, I'll try again \(resumes \d\d:\d\d UTC\)/);
    expect(privateText(await world.send(me, "statut"))).toContain("le serveur n’a pas répondu");
  });
});
