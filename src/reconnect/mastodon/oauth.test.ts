/**
 * Mastodon OAuth against the test instance, with apps kept in a real
 * PostgreSQL: registration once per instance, the fallback for old
 * instances, and the whole authorize flow driven over HTTP.
 */
import { Parser } from "htmlparser2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, TEST_SECRET_KEY, type TestDatabase } from "../../../test/harness/database.ts";
import { startFediServer, type FediServer } from "../../../test/harness/fediverse.ts";
import { startMastodonInstance, type MastodonInstance } from "../../../test/harness/mastodon-instance.ts";
import { MastodonApps, mastodonInstanceKey } from "../../store/mastodon-apps.ts";
import { SecretBox } from "../../store/secrets.ts";
import { AuthorizationExpiredError } from "../types.ts";
import { MastodonApiError, MastodonClient } from "./client.ts";
import { GRANULAR_SCOPES, LEGACY_SCOPES, MastodonOAuth, MastodonOAuthError, type MastodonOAuthOptions } from "./oauth.ts";
import { MastodonWriter } from "./writer.ts";

const REDIRECT = "http://localhost:8080/connect/mastodon/callback";

let db: TestDatabase;
let apps: MastodonApps;
let instance: MastodonInstance;
let old: MastodonInstance;
let remote: FediServer;

beforeAll(async () => {
  db = await createTestDatabase();
  apps = new MastodonApps(db.sql, new SecretBox(TEST_SECRET_KEY));
  [instance, old, remote] = await Promise.all([
    startMastodonInstance({ users: [{ name: "me", password: "hunter2" }] }),
    startMastodonInstance({ users: [{ name: "elder", password: "pw" }], rejectGranularScopes: true }),
    startFediServer({ users: [{ name: "friend" }] }),
  ]);
});

afterAll(async () => {
  await instance?.close();
  await old?.close();
  await remote?.close();
  await db?.drop();
});

function oauth(options: Partial<MastodonOAuthOptions> = {}): MastodonOAuth {
  return new MastodonOAuth({ apps, redirectUri: REDIRECT, clientName: "reconnexion", website: "http://localhost:8080", allowPrivateAddresses: true, ...options });
}

/** A person's browser: opens the authorize page, fills the form, follows the redirect (not to our server). */
async function authorizeInBrowser(url: URL, username: string, password: string, decision = "authorize"): Promise<URL> {
  const page = await fetch(url);
  expect(page.status).toBe(200);
  const fields = new URLSearchParams();
  let action = "";
  const parser = new Parser({
    onopentag(name, attrs) {
      if (name === "form") action = attrs.action ?? "";
      if (name === "input" && attrs.type === "hidden" && attrs.name) fields.set(attrs.name, attrs.value ?? "");
    },
  });
  parser.end(await page.text());
  fields.set("username", username);
  fields.set("password", password);
  fields.set("decision", decision);
  const answer = await fetch(new URL(action, url), { method: "POST", body: fields, redirect: "manual" });
  expect(answer.status).toBe(302);
  return new URL(answer.headers.get("location")!);
}

describe("MastodonApps", () => {
  it("keys instances by lower-cased origin and seals the client secret", async () => {
    expect(mastodonInstanceKey("Mastodon.Social")).toBe("https://mastodon.social");
    expect(mastodonInstanceKey("HTTPS://Mastodon.Social:443/about")).toBe("https://mastodon.social");
    expect(() => mastodonInstanceKey("ftp://example.org")).toThrow();
    await apps.add({ instance: "https://Example.ORG", clientId: "id1", clientSecret: "very-secret", redirectUri: REDIRECT, scopes: GRANULAR_SCOPES });
    expect(await apps.get("example.org")).toMatchObject({ instance: "https://example.org", clientId: "id1", clientSecret: "very-secret" });
    const [row] = await db.sql<{ sealed: Buffer }[]>`select client_secret_sealed as sealed from mastodon_app where instance = 'https://example.org'`;
    expect(row!.sealed.toString("latin1")).not.toContain("very-secret");
    // A second registration for the same redirect loses to the first; another redirect replaces it.
    expect((await apps.add({ instance: "https://example.org", clientId: "id2", clientSecret: "s2", redirectUri: REDIRECT, scopes: "" })).clientId).toBe("id1");
    expect((await apps.add({ instance: "https://example.org", clientId: "id3", clientSecret: "s3", redirectUri: "https://new/cb", scopes: "" })).clientId).toBe("id3");
    expect(await apps.delete("https://EXAMPLE.org", "id1")).toBe(false);
    expect(await apps.delete("https://EXAMPLE.org", "id3")).toBe(true);
    expect(await apps.get("example.org")).toBeUndefined();
  });
});

