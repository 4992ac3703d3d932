/**
 * Drains the revocation outbox (src/store/revocations.ts): authorizations
 * the store let go of without the person asking — a Move's old account, an
 * account a registry import replaced — are revoked at their servers, each
 * as the client it was issued to. A server that cannot be reached is tried
 * again later (a minute, doubling to six hours, for about a day); one that
 * refuses for good, or a grant with nothing left to revoke, ends the row.
 */
import type { Logger } from "../logger.ts";
import type { Revocations, PendingRevocation } from "../store/revocations.ts";
import { MAX_REVOCATION_ATTEMPTS } from "../store/revocations.ts";
import { endAppPasswordSession } from "./bluesky/app-password.ts";
import type { BlueskyOAuth } from "./bluesky/oauth.ts";
import { MastodonApiError } from "./mastodon/client.ts";
import type { MastodonOAuth } from "./mastodon/oauth.ts";
import type { BlueskyAppPasswordAuthorization, MastodonAuthorization } from "./types.ts";

/** Revokes one retired grant at its server; throws when it should be tried again. */
export type GrantRevoker = (pending: PendingRevocation) => Promise<"revoked" | "nothing-to-revoke">;

/** The revoker of the service: Mastodon tokens as their app, Bluesky OAuth sessions with their DPoP key, app-password sessions ended. */
export function createGrantRevoker(deps: {
  mastodon: Pick<MastodonOAuth, "revoke">;
  blueskyOAuth: Pick<BlueskyOAuth, "revokeSession"> | undefined;
  allowPrivateAddresses: boolean;
}): GrantRevoker {
  return async (pending) => {
    switch (pending.kind) {
      case "mastodon-oauth":
        await deps.mastodon.revoke(pending.data as MastodonAuthorization);
        return "revoked";
      case "bluesky-app-password":
        // The app password itself only its owner can revoke: its session ends.
        await endAppPasswordSession(pending.data as BlueskyAppPasswordAuthorization, { allowPrivateAddresses: deps.allowPrivateAddresses });
        return "revoked";
      case "bluesky-oauth":
        if (!pending.blueskySession) return "nothing-to-revoke";
        if (!deps.blueskyOAuth) throw new FinalRefusal("Bluesky OAuth is off on this service");
        await deps.blueskyOAuth.revokeSession(pending.blueskySession);
        return "revoked";
    }
  };
}

/** A refusal that no later attempt will change. */
export class FinalRefusal extends Error {}

/**
 * Revokes what is due, up to `limit` grants (of `only`, when given);
 * returns what happened. Never throws for one grant's failure (each is
 * logged, without its token).
 */
export async function drainRevocations(
  revocations: Revocations,
  revoke: GrantRevoker,
  log: Logger,
  options: { limit?: number; only?: readonly number[] } = {},
): Promise<{ revoked: number; retrying: number; givenUp: number }> {
  const counts = { revoked: 0, retrying: 0, givenUp: 0 };
  // At once: they are on different servers, and one that does not answer holds up no other.
  await Promise.all(
    (await revocations.claimDue(options.limit ?? 20, options.only)).map(async (pending) => {
      const about = { revocation: pending.id, kind: pending.kind, attempt: pending.attempt };
      try {
        const outcome = await revoke(pending);
        await revocations.done(pending.id);
        counts.revoked++;
        log.info({ ...about, outcome }, "reconnect: a retired authorization was revoked at its server");
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

/** A client error from the server (not a rate limit or a timeout): asking again gets the same answer. */
function isFinal(error: unknown): boolean {
  if (error instanceof FinalRefusal) return true;
  const status = error instanceof MastodonApiError ? error.status : (error as { status?: unknown } | null)?.status;
  return typeof status === "number" && status >= 400 && status < 500 && status !== 408 && status !== 429;
}
