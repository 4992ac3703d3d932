/**
 * Revoking at their servers the grants the store let go of without the
 * person asking: a Move's old account on a real Mastodon test instance,
 * a server that does not answer (tried again, then given up), and one that
 * refuses for good. Bluesky's kinds: bluesky/oauth.test.ts (revokeSession)
 * and bluesky/app-password.test.ts (the registry's replacement, end to end).
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../logger.ts";
import { Store } from "../store/index.ts";
import { MAX_REVOCATION_ATTEMPTS } from "../store/revocations.ts";
import { SecretBox } from "../store/secrets.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { startMastodonInstance, type MastodonInstance } from "../../test/harness/mastodon-instance.ts";
import { MastodonClient } from "./mastodon/client.ts";
import { MastodonOAuth } from "./mastodon/oauth.ts";
import { createGrantRevoker, drainRevocations } from "./revocations.ts";
import type { MastodonAuthorization } from "./types.ts";

let db: TestDatabase;
let instance: MastodonInstance;
const lines: string[] = [];
const log = createLogger("info", { write: (line: string) => void lines.push(line) });

beforeAll(async () => {
  db = await createTestDatabase();
  instance = await startMastodonInstance({ users: ["dan", "eve", "fox", "gus", "hal", "ian"].map((name) => ({ name })) });
});
afterAll(async () => {
  await instance?.close();
  await db?.drop();
});
beforeEach(() => {
  lines.length = 0;
});

const revoker = () =>
  createGrantRevoker({
    mastodon: new MastodonOAuth({ apps: db.store.mastodonApps, redirectUri: "http://127.0.0.1:9/cb", clientName: "reconnexion", website: "http://127.0.0.1:9", allowPrivateAddresses: true }),
    blueskyOAuth: undefined,
    allowPrivateAddresses: true,
  });
const drain = () => drainRevocations(db.store.revocations, revoker(), log);
const works = (token: string) =>
  new MastodonClient({ instance: instance.origin, accessToken: token, allowPrivateAddresses: true }).verifyCredentials().then(() => true, () => false);

/** A person's fediverse identity with a token `username` got from the test instance, as the OAuth callback stores it. */
async function authorized(username: string, options: { instance?: string; wrongSecret?: boolean } = {}) {
  const token = instance.issueToken(username);
  const app = instance.apps.at(-1)!;
  const p = await db.store.people.create();
  const host = new URL(instance.origin).host;
  const identity = await db.store.identities.attach(p.id, {
    platform: "fediverse", stableId: `${instance.origin}/users/${username}`, handle: `${username}@${host}`, verifiedBy: "dm",
  });
  const grant: MastodonAuthorization = {
    instance: options.instance ?? instance.origin, accessToken: token, scope: "read write follow", accountId: "1",
    app: { clientId: app.clientId, clientSecret: options.wrongSecret ? "not-the-secret" : app.clientSecret },
  };
  await db.store.authorizations.save(identity.id, "mastodon-oauth", grant);
  return { identity, token };
}

describe("revoking retired grants", () => {
  it("revokes a Move's old token at the old instance, as the app it was issued to", async () => {
    const { identity, token } = await authorized("dan");
    expect(await db.store.fediverse.moveIdentity(identity.stableId!, { actorUri: "https://new.example/users/dan", acct: "dan@new.example", apiBase: null })).toBe(true);
    // Out of the identity's reach at once; still a working token at its server until revoked there.
    expect(await db.store.authorizations.get(identity.id)).toBeUndefined();
    expect(await works(token)).toBe(true);
    expect(await drain()).toEqual({ revoked: 1, retrying: 0, givenUp: 0 });
    expect(await works(token)).toBe(false);
    expect(await db.store.revocations.count()).toBe(0);
    expect(await drain()).toEqual({ revoked: 0, retrying: 0, givenUp: 0 });
  });

  it("tries a server that does not answer again later, then gives up after the last attempt; no token in the logs", async () => {
    // Nothing listens on port 1.
    const { identity, token } = await authorized("eve", { instance: "http://127.0.0.1:1" });
    await db.store.revocations.retire([identity.id]);
    expect(await drain()).toEqual({ revoked: 0, retrying: 1, givenUp: 0 });
    // Leased until its next attempt.
    expect(await drain()).toEqual({ revoked: 0, retrying: 0, givenUp: 0 });
    expect(await db.store.revocations.count()).toBe(1);
    await db.sql`update authorization_revocation set next_attempt_at = now(), attempts = ${MAX_REVOCATION_ATTEMPTS - 1}`;
    expect(await drain()).toEqual({ revoked: 0, retrying: 0, givenUp: 1 });
    expect(await db.store.revocations.count()).toBe(0);
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual([
      "reconnect: could not revoke a retired authorization yet; will try again",
      "reconnect: gave up revoking a retired authorization at its server",
    ]);
    expect(lines.join("\n")).not.toContain(token);
  });

  it("gives up at once on a refusal that will not change (a client the instance does not accept)", async () => {
    const { identity, token } = await authorized("fox", { wrongSecret: true });
    await db.store.revocations.retire([identity.id]);
    expect(await drain()).toEqual({ revoked: 0, retrying: 0, givenUp: 1 });
    expect(await db.store.revocations.count()).toBe(0);
    expect(lines.join("\n")).not.toContain(token);
  });
  it("tries again, within its lease, a server that takes the connection and never answers", async () => {
    const silent = createServer(() => {}).listen(0, "127.0.0.1");
    await once(silent, "listening");
    try {
      const { identity, token } = await authorized("gus", { instance: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` });
      await db.store.revocations.retire([identity.id]);
      const started = Date.now();
      expect(await drainRevocations(db.store.revocations, revoker(), log, { timeoutMs: 300 })).toEqual({ revoked: 0, retrying: 1, givenUp: 0 });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(lines.join("\n")).toContain("no answer within 0.3 s");
      expect(lines.join("\n")).not.toContain(token);
      await db.sql`delete from authorization_revocation`;
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });

  it("keeps, and says so, a grant this replica cannot open (another SECRET_KEY), until its last attempt", async () => {
    const { identity } = await authorized("hal");
    await db.store.revocations.retire([identity.id]);
    const rekeyed = new Store(db.sql, new SecretBox("another-secret-key-of-at-least-32-characters"));
    expect(await drainRevocations(rekeyed.revocations, revoker(), log)).toEqual({ revoked: 0, retrying: 1, givenUp: 0 });
    expect(lines.join("\n")).toContain("cannot be opened with this SECRET_KEY");
    await db.sql`update authorization_revocation set next_attempt_at = now()`;
    // The replica with the right key revokes it.
    expect(await drain()).toEqual({ revoked: 1, retrying: 0, givenUp: 0 });
  });

  it("says when there was nothing to revoke with (no app known for a token stored without one)", async () => {
    const { identity } = await authorized("ian");
    const stored = (await db.store.authorizations.get<MastodonAuthorization>(identity.id))!;
    const { app: _app, ...withoutApp } = stored.data;
    await db.store.authorizations.save(identity.id, "mastodon-oauth", { ...withoutApp, instance: "http://127.0.0.1:2" });
    await db.store.revocations.retire([identity.id]);
    expect(await drain()).toEqual({ revoked: 1, retrying: 0, givenUp: 0 });
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(["reconnect: a retired authorization had nothing left to revoke"]);
  });
});
