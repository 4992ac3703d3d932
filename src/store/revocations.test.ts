/**
 * The revocation outbox: authorizations let go of without the person
 * asking (Move, registry replacement) wait here, sealed as they were, until
 * a worker has revoked them at their servers.
 */
import type { NodeSavedSession } from "@atproto/oauth-client-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { Store } from "./index.ts";
import { SecretBox } from "./secrets.ts";

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});
beforeEach(async () => {
  await db.sql`delete from authorization_revocation`;
});

async function identity(platform: "bluesky" | "fediverse", stableId: string) {
  const p = await db.store.people.create();
  return db.store.identities.attach(p.id, { platform, stableId, ...(platform === "fediverse" ? { handle: `${p.id}@revoke.example` } : {}), verifiedBy: "dm" });
}

const session = { dpopJwk: { kty: "EC", d: "secret" }, authMethod: { method: "none" }, tokenSet: { access_token: "at", refresh_token: "rt", iss: "https://pds.example" } };

describe("revocations", () => {
  it("take an authorization out of its identity's reach, with its Bluesky OAuth session, sealed as they were", async () => {
    const id = await identity("bluesky", "did:plc:revokeone");
    await db.store.authorizations.save(id.id, "bluesky-oauth", { did: "did:plc:revokeone" });
    await db.store.blueskyOAuth.setSession("did:plc:revokeone", session as unknown as NodeSavedSession);
    const [sealed] = await db.sql<{ payload: Buffer }[]>`select payload from bluesky_oauth_session where did = 'did:plc:revokeone'`;

    expect(await db.store.revocations.retire([id.id])).toHaveLength(1);
    expect(await db.store.authorizations.get(id.id)).toBeUndefined();
    expect(await db.store.blueskyOAuth.getSession("did:plc:revokeone")).toBeUndefined();
    // Nothing readable at rest: the very bytes that were sealed.
    const [row] = await db.sql<{ session_payload: Buffer }[]>`select session_payload from authorization_revocation`;
    expect(row!.session_payload.equals(sealed!.payload)).toBe(true);
    expect(row!.session_payload.toString("latin1")).not.toMatch(/secret|"at"|"rt"/);

    const [pending] = await db.store.revocations.claimDue();
    expect(pending).toMatchObject({ kind: "bluesky-oauth", data: { did: "did:plc:revokeone" }, blueskySession: session, attempt: 1 });
    // Nothing else to retire for an identity without a grant.
    expect(await db.store.revocations.retire([id.id])).toEqual([]);
  });

  it("are leased to one worker at a time, and tried again later with a growing pause", async () => {
    for (const n of [1, 2, 3]) {
      const id = await identity("fediverse", `https://revoke.example/users/lease${n}`);
      await db.store.authorizations.save(id.id, "mastodon-oauth", { accessToken: `token-${n}` });
      await db.store.revocations.retire([id.id]);
    }
    // Two workers at once share nothing.
    const [a, b] = await Promise.all([db.store.revocations.claimDue(2), db.store.revocations.claimDue(2)]);
    const ids = [...a, ...b].map((r) => r.id);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    // Leased: not due again until the pause is over (a minute, then two…).
    expect(await db.store.revocations.claimDue()).toEqual([]);
    const pauses = await db.sql<{ minutes: number }[]>`
      select round(extract(epoch from next_attempt_at - now()) / 60)::int as minutes from authorization_revocation`;
    expect(pauses.map((p) => p.minutes)).toEqual([1, 1, 1]);
    await db.sql`update authorization_revocation set next_attempt_at = now()`;
    const again = await db.store.revocations.claimDue();
    expect(again.map((r) => r.attempt)).toEqual([2, 2, 2]);
    const [{ minutes } = { minutes: 0 }] = await db.sql<{ minutes: number }[]>`
      select round(extract(epoch from max(next_attempt_at) - now()) / 60)::int as minutes from authorization_revocation`;
    expect(minutes).toBe(2);
    for (const r of again) await db.store.revocations.done(r.id);
    expect(await db.store.revocations.count()).toBe(0);
  });

  it("hand back a row that does not open (sealed under another SECRET_KEY) as unreadable, and leave it for its attempts", async () => {
    const id = await identity("fediverse", "https://revoke.example/users/rekeyed");
    await db.store.authorizations.save(id.id, "mastodon-oauth", { accessToken: "token" });
    await db.store.revocations.retire([id.id]);
    const rekeyed = new Store(db.sql, new SecretBox("another-secret-key-of-at-least-32-characters"));
    expect(await rekeyed.revocations.claimDue()).toEqual([expect.objectContaining({ kind: "mastodon-oauth", attempt: 1, unreadable: true })]);
    expect(await db.store.revocations.count()).toBe(1);
  });

  it("drop a waiting revocation once the same token is granted again (Mastodon hands out a valid token anew)", async () => {
    const before = await identity("fediverse", "https://revoke.example/users/again");
    await db.store.authorizations.save(before.id, "mastodon-oauth", { accessToken: "same-token" });
    await db.store.revocations.retire([before.id]);
    // Forgotten, back, and authorized again: the instance gives the same token.
    const after = await identity("fediverse", "https://revoke.example/users/again2");
    await db.store.authorizations.save(after.id, "mastodon-oauth", { accessToken: "same-token" });
    expect(await db.store.revocations.count()).toBe(0);
    // Also when the grant comes back by a path that bypasses save (a row restored meanwhile): never claimed.
    await db.store.revocations.retire([after.id]);
    await db.sql`insert into account_authorization (identity_id, kind, payload, token_digest)
      select ${before.id}, kind, payload, token_digest from authorization_revocation`;
    expect(await db.store.revocations.claimDue()).toEqual([]);
    expect(await db.store.revocations.count()).toBe(0);
  });

  it("move a grant saved while they run, or leave it, never lose it (one statement)", async () => {
    const id = await identity("bluesky", "did:plc:revokerace");
    for (let round = 0; round < 20; round++) {
      await db.store.authorizations.save(id.id, "bluesky-app-password", { round });
      const [queued] = await Promise.all([db.store.revocations.retire([id.id]), db.store.authorizations.save(id.id, "bluesky-app-password", { round, again: true })]);
      const left = await db.store.authorizations.get(id.id);
      const moved = (await db.store.revocations.claimDue(50)).filter((r) => queued.includes(r.id));
      // Whatever the interleaving, the grant saved last is either still here or queued.
      const seen = [left?.data, ...moved.map((r) => (r.unreadable ? undefined : r.data))];
      expect(seen).toContainEqual({ round, again: true });
      await db.sql`delete from authorization_revocation`;
      await db.store.authorizations.delete(id.id);
    }
  });
});
