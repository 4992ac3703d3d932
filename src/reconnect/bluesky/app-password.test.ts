/**
 * The app-password fallback on the local Bluesky network: login through
 * handle → DID → PDS, refusing main passwords, resuming saved sessions
 * without a new login, and revoked app passwords ending in
 * AuthorizationExpiredError.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { AtpAgent } from "@atproto/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appViewFollows, createFollow, expiredAccessToken, startBlueskyNetwork, type BlueskyNetwork, type TestUser } from "../../../test/harness/bluesky.ts";
import { createTestDatabase } from "../../../test/harness/database.ts";
import { importRegistry, REGISTRY_COLUMNS } from "../../import/registry.ts";
import { createLogger } from "../../logger.ts";
import { MastodonOAuth } from "../mastodon/oauth.ts";
import { createGrantRevoker, drainRevocations } from "../revocations.ts";
import { AuthorizationExpiredError, type BlueskyAppPasswordAuthorization } from "../types.ts";
import { BlueskyLoginError, appPasswordAgent, endAppPasswordSession, loginWithAppPassword, normalizeAppPassword } from "./app-password.ts";
import { ForbiddenDestinationError, isAuthorizationExpired, networkFetch } from "./identity.ts";

let net: BlueskyNetwork;
let alice: TestUser;
let bob: TestUser;
let resolver: { plcUrl: string; handleResolver: string; allowPrivateAddresses: true };

/** Counts the session calls an agent makes (login vs refresh). */
const calls: string[] = [];
/** Makes the next write go out with a dead access token, as if it had expired. */
let expireNextWrite = false;
const realFetch = globalThis.fetch;


async function appPassword(user: TestUser, name: string): Promise<string> {
  const res = await user.agent.com.atproto.server.createAppPassword({ name });
  return res.data.password;
}



async function loginError(promise: Promise<unknown>): Promise<BlueskyLoginError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BlueskyLoginError);
  return error as BlueskyLoginError;
}

beforeAll(async () => {
  net = await startBlueskyNetwork();
  [alice, bob] = await Promise.all([net.createUser("alice"), net.createUser("bob")]);
  resolver = { plcUrl: net.network.plc.url, handleResolver: net.pdsUrl, allowPrivateAddresses: true };
  // Observe the XRPC session calls without changing them.
  globalThis.fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const method = /\/xrpc\/(com\.atproto\.server\.(createSession|refreshSession|deleteSession))/.exec(url)?.[1];
    if (method) calls.push(method);
    if (expireNextWrite && url.includes("/xrpc/com.atproto.repo.applyWrites")) {
      expireNextWrite = false;
      const request = new Request(input, init);
      request.headers.set("authorization", `Bearer ${expiredAccessToken(net, bob.did)}`);
      return realFetch(request);
    }
    return realFetch(input, init);
  };
});

afterAll(async () => {
  globalThis.fetch = realFetch;
  await net?.close();
});

