/**
 * Bluesky OAuth end to end on the local network: our router on 127.0.0.1
 * (PUBLIC_URL = that loopback origin, so the ATProto loopback client), the
 * dev-env PDS's real authorization server and pages driven in headless
 * Chromium, sessions sealed in PostgreSQL, follows seen by the AppView.
 */
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import os from "node:os";
import path from "node:path";
import express from "express";
import { chromium, type BrowserContext } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appViewFollows, createFollow, startBlueskyNetwork, type BlueskyNetwork, type TestUser } from "../../../test/harness/bluesky.ts";
import { createTestDatabase, TEST_SECRET_KEY, type TestDatabase } from "../../../test/harness/database.ts";
import { BlueskyOAuthStore } from "../../store/bluesky-oauth.ts";
import { SecretBox } from "../../store/secrets.ts";
import { AuthorizationExpiredError } from "../types.ts";
import { UnknownAccountError, isAuthorizationExpired } from "./identity.ts";
import { BLUESKY_OAUTH_SCOPE, BlueskyOAuth, type BlueskyAuthorized } from "./oauth.ts";

let net: BlueskyNetwork;
let db: TestDatabase;
let store: BlueskyOAuthStore;
let oauth: BlueskyOAuth;
let server: Server;
let origin: string;
let browser: BrowserContext;
let browserDir: string;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
const authorized: BlueskyAuthorized[] = [];

async function listen(app: express.Express): Promise<{ server: Server; origin: string }> {
  const s = app.listen(0, "127.0.0.1");
  await new Promise<void>((resolve, reject) => s.once("listening", resolve).once("error", reject));
  return { server: s, origin: `http://127.0.0.1:${(s.address() as AddressInfo).port}` };
}

function close(s: Server | undefined): Promise<void> {
  return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
}

/** Signs in on the PDS's authorization pages and answers the consent screen. */
async function consent(url: URL, user: TestUser, answer: "Authorize" | "Deny access" = "Authorize") {
  await browser.clearCookies();
  const page = await browser.newPage();
  try {
    await page.goto(url.href);
    await page.getByRole("textbox", { name: "Password" }).fill(user.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: answer }).click();
    await page.waitForURL(`${origin}/oauth/bluesky/callback**`);
    await page.waitForLoadState("load");
    return { text: await page.locator("body").innerText(), html: await page.content() };
  } finally {
    await page.close();
  }
}

async function authorizeAs(user: TestUser, state: string): Promise<void> {
  const page = await consent(await oauth.authorize(user.handle, state), user);
  expect(page.text).toContain(`authorized ${user.did} state ${state}`);
}

async function sessionRow(did: string) {
  const [row] = await db.sql<{ payload: Buffer; identity_id: number | null }[]>`
    select payload, identity_id from bluesky_oauth_session where did = ${did}`;
  return row;
}



