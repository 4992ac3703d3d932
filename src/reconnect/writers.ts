/**
 * From a stored authorization to the writer that follows from that account:
 * Bluesky (OAuth session or app password, under the shared write budget)
 * or a Mastodon-compatible instance (OAuth token).
 */
import { AtpAgent } from "@atproto/api";
import type { Config } from "../config.ts";
import type { BlueskyAppPasswordAuthorization, MastodonAuthorization } from "./types.ts";
import { appPasswordAgent } from "./bluesky/app-password.ts";
import type { BlueskyOAuth } from "./bluesky/oauth.ts";
import { BlueskyWriter } from "./bluesky/writer.ts";
import type { WriteBudget } from "./budget.ts";
import { MastodonWriter } from "./mastodon/writer.ts";
import type { WriterFactory } from "./reconnector.ts";

export interface WriterDeps {
  config: Config;
  /** Undefined where Bluesky OAuth cannot run (a PUBLIC_URL that is neither https nor loopback). */
  blueskyOAuth: BlueskyOAuth | undefined;
  budget: WriteBudget;
  userAgent: string;
  /** How long a Bluesky writer waits in-process for the budget before re-queueing the job (default: the writer's). */
  maxWaitMs?: number;
}

export function createWriterFactory(deps: WriterDeps): WriterFactory {
  const allowPrivateAddresses = deps.config.allowPrivateAddresses;
  const appview = new AtpAgent({ service: deps.config.bluesky.appviewUrl });
  return async ({ platform, identity, store }) => {
    const auth = await store.authorizations.get(identity.id);
    if (!auth || !identity.stableId) return undefined;
    if (platform === "fediverse") {
      if (auth.kind !== "mastodon-oauth") return undefined;
      return new MastodonWriter(auth.data as MastodonAuthorization, { allowPrivateAddresses, userAgent: deps.userAgent });
    }
    let agent;
    if (auth.kind === "bluesky-oauth") {
      if (!deps.blueskyOAuth) return undefined;
      agent = await deps.blueskyOAuth.agentFor(identity.stableId);
    } else if (auth.kind === "bluesky-app-password") {
      agent = await appPasswordAgent(
        auth.data as BlueskyAppPasswordAuthorization,
        // The refreshed session is kept, so a job never logs in again (unless
        // the person authorized again meanwhile: theirs stays).
        async (next) => {
          await store.authorizations.renew(identity.id, auth.grant, "bluesky-app-password", next);
        },
        { allowPrivateAddresses },
      );
    } else {
      return undefined;
    }
    return new BlueskyWriter({
      agent,
      // Lookups (gone, blocked) need no session, and an OAuth session scoped to creating follows may not make them.
      appview,
      did: identity.stableId,
      budget: deps.budget,
      maxBatch: deps.config.bluesky.writeBatch,
      ...(deps.maxWaitMs !== undefined ? { maxWaitMs: deps.maxWaitMs } : {}),
    });
  };
}