describe("loginWithAppPassword", () => {
  it("resolves the handle to the account's PDS and keeps the session", async () => {
    const password = await appPassword(alice, "reconnexion");
    const auth = await loginWithAppPassword({ identifier: `@${alice.handle.toUpperCase()}`, appPassword: ` ${password.toUpperCase()} `, ...resolver });
    expect(auth).toMatchObject({ did: alice.did, identifier: alice.did, appPassword: password });
    expect(new URL(auth.service).origin).toBe(new URL(net.pdsUrl).origin);
    expect(auth.session).toMatchObject({ did: alice.did });

    // A DID works as well as a handle.
    const byDid = await loginWithAppPassword({ identifier: alice.did, appPassword: password, ...resolver });
    expect(byDid.did).toBe(alice.did);
  });

  it("refuses a main password without sending it", async () => {
    const before = calls.length;
    const error = await loginError(loginWithAppPassword({ identifier: alice.handle, appPassword: alice.password, ...resolver }));
    expect(error.problem).toBe("not_app_password");
    expect(error.message).toMatch(/not an app password.*xxxx-xxxx-xxxx-xxxx/);
    expect(calls.length).toBe(before);
    expect(normalizeAppPassword("abcd-efgh-ijkl-mnop")).toBe("abcd-efgh-ijkl-mnop");
    expect(normalizeAppPassword("abcd-efgh-ijkl-mno1")).toBeNull();
  });

  it("refuses a main password that looks like an app password, and ends the session it opened", async () => {
    const agent = new AtpAgent({ service: net.pdsUrl });
    const main = "wxyz-wxyz-wxyz-wxyz";
    await agent.createAccount({ handle: "lookalike.test", email: "lookalike@example.com", password: main });
    calls.length = 0;
    const error = await loginError(loginWithAppPassword({ identifier: "lookalike.test", appPassword: main, ...resolver }));
    expect(error.problem).toBe("not_app_password");
    expect(calls).toEqual(["com.atproto.server.createSession", "com.atproto.server.deleteSession"]);
  });

  it("says when the app password is wrong, without echoing it", async () => {
    const error = await loginError(loginWithAppPassword({ identifier: alice.handle, appPassword: "aaaa-bbbb-cccc-dddd", ...resolver }));
    expect(error.problem).toBe("wrong_password");
    expect(error.message).toBe("Bluesky did not accept this app password for this account. Check it, or create a new one.");
    expect(error.message).not.toContain("aaaa");
  });

  it("says when the handle is unknown or malformed", async () => {
    for (const identifier of ["nobody.test", "not a handle", "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa"]) {
      const error = await loginError(loginWithAppPassword({ identifier, appPassword: "aaaa-bbbb-cccc-dddd", ...resolver }));
      expect(error.problem).toBe("unknown_account");
    }
  });

  it("says when the network cannot be reached", async () => {
    const error = await loginError(
      loginWithAppPassword({ identifier: alice.did, appPassword: "aaaa-bbbb-cccc-dddd", ...resolver, plcUrl: "http://127.0.0.1:9" }),
    );
    expect(error.problem).toBe("unreachable");
    expect(error.message).toMatch(/could not be reached/);
  });

  it("does not reach private addresses unless allowed", async () => {
    const error = await loginError(
      loginWithAppPassword({ identifier: alice.handle, appPassword: "aaaa-bbbb-cccc-dddd", plcUrl: net.network.plc.url, handleResolver: net.pdsUrl }),
    );
    expect(error.problem).toBe("unknown_account");
    const guarded = networkFetch();
    await expect(guarded(`${net.pdsUrl}/xrpc/_health`)).rejects.toBeInstanceOf(ForbiddenDestinationError);
    await expect(guarded("https://127.0.0.1:9/")).rejects.toBeInstanceOf(ForbiddenDestinationError);
    await expect(guarded("https://[::1]:9/")).rejects.toBeInstanceOf(ForbiddenDestinationError);
    await expect(guarded("https://localhost:9/")).rejects.toBeInstanceOf(ForbiddenDestinationError);
  });
});

