/**
 * Drains the revocation outbox (src/store/revocations.ts): grants the
 * service let go of are revoked at their servers, each as the client it was
 * issued to. A server that does not answer, or answers with an error that
 * may pass, is tried again later (a minute, doubling to six hours, for
 * about a day); an instance that refuses for good (a client it does not
 * accept), or a grant with nothing left to revoke, ends the row.
 */
import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "../logger.ts";
import type { PendingRevocation, Revocations } from "../store/revocations.ts";
import { MAX_REVOCATION_ATTEMPTS } from "../store/revocations.ts";
import { endAppPasswordSession } from "./bluesky/app-password.ts";
import type { BlueskyOAuth } from "./bluesky/oauth.ts";
import { MastodonApiError } from "./mastodon/client.ts";
import type { MastodonOAuth } from "./mastodon/oauth.ts";
import type { BlueskyAppPasswordAuthorization, MastodonAuthorization } from "./types.ts";

/** An opened grant from the outbox. */
export type OpenedRevocation = Extract<PendingRevocation, { unreadable: false }>;

/** Revokes one retired grant at its server; throws when it should be tried again. */
export type GrantRevoker = (pending: OpenedRevocation) => Promise<"revoked" | "nothing-to-revoke">;

/** How long one revocation may take: within the first lease (a minute), so no other worker takes it meanwhile. */
const ATTEMPT_TIMEOUT_MS = 30_000;

/** The revoker of the service: Mastodon tokens as their app, Bluesky OAuth sessions with their DPoP key, app-password sessions ended. */
export function createGrantRevoker(deps: {
  mastodon: Pick<MastodonOAuth, "revoke">;
  blueskyOAuth: Pick<BlueskyOAuth, "revokeSession"> | undefined;
  allowPrivateAddresses: boolean;
}): GrantRevoker {
  return async (pending) => {
    switch (pending.kind) {
      case "mastodon-oauth":
        return (await deps.mastodon.revoke(pending.data as MastodonAuthorization)) ? "revoked" : "nothing-to-revoke";
      case "bluesky-app-password":
        // The app password itself only its owner can revoke: its session ends.
        await endAppPasswordSession(pending.data as BlueskyAppPasswordAuthorization, { allowPrivateAddresses: deps.allowPrivateAddresses });
        return "revoked";
      case "bluesky-oauth":
        if (!pending.blueskySession) return "nothing-to-revoke";
        // Off on this replica (no usable PUBLIC_URL): another, or a later start, may have it.
        if (!deps.blueskyOAuth) throw new Error("Bluesky OAuth is off on this service");
        await deps.blueskyOAuth.revokeSession(pending.blueskySession);
        return "revoked";
    }
  };
}

/**
 * Revokes what is due, up to `limit` grants (of `only`, when given), all at
 * once (they are on different servers); returns what happened. Never throws
 * for one grant's failure: each outcome is logged, without its token.
 */
export async function drainRevocations(
  revocations: Revocations,
  revoke: GrantRevoker,
  log: Logger,
  options: { limit?: number; only?: readonly number[]; timeoutMs?: number } = {},
): Promise<{ revoked: number; retrying: number; givenUp: number }> {
  const counts = { revoked: 0, retrying: 0, givenUp: 0 };
  const timeoutMs = options.timeoutMs ?? ATTEMPT_TIMEOUT_MS;
  await Promise.all(
    (await revocations.claimDue(options.limit ?? 20, options.only)).map(async (pending) => {
      const about = { revocation: pending.id, kind: pending.kind, attempt: pending.attempt };
      try {
        if (pending.unreadable) throw new Error("it cannot be opened with this SECRET_KEY");
        const outcome = await withTimeout(revoke(pending), timeoutMs);
        await revocations.done(pending.id);
        counts.revoked++;
        log.info(
          { ...about, outcome },
          outcome === "revoked" ? "reconnect: a retired authorization was revoked at its server" : "reconnect: a retired authorization had nothing left to revoke",
        );
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        if (isFinal(error) || pending.attempt >= MAX_REVOCATION_ATTEMPTS) {
          await revocations.done(pending.id);
          counts.givenUp++;
          log.warn({ ...about, reason }, "reconnect: gave up revoking a retired authorization at its server");
        } else {
          counts.retrying++;
          log.warn({ ...about, reason }, "reconnect: could not revoke a retired authorization yet; will try again");
        }
      }
    }),
  );
  return counts;
}

async function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  const timer = new AbortController();
  try {
    return await Promise.race([
      work,
      delay(ms, undefined, { signal: timer.signal }).then(() => {
        throw new Error(`no answer within ${ms / 1000} s`);
      }),
    ]);
  } finally {
    timer.abort();
  }
}

/**
 * A Mastodon instance's client error (not a rate limit or a timeout): its
 * OAuth server answers a revocation 200 even for a token it no longer
 * knows, so a 4xx says this client may not revoke it, which asking again
 * will not change. Bluesky's answers are always tried again: an OAuth
 * server that cannot fetch this client's metadata right now answers
 * `invalid_client` too.
 */
function isFinal(error: unknown): boolean {
  return error instanceof MastodonApiError && error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
}
