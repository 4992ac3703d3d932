/**
 * Bluesky OAuth end to end with the production form of the client: PUBLIC_URL
 * is https on a domain name, so BlueskyOAuth is the confidential client
 * (client_id = its metadata URL, private_key_jwt with the ES256 key sealed in
 * PostgreSQL, jwks.json, DPoP). Our router is served over HTTPS on 127.0.0.1;
 * the dev-env PDS's real authorization server fetches our metadata and keys,
 * Chromium goes through its sign-in and consent pages, and the session is
 * then used, refreshed and revoked: every step where the PDS checks our
 * client assertion.
 *
 * The domain is `reconnexion.internal` (.internal is reserved for private
 * use): the PDS refuses client_ids, client_uri and redirect URIs on .test,
 * .local, .localhost, .invalid and .example (isLocalHostname in
 * @atproto/oauth-types), and IP addresses. Nothing resolves that name, so the
 * test stands in for DNS and for a public CA, and only that: a self-signed
 * certificate made with openssl, trusted by the PDS's fetches and by Chromium,
 * and the name mapped to 127.0.0.1 for both (see `standInFetch`).
 */
import { execFile } from "node:child_process";
import type { LookupAddress } from "node:dns";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import express from "express";
import { chromium, type BrowserContext } from "playwright-core";
import { Agent as UndiciAgent, Dispatcher1Wrapper } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appViewFollows, createFollow, startBlueskyNetwork, type BlueskyNetwork, type TestUser } from "../../../test/harness/bluesky.ts";
import { createTestDatabase, TEST_SECRET_KEY, type TestDatabase } from "../../../test/harness/database.ts";
import { BlueskyOAuthStore } from "../../store/bluesky-oauth.ts";
import { SecretBox } from "../../store/secrets.ts";
import { AuthorizationExpiredError } from "../types.ts";
import { BLUESKY_OAUTH_SCOPE, BlueskyOAuth, CALLBACK_PATH, CLIENT_METADATA_PATH, JWKS_PATH } from "./oauth.ts";

const DOMAIN = "reconnexion.internal";

let net: BlueskyNetwork;
let db: TestDatabase;
let store: BlueskyOAuthStore;
let oauth: BlueskyOAuth;
let server: Server;
let origin: string;
let tlsDir: string;
let certificate: string;
let browser: BrowserContext;
let browserDir: string;
let alice: TestUser;
let bob: TestUser;
let carol: TestUser;
let restoreFetch: (() => Promise<void>) | undefined;
/** Paths requested on our https server, in order (the PDS's fetches and Chromium's callback). */
const requests: string[] = [];

/** A self-signed certificate for DOMAIN (key and cert PEM files in `dir`). */
async function makeCertificate(dir: string): Promise<{ key: string; cert: string }> {
  const keyFile = path.join(dir, "key.pem");
  const certFile = path.join(dir, "cert.pem");
  await promisify(execFile)("/usr/bin/openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", keyFile, "-out", certFile, "-days", "2",
    "-subj", `/CN=${DOMAIN}`, "-addext", `subjectAltName=DNS:${DOMAIN}`,
  ]);
  return { key: await readFile(keyFile, "utf8"), cert: await readFile(certFile, "utf8") };
}

async function listenHttps(app: express.Express, tls: { key: string; cert: string }): Promise<Server> {
  const s = createServer(tls, app).listen(0, "127.0.0.1");
  await new Promise<void>((resolve, reject) => s.once("listening", resolve).once("error", reject));
  return s;
}

function close(s: Server | undefined): Promise<void> {
  return new Promise((resolve) => (s ? s.close(() => resolve()) : resolve()));
}

/**
 * Makes `globalThis.fetch` reach DOMAIN as if it had DNS and a certificate
 * from a public CA: requests for that host get a dispatcher whose connections
 * resolve it to 127.0.0.1 and trust our certificate. Everything else goes
 * through untouched. The PDS's safeFetch calls globalThis.fetch at call time
 * with a dispatcher of its own (its per-hop URL policy; dev-env turns SSRF
 * protection off): for DOMAIN ours replaces it, so only redirects from our
 * server — which sends none — would escape that policy.
 * @returns a function that puts the original fetch back
 */