describe("MastodonOAuth", () => {
  it("registers one app per instance, whatever the spelling, at once or later, and builds the authorize URL", async () => {
    const upper = instance.origin.replace("http://", "HTTP://") + "/";
    const registrations = () => instance.requests.filter((r) => r.path === "/api/v1/apps").length;
    // One process, several people at once: one registration.
    const shared = oauth();
    const urls = await Promise.all([shared.authorizeUrl(instance.origin, "s1"), shared.authorizeUrl(upper, "s2"), shared.authorizeUrl(instance.origin, "s3")]);
    expect(registrations()).toBe(1);
    // Another process (or a restart) finds it in the database.
    const again = await oauth().authorizeUrl(upper, "s4");
    expect(registrations()).toBe(1);
    expect(new Set([...urls, again].map((u) => u.searchParams.get("client_id"))).size).toBe(1);
    const app = await apps.get(instance.origin);
    expect(app).toMatchObject({ instance: instance.origin, redirectUri: REDIRECT, scopes: GRANULAR_SCOPES });
    expect(again.searchParams.get("client_id")).toBe(app!.clientId);
    expect(Object.fromEntries(again.searchParams)).toEqual({
      response_type: "code", client_id: app!.clientId, redirect_uri: REDIRECT, scope: GRANULAR_SCOPES, state: "s4",
    });
    expect(`${again.origin}${again.pathname}`).toBe(`${instance.origin}/oauth/authorize`);
    const registered = instance.apps.find((a) => a.clientId === app!.clientId)!;
    expect(registered).toMatchObject({ name: "reconnexion", website: "http://localhost:8080", redirectUris: [REDIRECT] });
  });

  it("agrees on one app when two processes register at once", async () => {
    const fresh = await startMastodonInstance();
    try {
      const [a, b] = await Promise.all([oauth().authorizeUrl(fresh.origin, "a"), oauth().authorizeUrl(fresh.origin, "b")]);
      const stored = await apps.get(fresh.origin);
      expect(a.searchParams.get("client_id")).toBe(stored!.clientId);
      expect(b.searchParams.get("client_id")).toBe(stored!.clientId);
    } finally {
      await fresh.close();
    }
  });

  it("runs the authorize flow over HTTP: form, redirect with code and state, token exchange, verify_credentials", async () => {
    const url = await oauth().authorizeUrl(instance.origin, "state-123");
    const back = await authorizeInBrowser(url, "me", "hunter2");
    expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
    expect(back.searchParams.get("state")).toBe("state-123");
    const result = await oauth().complete(instance.origin, back.searchParams.get("code")!);
    const me = instance.account("me")!;
    expect(result).toMatchObject({ instance: instance.origin, scope: GRANULAR_SCOPES, accountId: me.id, acct: `me@${instance.domain}`, url: `${instance.origin}/@me`, actorUri: me.uri });
    // The granular scopes are enough for everything the writer does.
    const [friend] = [remote.user("friend")];
    const outcomes: string[] = [];
    await new MastodonWriter(result, { allowPrivateAddresses: true }).run({
      targets: [{ personId: 1, stableId: null, handle: friend!.acct }],
      inFlight: new Map(),
      markInFlight: async () => {},
      record: async (results) => { outcomes.push(...results.map((r) => r.outcome)); },
    });
    expect(outcomes).toEqual(["followed"]);
    expect(friend!.follows.map((f) => f.actor)).toEqual([me.uri]);
    // A code works once.
    await expect(oauth().complete(instance.origin, back.searchParams.get("code")!)).rejects.toBeInstanceOf(MastodonOAuthError);
    // Revoked, the token is refused.
    await oauth().revoke(result);
    await expect(new MastodonClient({ instance: instance.origin, accessToken: result.accessToken, allowPrivateAddresses: true }).verifyCredentials())
      .rejects.toBeInstanceOf(AuthorizationExpiredError);
  });

  it("refuses a wrong password, and reports a refusal to the redirect URI", async () => {
    const url = await oauth().authorizeUrl(instance.origin, "s");
    const page = await fetch(url);
    const form = new URLSearchParams(Object.fromEntries(url.searchParams));
    form.set("username", "me");
    form.set("password", "wrong");
    const wrong = await fetch(new URL("/oauth/authorize", instance.origin), { method: "POST", body: form, redirect: "manual" });
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(wrong.status).toBe(401);
    const denied = await authorizeInBrowser(url, "me", "hunter2", "deny");
    expect(denied.searchParams.get("error")).toBe("access_denied");
    expect(denied.searchParams.get("state")).toBe("s");
  });

  it("takes the token exchange as JSON too, and checks the redirect URI", async () => {
    const url = await oauth().authorizeUrl(instance.origin, "j");
    const app = (await apps.get(instance.origin))!;
    const exchange = async (code: string, redirect: string) => {
      const body = { grant_type: "authorization_code", code, client_id: app.clientId, client_secret: app.clientSecret, redirect_uri: redirect };
      return fetch(new URL("/oauth/token", instance.origin), { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    };
    const wrong = await exchange((await authorizeInBrowser(url, "me", "hunter2")).searchParams.get("code")!, "http://elsewhere/cb");
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ error: "invalid_grant" });
    const right = await exchange((await authorizeInBrowser(url, "me", "hunter2")).searchParams.get("code")!, REDIRECT);
    expect(await right.json()).toMatchObject({ token_type: "Bearer", scope: GRANULAR_SCOPES, access_token: expect.any(String), created_at: expect.any(Number) });
  });

  it("falls back to `read write follow` on instances that refuse granular scopes", async () => {
    const url = await oauth().authorizeUrl(old.origin, "s");
    expect(url.searchParams.get("scope")).toBe(LEGACY_SCOPES);
    expect(old.requests.filter((r) => r.path === "/api/v1/apps").map((r) => r.status)).toEqual([422, 200]);
    expect((await apps.get(old.origin))?.scopes).toBe(LEGACY_SCOPES);
    const back = await authorizeInBrowser(url, "elder", "pw");
    const result = await oauth().complete(old.origin, back.searchParams.get("code")!);
    expect(result.scope).toBe(LEGACY_SCOPES);
    expect(result.acct).toBe(`elder@${old.domain}`);
  });

  it("registers again when the redirect URI changes, or when the instance forgot the app", async () => {
    const first = (await apps.get(instance.origin))!;
    const moved = await oauth({ redirectUri: "http://localhost:9090/cb" }).authorizeUrl(instance.origin, "s");
    expect(moved.searchParams.get("client_id")).not.toBe(first.clientId);
    expect((await apps.get(instance.origin))?.redirectUri).toBe("http://localhost:9090/cb");
    // Mastodon < 4.3 could vacuum apps: the token exchange then fails with invalid_client.
    const current = (await apps.get(instance.origin))!;
    instance.apps.splice(instance.apps.findIndex((a) => a.clientId === current.clientId), 1);
    await expect(oauth({ redirectUri: "http://localhost:9090/cb" }).complete(instance.origin, "whatever")).rejects.toBeInstanceOf(MastodonOAuthError);
    expect(await apps.get(instance.origin)).toBeUndefined();
  });

  it("revokes a token with the app it was issued to, after that app was replaced (new PUBLIC_URL) or forgotten", async () => {
    const fresh = await startMastodonInstance({ users: [{ name: "you", password: "pw" }] });
    const valid = (token: string) =>
      new MastodonClient({ instance: fresh.origin, accessToken: token, allowPrivateAddresses: true }).verifyCredentials().then(() => true, () => false);
    try {
      const before = oauth({ redirectUri: "http://old.example/cb" });
      const grant = async () => before.complete(fresh.origin, (await authorizeInBrowser(await before.authorizeUrl(fresh.origin, "s"), "you", "pw")).searchParams.get("code")!);
      const [first, second, legacy] = [await grant(), await grant(), await grant()];
      const issuer = (await apps.get(fresh.origin))!;
      expect(first.app).toEqual({ clientId: issuer.clientId, clientSecret: issuer.clientSecret });
      // Stored before the app was kept with the token: the current app (here, the issuer) revokes it.
      const { app: _app, ...old } = legacy;
      await before.revoke(old);
      expect(await valid(legacy.accessToken)).toBe(false);

      // The service moves to a new PUBLIC_URL: someone connecting registers a new app in the old one's place.
      const after = oauth({ redirectUri: "https://bot.example/cb" });
      await after.authorizeUrl(fresh.origin, "t");
      expect((await apps.get(fresh.origin))!.clientId).not.toBe(issuer.clientId);
      await after.revoke(first);
      expect(await valid(first.accessToken)).toBe(false);
      // Our copy of the app is gone too (deleted after a refused token exchange): the token is still revoked.
      await apps.delete(fresh.origin);
      await after.revoke(second);
      expect(await valid(second.accessToken)).toBe(false);
    } finally {
      await fresh.close();
    }
  });

  it("refuses private addresses and plain http unless allowed", async () => {
    const strict = oauth({ allowPrivateAddresses: false });
    await expect(strict.authorizeUrl(instance.origin, "s")).rejects.toMatchObject({ code: "insecure_url" });
    await expect(strict.authorizeUrl("https://127.0.0.1:1", "s")).rejects.toBeInstanceOf(MastodonApiError);
    await expect(strict.authorizeUrl("https://127.0.0.1:1", "s")).rejects.toMatchObject({ code: "private_address" });
  });
});