beforeAll(async () => {
  [net, db] = await Promise.all([startBlueskyNetwork(), createTestDatabase()]);
  [alice, bob, carol] = await Promise.all([net.createUser("alice"), net.createUser("bob"), net.createUser("carol")]);
  store = new BlueskyOAuthStore(db.sql, new SecretBox(TEST_SECRET_KEY));
  const app = express();
  ({ server, origin } = await listen(app));
  oauth = new BlueskyOAuth({
    store,
    publicUrl: new URL(origin),
    allowPrivateAddresses: true,
    plcUrl: net.network.plc.url,
    handleResolver: net.pdsUrl,
  });
  app.use(
    oauth.router(async (result) => {
      authorized.push(result);
      return `<!doctype html><p>authorized ${result.did} state ${result.state}</p>`;
    }),
  );
  browserDir = await mkdtemp(path.join(os.tmpdir(), "reconnexion-chromium-"));
  browser = await chromium.launchPersistentContext(browserDir, {
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  if (browserDir) await rm(browserDir, { recursive: true, force: true });
  await close(server);
  await Promise.all([net?.close(), db?.drop()]);
});

describe("client metadata", () => {
  it("is the ATProto loopback client on an http loopback PUBLIC_URL", async () => {
    const metadata = (await (await fetch(`${origin}/oauth/bluesky/client-metadata.json`)).json()) as Record<string, unknown>;
    const redirect = `${origin}/oauth/bluesky/callback`;
    const clientId = new URL(String(metadata.client_id));
    expect(clientId.origin + clientId.pathname).toBe("http://localhost/");
    expect(String(metadata.client_id)).toMatch(/^http:\/\/localhost\?/);
    expect(Object.fromEntries(clientId.searchParams)).toEqual({ redirect_uri: redirect, scope: BLUESKY_OAUTH_SCOPE });
    expect(metadata).toMatchObject({
      redirect_uris: [redirect],
      scope: BLUESKY_OAUTH_SCOPE,
      token_endpoint_auth_method: "none",
      dpop_bound_access_tokens: true,
    });
    // PUBLIC_URL=http://localhost:… (the default) still redirects to the IP literal.
    const local = new BlueskyOAuth({ store, publicUrl: new URL("http://localhost:8080") });
    expect(local.redirectUri).toBe("http://127.0.0.1:8080/oauth/bluesky/callback");
  });

  it("is a confidential private_key_jwt client on an https PUBLIC_URL, keys generated once and sealed", async () => {
    const prod = new BlueskyOAuth({ store, publicUrl: new URL("https://reconnexion.example/app") });
    const app = express().use(prod.router(async () => "unused"));
    const { server: s, origin: o } = await listen(app);
    try {
      const res = await fetch(`${o}/oauth/bluesky/client-metadata.json`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      expect(await res.json()).toMatchObject({
        client_id: "https://reconnexion.example/app/oauth/bluesky/client-metadata.json",
        jwks_uri: "https://reconnexion.example/app/oauth/bluesky/jwks.json",
        redirect_uris: ["https://reconnexion.example/app/oauth/bluesky/callback"],
        token_endpoint_auth_method: "private_key_jwt",
        token_endpoint_auth_signing_alg: "ES256",
        dpop_bound_access_tokens: true,
        application_type: "web",
        grant_types: ["authorization_code", "refresh_token"],
        scope: BLUESKY_OAUTH_SCOPE,
      });
      const jwks = (await (await fetch(`${o}/oauth/bluesky/jwks.json`)).json()) as { keys: Record<string, unknown>[] };
      expect(jwks.keys).toHaveLength(1);
      expect(jwks.keys[0]).toMatchObject({ kty: "EC", crv: "P-256" });
      expect(jwks.keys[0]).not.toHaveProperty("d");

      // Same key for every instance (replicas, restarts), private half sealed.
      const again = new BlueskyOAuth({ store, publicUrl: new URL("https://other.example") });
      const app2 = express().use(again.router(async () => "unused"));
      const second = await listen(app2);
      try {
        const jwks2 = (await (await fetch(`${second.origin}/oauth/bluesky/jwks.json`)).json()) as typeof jwks;
        expect(jwks2.keys.map((k) => k.kid)).toEqual(jwks.keys.map((k) => k.kid));
      } finally {
        await close(second.server);
      }
      const rows = await db.sql<{ private_jwk: Buffer }[]>`select private_jwk from bluesky_oauth_key`;
      expect(rows).toHaveLength(1);
      const raw = rows[0]!.private_jwk.toString("latin1");
      expect(raw).not.toContain('"d"');
      expect(raw).not.toContain(String(jwks.keys[0]!.x));
    } finally {
      await close(s);
    }
  });

  it("refuses a plain-http public address", () => {
    expect(() => new BlueskyOAuth({ store, publicUrl: new URL("http://reconnexion.example") })).toThrow(/https/);
  });
});

describe("authorization", () => {
  it("signs in on the PDS, stores the session sealed, and creates follows the AppView sees", async () => {
    const url = await oauth.authorize(alice.handle, "link-alice");
    expect(url.origin).toBe(new URL(net.pdsUrl).origin);
    const page = await consent(url, alice);
    expect(page.text).toContain(`authorized ${alice.did} state link-alice`);
    expect(authorized.at(-1)).toEqual({ did: alice.did, state: "link-alice" });

    // Sealed at rest: the row holds no token, key or DID in clear.
    const saved = await store.getSession(alice.did);
    expect(saved?.tokenSet.access_token).toBeTruthy();
    expect(saved?.tokenSet.scope).toBe(BLUESKY_OAUTH_SCOPE);
    const row = await sessionRow(alice.did);
    const raw = row!.payload.toString("latin1");
    for (const secret of [saved!.tokenSet.access_token, saved!.tokenSet.refresh_token!, String((saved!.dpopJwk as { d?: string }).d), "access_token", alice.did]) {
      expect(raw).not.toContain(secret);
    }
    // The flow's state was consumed.
    expect((await db.sql`select count(*)::int as n from bluesky_oauth_state`)[0]!.n).toBe(0);

    const agent = await oauth.agentFor(alice.did);
    expect(agent.did).toBe(alice.did);
    await createFollow(agent, alice.did, bob.did);
    await net.processAll();
    expect(await appViewFollows(net, alice.did)).toContain(bob.did);

    // The scope is that and nothing more: no posts.
    await expect(
      agent.com.atproto.repo.createRecord({
        repo: alice.did,
        collection: "app.bsky.feed.post",
        record: { $type: "app.bsky.feed.post", text: "hello", createdAt: new Date().toISOString() },
      }),
    ).rejects.toMatchObject({ status: 403 });
  });

  it("refreshes an expired access token and keeps the new tokens", async () => {
    const before = (await store.getSession(alice.did))!;
    await store.setSession(alice.did, {
      ...before,
      tokenSet: { ...before.tokenSet, expires_at: new Date(Date.now() - 60_000).toISOString() },
    });
    const agent = await oauth.agentFor(alice.did);
    const after = (await store.getSession(alice.did))!;
    expect(after.tokenSet.access_token).not.toBe(before.tokenSet.access_token);
    expect(after.tokenSet.refresh_token).not.toBe(before.tokenSet.refresh_token);
    await createFollow(agent, alice.did, carol.did);
    await net.processAll();
    expect(await appViewFollows(net, alice.did)).toContain(carol.did);
  });

  it("a session revoked by the person on their PDS ends in AuthorizationExpiredError", async () => {
    await authorizeAs(bob, "link-bob");
    const agent = await oauth.agentFor(bob.did);
    // What the PDS's account page does when the person revokes the app.
    const provider = net.network.pds.ctx.oauthProvider as unknown as {
      tokenManager: {
        findToken(token: string): Promise<{ id: string } | null>;
        deleteToken(id: string): Promise<void>;
      };
    };
    const saved = (await store.getSession(bob.did))!;
    const token = await provider.tokenManager.findToken(saved.tokenSet.refresh_token!);
    await provider.tokenManager.deleteToken(token!.id);

    const error = await createFollow(agent, bob.did, alice.did).catch((e: unknown) => e);
    expect(isAuthorizationExpired(error)).toBe(true);
    expect(await store.hasSession(bob.did)).toBe(false);
    await expect(oauth.agentFor(bob.did)).rejects.toBeInstanceOf(AuthorizationExpiredError);
  });

  it("revoke() ends the session at the PDS and here", async () => {
    await authorizeAs(carol, "link-carol");
    const saved = (await store.getSession(carol.did))!;
    await oauth.revoke(carol.did);
    expect(await sessionRow(carol.did)).toBeUndefined();
    await expect(oauth.agentFor(carol.did)).rejects.toBeInstanceOf(AuthorizationExpiredError);
    const provider = net.network.pds.ctx.oauthProvider as unknown as {
      tokenManager: { findToken(token: string): Promise<unknown> };
    };
    expect(await provider.tokenManager.findToken(saved.tokenSet.access_token)).toBeNull();
    // Revoking again (nothing stored) is harmless.
    await oauth.revoke(carol.did);
  });

  it("revokeSession() ends at the PDS a session kept nowhere any more (the revocation outbox's copy)", async () => {
    const fay = await net.createUser("fay");
    await authorizeAs(fay, "link-fay");
    const saved = (await store.getSession(fay.did))!;
    await store.deleteSession(fay.did);
    const provider = net.network.pds.ctx.oauthProvider as unknown as {
      tokenManager: { findToken(token: string): Promise<unknown> };
    };
    expect(await provider.tokenManager.findToken(saved.tokenSet.refresh_token!)).not.toBeNull();
    await oauth.revokeSession(saved);
    expect(await provider.tokenManager.findToken(saved.tokenSet.refresh_token!)).toBeNull();
    expect(await provider.tokenManager.findToken(saved.tokenSet.access_token)).toBeNull();
    // Already revoked: the server no longer knows it, which counts as done.
    await oauth.revokeSession(saved);
  });

  it("never-authorized accounts have no agent", async () => {
    await expect(oauth.agentFor("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")).rejects.toBeInstanceOf(AuthorizationExpiredError);
  });

  it("a declined authorization shows a short page and stores nothing", async () => {
    const dave = await net.createUser("dave");
    const page = await consent(await oauth.authorize(dave.did, "link-dave"), dave, "Deny access");
    expect(page.text).toMatch(/You declined the authorization/);
    expect(await store.hasSession(dave.did)).toBe(false);
  });

  it("a forged or replayed callback gets a clear page without details", async () => {
    for (const query of ["?state=forged&code=abc&iss=x", "", "?error=server_error&state=nope"]) {
      const res = await fetch(`${origin}/oauth/bluesky/callback${query}`, { headers: { "accept-language": "fr-FR,fr" } });
      expect(res.status).toBe(400);
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("referrer-policy")).toBe("no-referrer");
      expect(res.headers.get("content-security-policy")).toMatch(/frame-ancestors 'none'/);
      const html = await res.text();
      expect(html).toMatch(/a expiré ou a déjà servi/);
      expect(html).not.toMatch(/Error|at .*\.js|forged|abc/);
    }
  });

  it("an unknown handle is reported as such", async () => {
    await expect(oauth.authorize("nobody-here.test", "x")).rejects.toBeInstanceOf(UnknownAccountError);
    await expect(oauth.authorize("not a handle", "x")).rejects.toBeInstanceOf(UnknownAccountError);
    await expect(oauth.authorize("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", "x")).rejects.toBeInstanceOf(UnknownAccountError);
    // A directory that cannot be reached is not "unknown".
    const cut = new BlueskyOAuth({ store, publicUrl: new URL(origin), allowPrivateAddresses: true, plcUrl: "http://127.0.0.1:9", handleResolver: net.pdsUrl });
    const error = await cut.authorize(alice.did, "x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(UnknownAccountError);
  });
});

describe("sessions and people", () => {
  it("a session follows its identity: attached when the identity appears, deleted with the person", async () => {
    const erin = await net.createUser("erin");
    await authorizeAs(erin, "link-erin");
    expect((await sessionRow(erin.did))!.identity_id).toBeNull();

    const person = await db.store.people.create();
    const identity = await db.store.identities.attach(person.id, {
      platform: "bluesky",
      stableId: erin.did,
      handle: erin.handle,
      verifiedBy: "dm",
    });
    expect((await sessionRow(erin.did))!.identity_id).toBe(identity.id);

    // Authorizing again keeps it attached.
    await authorizeAs(erin, "link-erin-2");
    expect((await sessionRow(erin.did))!.identity_id).toBe(identity.id);

    await db.store.forget(person.id);
    expect(await sessionRow(erin.did)).toBeUndefined();
    await expect(oauth.agentFor(erin.did)).rejects.toBeInstanceOf(AuthorizationExpiredError);
  });

  it("expired flows are swept", async () => {
    await store.setState("old-flow", { iss: "x", dpopJwk: {} as never, authMethod: { method: "none" }, verifier: "v" }, -1);
    await store.setState("new-flow", { iss: "x", dpopJwk: {} as never, authMethod: { method: "none" }, verifier: "v" });
    expect(await store.getState("old-flow")).toBeUndefined();
    expect(await store.getState("new-flow")).toMatchObject({ verifier: "v" });
    const keys = await db.sql<{ key: string }[]>`select key from bluesky_oauth_state`;
    expect(keys.map((k) => k.key)).toEqual(["new-flow"]);
    await store.deleteState("new-flow");
  });

  it("the refresh lease serialises holders across store instances", async () => {
    const other = new BlueskyOAuthStore(db.sql, new SecretBox(TEST_SECRET_KEY));
    const order: string[] = [];
    const hold = (s: BlueskyOAuthStore, name: string) =>
      s.withLock("lease-test", async () => {
        order.push(`${name}+`);
        await new Promise((r) => setTimeout(r, 150));
        order.push(`${name}-`);
      });
    await Promise.all([hold(store, "a"), hold(other, "b"), hold(store, "c")]);
    for (let i = 0; i < order.length; i += 2) expect(order[i]!.slice(0, 1)).toBe(order[i + 1]!.slice(0, 1));
  });
});
