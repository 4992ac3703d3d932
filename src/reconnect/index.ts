/**
 * The reconnection as the service runs it: authorization flows, writers,
 * the job runner and the web routes, assembled from configuration.
 */
import type { RequestHandler } from "express";
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import type { Sql } from "../store/database.ts";
import type { Store } from "../store/index.ts";
import { blueskyOAuthCompleted, connectRoutes } from "../web/connect.ts";
import { loginWithAppPassword } from "./bluesky/app-password.ts";
import { BlueskyOAuth } from "./bluesky/oauth.ts";
import { BlueskyWriteBudget, type WriteLimits } from "./budget.ts";
import { MastodonOAuth } from "./mastodon/oauth.ts";
import type { Messenger } from "./messenger.ts";
import { Reconnector, type ReconnectorOptions } from "./reconnector.ts";
import { createGrantRevoker } from "./revocations.ts";
import { createWriterFactory } from "./writers.ts";

export { Reconnector } from "./reconnector.ts";
export { routeMessages, type Messenger } from "./messenger.ts";

export interface Reconnection {
  reconnector: Reconnector;
  /** Undefined where Bluesky OAuth cannot run (PUBLIC_URL neither https nor loopback). */
  blueskyOAuth: BlueskyOAuth | undefined;
  /** The connect/export pages and the OAuth endpoints. */
  routes: RequestHandler[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createReconnection(options: {
  config: Config;
  store: Store;
  sql: Sql;
  databaseUrl: string;
  log: Logger;
  messenger: Messenger;
  userAgent: string;
  /** Runner overrides (tests: heartbeat, monitor, progress intervals). */
  runner?: Partial<ReconnectorOptions>;
  /** Bluesky write budget limits (tests inject tiny ones) and how long a writer waits in-process for it. */
  blueskyBudget?: Partial<WriteLimits>;
  blueskyMaxWaitMs?: number;
}): Reconnection {
  const { config, store, log } = options;
  const allowPrivateAddresses = config.allowPrivateAddresses;
  let blueskyOAuth: BlueskyOAuth | undefined;
  try {
    blueskyOAuth = new BlueskyOAuth({ store: store.blueskyOAuth, publicUrl: config.publicUrl, plcUrl: config.bluesky.plcUrl, allowPrivateAddresses });
  } catch (error) {
    log.warn({ reason: (error as Error).message }, "Bluesky OAuth off (app passwords still work)");
  }
  const mastodon = new MastodonOAuth({
    apps: store.mastodonApps,
    redirectUri: new URL("/connect/mastodon/callback", config.publicUrl).href,
    clientName: "reconnexion",
    website: config.publicUrl.href,
    allowPrivateAddresses,
  });
  const reconnector = new Reconnector({
    store,
    sql: options.sql,
    databaseUrl: options.databaseUrl,
    config,
    log: log.child({ component: "reconnect" }),
    messenger: options.messenger,
    revokeGrant: createGrantRevoker({ mastodon, blueskyOAuth, allowPrivateAddresses }),
    writers: createWriterFactory({
      config,
      blueskyOAuth,
      budget: new BlueskyWriteBudget(store.writeBudgets, options.blueskyBudget),
      userAgent: options.userAgent,
      ...(options.blueskyMaxWaitMs !== undefined ? { maxWaitMs: options.blueskyMaxWaitMs } : {}),
    }),
    ...options.runner,
  });
  const connect = {
    store,
    config,
    log,
    bluesky: {
      ...(blueskyOAuth ? { authorize: (id: string, state: string) => blueskyOAuth.authorize(id, state) } : {}),
      loginWithAppPassword: (input: { identifier: string; appPassword: string }) =>
        loginWithAppPassword({ ...input, plcUrl: config.bluesky.plcUrl, allowPrivateAddresses }),
    },
    mastodon,
    onAuthorized: (personId: number, platform: "bluesky" | "fediverse") => reconnector.authorized(personId, platform),
  };
  const routes: RequestHandler[] = [connectRoutes(connect)];
  if (blueskyOAuth) {
    const oauth = blueskyOAuth;
    routes.push(oauth.router(blueskyOAuthCompleted({ ...connect, revoke: (did) => oauth.revoke(did) }), { defaultLanguage: config.defaultLanguage }));
  }
  return {
    reconnector,
    blueskyOAuth,
    routes,
    start: () => reconnector.start(),
    stop: () => reconnector.stop(),
  };
}