function standInFetch(cert: string): () => Promise<void> {
  const original = globalThis.fetch;
  const lookup = (hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    if (hostname !== DOMAIN) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" }));
    const address: LookupAddress = { address: "127.0.0.1", family: 4 };
    return options.all ? callback(null, [address]) : callback(null, address.address, address.family);
  };
  const agent = new UndiciAgent({ connect: { lookup, ca: cert } as UndiciAgent.Options["connect"] });
  // The platform's fetch speaks undici's older dispatcher interface (as in createOperatorFetch).
  const dispatcher = new Dispatcher1Wrapper(agent);
  globalThis.fetch = function (this: unknown, input: Request | string | URL, init?: RequestInit) {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.hostname !== DOMAIN) return original.call(this, input, init);
    return original.call(this, input, { ...init, dispatcher } as RequestInit);
  } as typeof fetch;
  return async () => {
    globalThis.fetch = original;
    await agent.close();
  };
}

/** Signs in on the PDS's authorization pages and authorizes; returns the consent page's and the callback page's text. */
async function consent(url: URL, user: TestUser): Promise<{ consentText: string; callbackText: string }> {
  await browser.clearCookies();
  const page = await browser.newPage();
  try {
    await page.goto(url.href);
    await page.getByRole("textbox", { name: "Password" }).fill(user.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    const authorize = page.getByRole("button", { name: "Authorize" });
    await authorize.waitFor();
    const consentText = await page.locator("body").innerText();
    await authorize.click();
    await page.waitForURL(`${origin}${CALLBACK_PATH}**`);
    await page.waitForLoadState("load");
    return { consentText, callbackText: await page.locator("body").innerText() };
  } finally {
    await page.close();
  }
}

interface PdsTokenInfo {
  id: string;
  data: { clientId: string; clientAuth: { method: string; kid?: string }; did: string };
}

/** The PDS's own record of a token (null once revoked). */
function pdsToken(token: string): Promise<PdsTokenInfo | null> {
  const provider = net.network.pds.ctx.oauthProvider as unknown as {
    tokenManager: { findToken(token: string): Promise<PdsTokenInfo | null> };
  };
  return provider.tokenManager.findToken(token);
}

async function sessionRow(did: string) {
  const [row] = await db.sql<{ payload: Buffer }[]>`select payload from bluesky_oauth_session where did = ${did}`;
  return row;
}



/** The kid of our one signing key, as the PDS reads it at jwks.json. */
async function ourKid(): Promise<string> {
  const [row] = await db.sql<{ kid: string }[]>`select kid from bluesky_oauth_key where active`;
  return row!.kid;
}

beforeAll(async () => {
  [net, db] = await Promise.all([startBlueskyNetwork(), createTestDatabase()]);
  [alice, bob, carol] = await Promise.all([net.createUser("alice"), net.createUser("bob"), net.createUser("carol")]);
  store = new BlueskyOAuthStore(db.sql, new SecretBox(TEST_SECRET_KEY));

  tlsDir = await mkdtemp(path.join(os.tmpdir(), "reconnexion-tls-"));
  const tls = await makeCertificate(tlsDir);
  certificate = tls.cert;
  restoreFetch = standInFetch(certificate);

  // Listen first: the port is part of PUBLIC_URL, hence of the client_id.
  const app = express();
  app.use((req, _res, next) => {
    requests.push(req.path);
    next();
  });
  server = await listenHttps(app, tls);
  origin = `https://${DOMAIN}:${(server.address() as AddressInfo).port}`;
  oauth = new BlueskyOAuth({
    store,
    publicUrl: new URL(origin),
    allowPrivateAddresses: true,
    plcUrl: net.network.plc.url,
    handleResolver: net.pdsUrl,
  });
  app.use(oauth.router(async (result) => `<!doctype html><p>authorized ${result.did} state ${result.state}</p>`));

  browserDir = await mkdtemp(path.join(os.tmpdir(), "reconnexion-chromium-"));
  browser = await chromium.launchPersistentContext(browserDir, {
    executablePath: "/usr/bin/chromium",
    ignoreHTTPSErrors: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // DNS and CA stand-ins for the browser, as standInFetch is for the PDS.
      `--host-resolver-rules=MAP ${DOMAIN} 127.0.0.1`,
      "--ignore-certificate-errors",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  if (browserDir) await rm(browserDir, { recursive: true, force: true });
  await close(server);
  await restoreFetch?.();
  if (tlsDir) await rm(tlsDir, { recursive: true, force: true });
  await Promise.all([net?.close(), db?.drop()]);
});

describe("confidential client (https PUBLIC_URL) against the PDS's authorization server", () => {
  it("is the confidential client, its client_id on our https origin", () => {
    expect(oauth.loopback).toBe(false);
    expect(oauth.clientMetadata()).toMatchObject({
      client_id: `${origin}${CLIENT_METADATA_PATH}`,
      jwks_uri: `${origin}${JWKS_PATH}`,
      redirect_uris: [`${origin}${CALLBACK_PATH}`],
      token_endpoint_auth_method: "private_key_jwt",
      token_endpoint_auth_signing_alg: "ES256",
      scope: BLUESKY_OAUTH_SCOPE,
    });
  });

  it("authorizes: the PDS fetches our metadata and keys over https and accepts our private_key_jwt", async () => {
    const url = await oauth.authorize(alice.handle, "link-alice");
    expect(url.origin).toBe(new URL(net.pdsUrl).origin);
    // The pushed authorization request already carried our client assertion.
    expect(requests).toContain(CLIENT_METADATA_PATH);
    expect(requests).toContain(JWKS_PATH);

    const { consentText, callbackText } = await consent(url, alice);
    expect(consentText).toContain(DOMAIN);
    expect(callbackText).toContain(`authorized ${alice.did} state link-alice`);
    expect(requests.filter((p) => p === CALLBACK_PATH)).toHaveLength(1);

    // Our client's session, and the PDS's record of how it authenticated us.
    const saved = (await store.getSession(alice.did))!;
    expect(saved.tokenSet.scope).toBe(BLUESKY_OAUTH_SCOPE);
    const kid = await ourKid();
    expect(saved.authMethod).toEqual({ method: "private_key_jwt", kid });
    const token = await pdsToken(saved.tokenSet.access_token);
    expect(token?.data).toMatchObject({
      clientId: `${origin}${CLIENT_METADATA_PATH}`,
      clientAuth: { method: "private_key_jwt", kid },
      did: alice.did,
    });

    // Sealed at rest: the row holds no token, key or DID in clear.
    const raw = (await sessionRow(alice.did))!.payload.toString("latin1");
    for (const secret of [saved.tokenSet.access_token, saved.tokenSet.refresh_token!, String((saved.dpopJwk as { d?: string }).d), "access_token", alice.did]) {
      expect(raw).not.toContain(secret);
    }
  });

  it("restores the stored session and creates a follow the AppView sees", async () => {
    const agent = await oauth.agentFor(alice.did);
    expect(agent.did).toBe(alice.did);
    await createFollow(agent, alice.did, bob.did);
    await net.processAll();
    expect(await appViewFollows(net, alice.did)).toContain(bob.did);
  });

  it("refreshes an expired access token, authenticating with private_key_jwt again", async () => {
    const before = (await store.getSession(alice.did))!;
    await store.setSession(alice.did, {
      ...before,
      tokenSet: { ...before.tokenSet, expires_at: new Date(Date.now() - 60_000).toISOString() },
    });
    const agent = await oauth.agentFor(alice.did);
    const after = (await store.getSession(alice.did))!;
    expect(after.tokenSet.access_token).not.toBe(before.tokenSet.access_token);
    expect(after.tokenSet.refresh_token).not.toBe(before.tokenSet.refresh_token);
    const token = await pdsToken(after.tokenSet.access_token);
    expect(token?.data.clientAuth).toMatchObject({ method: "private_key_jwt", kid: await ourKid() });

    await createFollow(agent, alice.did, carol.did);
    await net.processAll();
    expect(await appViewFollows(net, alice.did)).toContain(carol.did);
  });

  it("revoke() ends the session at the PDS and here", async () => {
    const saved = (await store.getSession(alice.did))!;
    expect(await pdsToken(saved.tokenSet.access_token)).not.toBeNull();
    await oauth.revoke(alice.did);
    expect(await sessionRow(alice.did)).toBeUndefined();
    expect(await pdsToken(saved.tokenSet.access_token)).toBeNull();
    expect(await pdsToken(saved.tokenSet.refresh_token!)).toBeNull();
    await expect(oauth.agentFor(alice.did)).rejects.toBeInstanceOf(AuthorizationExpiredError);
  });
});
