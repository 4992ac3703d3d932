/**
 * What the Bluesky OAuth callback keeps and revokes when the flow does not
 * count (the PDS's own pages, driven in a browser, are in
 * test/reconnect-bluesky.test.ts; there the account is fixed by the login
 * hint, so a sign-in as another account is checked here, at the callback).
 * The OAuth client has already stored the new session for the DID it
 * returns: revoking it is right unless a working authorization uses it.
 */
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../config.ts";
import type { Logger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { registerPerson } from "../../test/harness/graph.ts";
import type { AddressInfo } from "node:net";
import { createWebApp } from "./app.ts";
import { blueskyOAuthCompleted, connectRoutes, sealState, type ConnectContext } from "./connect.ts";

let db: TestDatabase;
let revoked: string[];
let complete: ReturnType<typeof blueskyOAuthCompleted>;

beforeAll(async () => {
  db = await createTestDatabase();
  const ctx = {
    store: db.store,
    config: loadConfig({ DEFAULT_LANGUAGE: "en" }),
    log: pino({ level: "silent" }) as unknown as Logger,
    onAuthorized: async () => undefined,
  } as Omit<ConnectContext, "bluesky" | "mastodon"> as ConnectContext;
  complete = blueskyOAuthCompleted({ ...ctx, revoke: async (did) => void revoked.push(did) });
});
afterAll(async () => {
  await db?.drop();
});

async function blueskyPerson(x: string) {
  const did = `did:plc:connect${x}`;
  const p = await registerPerson(db.store, x, { platform: "bluesky", stableId: did, handle: `connect${x}.test` });
  return { ...p, did };
}

describe("Bluesky OAuth callback", () => {
  it("a sign-in as another account authorizes nothing; that account's session is revoked unless its own authorization uses it", async () => {
    const pia = await blueskyPerson("91001");
    const ola = await blueskyPerson("91002");
    const una = await blueskyPerson("91003");
    await db.store.authorizations.save(ola.identityId, "bluesky-oauth", { did: ola.did });

    revoked = [];
    const link = await db.store.webLinks.create("connect", pia.personId, pia.identityId, 600);
    const asOla = await complete({ did: ola.did, state: link });
    expect(asOla).toContain(`connect91001.test`);
    expect(await db.store.authorizations.get(pia.identityId)).toBeUndefined();
    // Ola's authorization runs on that session: kept.
    expect(revoked).toEqual([]);
    // Una has none: her stray session goes.
    const asUna = await complete({ did: una.did, state: link });
    expect(asUna).toContain(`connect91001.test`);
    expect(revoked).toEqual([una.did]);
    // The link still works for pia herself.
    expect(await complete({ did: pia.did, state: link })).toContain("is authorized");
    expect((await db.store.authorizations.get(pia.identityId))?.kind).toBe("bluesky-oauth");
  });

  it("queues an earlier app password's session to be ended at the PDS, and leaves the new session alone", async () => {
    const ivy = await blueskyPerson("91004");
    await db.sql`delete from authorization_revocation`;
    await db.store.authorizations.save(ivy.identityId, "bluesky-app-password", { did: ivy.did, session: { refreshJwt: "old" } });
    // What the OAuth client stored before calling back.
    await db.store.blueskyOAuth.setSession(ivy.did, { dpopJwk: { kty: "EC" }, authMethod: { method: "none" }, tokenSet: { iss: "x", sub: ivy.did, aud: "y", scope: "atproto", access_token: "new" } } as never);
    const link = await db.store.webLinks.create("connect", ivy.personId, ivy.identityId, 600);
    expect(await complete({ did: ivy.did, state: link })).toContain("is authorized");
    expect((await db.store.authorizations.get(ivy.identityId))?.kind).toBe("bluesky-oauth");
    expect(await db.store.blueskyOAuth.hasSession(ivy.did)).toBe(true);
    const queued = await db.store.revocations.claimDue();
    expect(queued.map((r) => ({ kind: r.kind, data: r.unreadable ? undefined : r.data }))).toEqual([
      { kind: "bluesky-app-password", data: { did: ivy.did, session: { refreshJwt: "old" } } },
    ]);
    await db.sql`delete from authorization_revocation`;
  });

  it("authorized again with OAuth, keeps the session the client just stored in place of the earlier one (nothing to queue)", async () => {
    const jon = await blueskyPerson("91005");
    await db.sql`delete from authorization_revocation`;
    const session = (token: string) =>
      ({ dpopJwk: { kty: "EC" }, authMethod: { method: "none" }, tokenSet: { iss: "x", sub: jon.did, aud: "y", scope: "atproto", access_token: token } }) as never;
    await db.store.blueskyOAuth.setSession(jon.did, session("earlier"));
    await db.store.authorizations.save(jon.identityId, "bluesky-oauth", { did: jon.did });
    // The client replaces the earlier session with the new one, then calls back.
    await db.store.blueskyOAuth.setSession(jon.did, session("new"));
    const link = await db.store.webLinks.create("connect", jon.personId, jon.identityId, 600);
    expect(await complete({ did: jon.did, state: link })).toContain("is authorized");
    expect((await db.store.blueskyOAuth.getSession(jon.did))?.tokenSet.access_token).toBe("new");
    expect(await db.store.revocations.count()).toBe(0);
  });
});

/** The connect pages alone on 127.0.0.1 (no OAuth client behind them, or the Mastodon one given), and their base URL. */
async function connectPages(mastodon: object = {}) {
  const ctx = {
    store: db.store,
    config: loadConfig({ DEFAULT_LANGUAGE: "en" }),
    log: pino({ level: "silent" }) as unknown as Logger,
    onAuthorized: async () => undefined,
    bluesky: {},
    mastodon,
  } as unknown as ConnectContext;
  const server = createWebApp({ store: db.store, ready: () => true, routes: [connectRoutes(ctx)] }).listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe("the connect page", () => {
  it("sends a form posted for another kind of account (a stale tab) back to the link's own page", async () => {
    const pia = await blueskyPerson("91101");
    const link = await db.store.webLinks.create("connect", pia.personId, pia.identityId, 600);
    const { server, base } = await connectPages();
    try {
      const res = await fetch(`${base}/connect/${link}/mastodon`, { method: "POST", redirect: "manual" });
      expect(res.status).toBe(303);
      expect(res.headers.get("location")).toBe(`/connect/${link}`);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe("the connect page's language", () => {
  it("is the person's (French here), and for a link gone, the browser's", async () => {
    const pia = await blueskyPerson("91201");
    await db.store.people.updateSettings(pia.personId, { language: "fr" });
    const link = await db.store.webLinks.create("connect", pia.personId, pia.identityId, 600);
    const { server, base } = await connectPages();
    try {
      // An English-speaking browser: the person chose French.
      const page = await fetch(`${base}/connect/${link}`, { headers: { "accept-language": "en-US,en;q=0.9" } });
      expect(page.status).toBe(200);
      const text = await page.text();
      expect(text).toContain('lang="fr"');
      expect(text).toContain("reconnexion — autoriser votre compte");
      expect(text).toContain("@connect91201.test");

      const gone = await fetch(`${base}/connect/not-a-link`, { headers: { "accept-language": "fr-FR,fr;q=0.9,en;q=0.5" } });
      expect(gone.status).toBe(410);
      expect(await gone.text()).toContain("Ce lien a expiré ou a déjà servi.");
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe("the Mastodon OAuth callback", () => {
  it("keeps, with the token, the app it was issued to (only that app can revoke it later)", async () => {
    const actor = "https://masto.example/users/connect91301";
    const pia = await registerPerson(db.store, "91301", { platform: "fediverse", stableId: actor, handle: "connect91301@masto.example" });
    const link = await db.store.webLinks.create("connect", pia.personId, pia.identityId, 600);
    const app = { clientId: "issuing-client", clientSecret: "issuing-secret" };
    const { server, base } = await connectPages({
      complete: async (instance: string) => ({
        instance, accessToken: "tok", scope: "read:accounts", accountId: "7", app,
        acct: "connect91301@masto.example", url: "https://masto.example/@connect91301", actorUri: actor,
      }),
    });
    try {
      const state = encodeURIComponent(sealState(db.store, link));
      const res = await fetch(`${base}/connect/mastodon/callback?state=${state}&code=c`);
      expect(res.status).toBe(200);
      const stored = await db.store.authorizations.get(pia.identityId);
      expect(stored).toMatchObject({ kind: "mastodon-oauth", data: { instance: "https://masto.example", accessToken: "tok", accountId: "7", app } });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it("queues the token it replaces to be revoked at the instance, unless the instance handed out the same one again", async () => {
    const actor = "https://masto.example/users/connect91302";
    const pia = await registerPerson(db.store, "91302", { platform: "fediverse", stableId: actor, handle: "connect91302@masto.example" });
    let issued = "first-token";
    const { server, base } = await connectPages({
      complete: async (instance: string) => ({
        instance, accessToken: issued, scope: "read:accounts", accountId: "8", app: { clientId: "c", clientSecret: "s" },
        acct: "connect91302@masto.example", url: "https://masto.example/@connect91302", actorUri: actor,
      }),
    });
    const authorize = async () => {
      const link = await db.store.webLinks.create("connect", pia.personId, pia.identityId, 600);
      const res = await fetch(`${base}/connect/mastodon/callback?state=${encodeURIComponent(sealState(db.store, link))}&code=c`);
      expect(res.status).toBe(200);
    };
    try {
      await db.sql`delete from authorization_revocation`;
      await authorize();
      expect(await db.store.revocations.count()).toBe(0);
      issued = "second-token";
      await authorize();
      issued = "second-token";
      await authorize();
      const queued = await db.store.revocations.claimDue();
      expect(queued.map((r) => (r.unreadable ? undefined : (r.data as { accessToken: string }).accessToken))).toEqual(["first-token"]);
      expect((await db.store.authorizations.get<{ accessToken: string }>(pia.identityId))?.data.accessToken).toBe("second-token");
      await db.sql`delete from authorization_revocation`;
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe("the Mastodon export (following_accounts.csv)", () => {
  /** A fediverse person with matches to new people, in these states (`state` or `state/reason`). */
  async function exporter(x: string, states: string[]) {
    const p = await registerPerson(db.store, x, { platform: "fediverse", stableId: `https://masto.example/users/e${x}`, handle: `e${x}@masto.example` });
    const targets = await db.sql<{ id: number }[]>`insert into person (language) select null from generate_series(1, ${states.length}) returning id`;
    const ids = targets.map((t) => t.id).sort((a, b) => a - b);
    await db.sql`
      insert into identity (person_id, platform, stable_id, handle, verified_by)
      select id, 'fediverse', 'https://far.example/users/t' || id, 't' || id || '@far.example', 'platform' from unnest(${ids}::int[]) id`;
    const [st, rs] = [states.map((s) => s.split("/")[0]!), states.map((s) => s.split("/")[1] ?? null)];
    await db.sql`
      insert into match (person_id, platform, target_person_id, state, reason)
      select ${p.personId}, 'fediverse', id, st::match_state, rs from unnest(${ids}::int[], ${st}::text[], ${rs as string[]}::text[]) as e(id, st, rs)`;
    const link = await db.store.webLinks.create("export", p.personId, p.identityId, 600);
    return { ...p, link, acct: (i: number) => `t${ids[i]}@far.example` };
  }

  async function download(link: string) {
    const { server, base } = await connectPages();
    try {
      const page = await (await fetch(`${base}/export/${link}/following_accounts.csv`)).text();
      const file = await fetch(`${base}/export/${link}/following_accounts.csv`, { method: "POST" });
      expect(file.status).toBe(200);
      const [, ...lines] = (await file.text()).trimEnd().split("\n");
      return { page, accts: lines.map((l) => l.split(",")[0]!) };
    } finally {
      await new Promise((r) => server.close(r));
    }
  }

  it("lists only what is still to follow: pending, and failures a retry may settle", async () => {
    const states = [
      "pending", "followed", "already_following", "ignored", "failed/failed: http_502", "failed/failed: gave_up",
      "failed/failed: follow_limit", "failed/not_found", "failed/gone", "failed/gone: moved", "failed/blocked", "failed/failed: self",
    ];
    const { link, acct } = await exporter("91401", states);
    const { page, accts } = await download(link);
    expect(accts.sort()).toEqual([0, 4, 5, 6].map(acct).sort());
    expect(page).toContain("4 accounts you followed on X are on the fediverse and not followed from here yet");
    expect(page).not.toContain("7,500");
  });

  it("says there is nothing left to import, with no button, once everything is followed or settled", async () => {
    const { link } = await exporter("91403", ["followed", "already_following", "failed/not_found"]);
    const { page, accts } = await download(link);
    expect(accts).toEqual([]);
    expect(page).toContain("there is nothing left to import");
    expect(page).not.toContain("<button");
  });

  it("holds at most 7,500 accounts (Mastodon refuses a longer file whole), and says so", async () => {
    const { link, personId, identityId } = await exporter("91402", Array.from({ length: 7_502 }, () => "pending"));
    const { page, accts } = await download(link);
    expect(accts).toHaveLength(7_500);
    expect(new Set(accts).size).toBe(7_500);
    expect(page).toContain("7502 accounts you followed on X are on the fediverse");
    expect(page).toContain("The file holds the 7,500 most recent of the 7,502");
    await db.store.people.updateSettings(personId, { language: "fr" });
    const again = await db.store.webLinks.create("export", personId, identityId, 600);
    expect((await download(again)).page).toMatch(/Le fichier contient les 7\s500 plus récents des 7\s502/);
  });
});