describe("appPasswordAgent", () => {
  let auth: BlueskyAppPasswordAuthorization;
  const saved: BlueskyAppPasswordAuthorization[] = [];
  const save = (next: BlueskyAppPasswordAuthorization) => {
    saved.push(next);
  };

  beforeAll(async () => {
    auth = await loginWithAppPassword({ identifier: bob.handle, appPassword: await appPassword(bob, "reconnexion"), ...resolver });
  });

  it("resumes the saved session by refreshing it, without a new login, and follows", async () => {
    calls.length = 0;
    const agent = await appPasswordAgent(auth, save, resolver);
    expect(calls).toEqual(["com.atproto.server.refreshSession"]);
    expect(agent.did).toBe(bob.did);
    // The refreshed session was handed over for saving; the old one is spent.
    expect(saved.at(-1)?.session).toMatchObject({ did: bob.did });
    expect((saved.at(-1)!.session as { refreshJwt: string }).refreshJwt).not.toBe((auth.session as { refreshJwt: string }).refreshJwt);
    auth = saved.at(-1)!;

    await createFollow(agent, bob.did, alice.did);
    await net.processAll();
    expect(await appViewFollows(net, bob.did)).toContain(alice.did);
  });

  it("logs in again, once, when the saved session is no longer valid", async () => {
    calls.length = 0;
    const stale = { ...auth, session: { ...(auth.session as object), refreshJwt: "not-a-token", accessJwt: "not-a-token" } };
    const agent = await appPasswordAgent(stale, save, resolver);
    expect(calls).toEqual(["com.atproto.server.refreshSession", "com.atproto.server.createSession"]);
    expect(saved.at(-1)!.session).toMatchObject({ did: bob.did });
    auth = saved.at(-1)!;
    await expect(agent.com.atproto.server.getSession()).resolves.toMatchObject({ data: { did: bob.did } });

    // Without a saved session at all: one login.
    calls.length = 0;
    await appPasswordAgent({ ...auth, session: undefined }, save, resolver);
    expect(calls).toEqual(["com.atproto.server.createSession"]);
    auth = saved.at(-1)!;
  });

  it("throws AuthorizationExpiredError once the app password is revoked", async () => {
    const agent = await appPasswordAgent(auth, save, resolver);
    auth = saved.at(-1)!;
    await bob.agent.com.atproto.server.revokeAppPassword({ name: "reconnexion" });

    await expect(appPasswordAgent(auth, save, resolver)).rejects.toBeInstanceOf(AuthorizationExpiredError);

    // An agent made before the revocation keeps its access token until it
    // expires; then the refresh and the one new login are refused.
    calls.length = 0;
    expireNextWrite = true;
    const error = await createFollow(agent, bob.did, alice.did).catch((e: unknown) => e);
    expect(isAuthorizationExpired(error)).toBe(true);
    expect(calls).toEqual(["com.atproto.server.refreshSession", "com.atproto.server.createSession"]);
  });
  it("ends at the PDS the session of an account the registry replaced (the revocation outbox, drained)", async () => {
    const db = await createTestDatabase();
    const dir = await mkdtemp(path.join(os.tmpdir(), "app-password-revoke-"));
    try {
      const carol = await net.createUser("carol");
      const registry = async (did: string) => {
        const file = path.join(dir, `${did.replace(/\W/g, "")}.csv`);
        await writeFile(file, `${REGISTRY_COLUMNS.join(",")}\n901,carol,${did},,,,,,\n`);
        await importRegistry(db.sql, file);
      };
      await registry(carol.did);
      const identity = (await db.store.findPerson({ platform: "bluesky", stableId: carol.did }))!.identities.find((i) => i.platform === "bluesky")!;
      const grant = await loginWithAppPassword({ identifier: carol.did, appPassword: await appPassword(carol, "reconnexion"), ...resolver });
      await db.store.authorizations.save(identity.id, "bluesky-app-password", grant);
      const session = grant.session as { refreshJwt: string };
      const refresh = async () => {
        const res = await realFetch(new URL("/xrpc/com.atproto.server.refreshSession", grant.service), { method: "POST", headers: { authorization: `Bearer ${session.refreshJwt}` } });
        return { status: res.status, body: (await res.json()) as unknown };
      };

      // A newer export names another Bluesky account for this person.
      await registry("did:plc:carolsnewaccount0000000000");
      expect(await db.store.authorizations.get(identity.id)).toBeUndefined();
      const revoke = createGrantRevoker({
        mastodon: new MastodonOAuth({ apps: db.store.mastodonApps, redirectUri: "http://127.0.0.1:9/cb", clientName: "reconnexion", website: "http://127.0.0.1:9", allowPrivateAddresses: true }),
        blueskyOAuth: undefined,
        allowPrivateAddresses: true,
      });
      expect(await drainRevocations(db.store.revocations, revoke, createLogger("silent"))).toEqual({ revoked: 1, retrying: 0, givenUp: 0 });
      expect(await refresh()).toEqual({ status: 400, body: { error: "ExpiredToken", message: "Token has been revoked" } });
      // Ending it again (a drain that died before deleting its row) is harmless.
      await expect(endAppPasswordSession(grant, resolver)).resolves.toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
      await db.drop();
    }
  });
});
