/**
 * The long-running service (`reconnexion start`, `npm start`): config →
 * store → web → (bots, scheduler as they are configured). Stops cleanly on
 * SIGINT/SIGTERM, taking the embedded PostgreSQL down with it.
 */
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { startBlueskyBot, type BlueskyBotOptions } from "../bots/bluesky/index.ts";
import { createFediverseBot } from "../bots/fediverse/index.ts";
import pkg from "../package.json" with { type: "json" };
import { scheduleAnnouncements } from "./announce/index.ts";
import { createLogger, redactUrl } from "./logger.ts";
import { createOperatorFetch, guardProcessFetch } from "./net/public-fetch.ts";
import { createReconnection, routeMessages } from "./reconnect/index.ts";
import { scheduleMaintenance } from "./maintenance.ts";
import type { Config } from "./config.ts";
import { openServices } from "./services.ts";
import { createWebApp } from "./web/app.ts";
import { archiveRoutes } from "./web/archive.ts";
import { homePage } from "./web/home.ts";

/** Runs the service until SIGINT or SIGTERM. */
export async function runService(): Promise<void> {
  const service = await startService();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      service.log.info({ signal }, "stopping");
      resolve();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  await service.stop();
}

/** The origins of the services the operator configured: this one, and the Bluesky PDS, PLC and AppView. */
export function operatorOrigins(config: Config): string[] {
  return [config.publicUrl.origin, ...[config.bluesky.service, config.bluesky.plcUrl, config.bluesky.appviewUrl].map((url) => new URL(url).origin)];
}

/** The HTTP port cannot be had (taken, not allowed): one sentence for the operator. */
export class ListenError extends Error {
  override name = "ListenError";
}

export interface RunningService {
  log: ReturnType<typeof createLogger>;
  /** The fediverse bot's actor URI. */
  actorUri: URL;
  /** Stops everything started, the embedded PostgreSQL included. */
  stop(): Promise<void>;
}

/**
 * Starts the service: listening, bots on, workers and schedules running.
 * `config` defaults to the environment's; `bluesky` tunes the Bluesky bot
 * (the sandbox polls faster).
 */
export async function startService(options: { config?: Config; bluesky?: BlueskyBotOptions } = {}): Promise<RunningService> {
  const services = await openServices(options.config ? { config: options.config } : {});
  const { config, store } = services;
  const log = createLogger(config.logLevel);
  log.info({ database: config.databaseUrl ? redactUrl(services.database.url) : `embedded in ${config.dataDir}` }, "store ready");

  // Every outbound request goes to public addresses only (SSRF), checked at
  // each connection: besides the servers people name, that covers Fedify's
  // deliveries, which follow an inbox's redirects unchecked. The operator's
  // own services may be anywhere.
  const fetchGuard = config.allowPrivateAddresses ? undefined : guardProcessFetch({ trustedOrigins: operatorOrigins(config) });
  if (fetchGuard?.viaProxy) log.warn("outbound requests go through the egress proxy (NODE_USE_ENV_PROXY): it must refuse private addresses itself; hosts in NO_PROXY are checked here");
  const unguardFetch = () => fetchGuard?.undo();

  let ready = false;
  // The bots and the reconnection need each other: commands queue jobs, jobs
  // report by DM. The messenger looks the bots up when it is used.
  let bluesky: ReturnType<typeof startBlueskyBot>;
  const messenger = routeMessages({
    fediverse: { send: (to, text) => fediverse.message(to.stableId!, to.handle, [text]) },
    bluesky: { send: async (to, text) => (bluesky ? bluesky.message({ did: to.stableId!, handle: to.handle }, [text]) : false) },
  });
  const reconnection = createReconnection({
    config,
    store,
    sql: services.database.sql,
    databaseUrl: services.database.url,
    log,
    userAgent: `reconnexion/${pkg.version} (+${config.publicUrl.href})`,
    messenger,
  });
  const reconnect = reconnection.reconnector;
  const fediverse = createFediverseBot({ config, store, sql: services.database.sql, log, engine: { reconnect } });
  let blueskyHandle: string | undefined;
  const acct = `${config.fediverseBotUsername}@${config.publicUrl.host}`;
  const home = homePage({
    fediverseAcct: acct,
    blueskyHandle: () => blueskyHandle,
    defaultLanguage: config.defaultLanguage,
  });
  // The upload page reads its own request body (before Fedify's middleware sees the request).
  const archivePage = archiveRoutes({ store, sql: services.database.sql, config, log });
  const app = createWebApp({ store, log, ready: () => ready, defaultLanguage: config.defaultLanguage, routes: [home, archivePage, fediverse.middleware, ...reconnection.routes] });
  const server = await new Promise<Server>((resolve, reject) => {
    // Express 5 hands a failed listen (EADDRINUSE…) to this callback.
    const s = app.listen(config.port, config.host, (error?: Error) => (error ? reject(error) : resolve(s)));
  }).catch(async (error: NodeJS.ErrnoException) => {
    await services.close();
    unguardFetch();
    throw new ListenError(`Cannot listen on ${config.host}:${config.port} (${error.code ?? error.message}).`);
  });
  // Node cuts every request at 5 minutes; an archive of 512 MiB from a slow
  // home connection takes longer. A request may take 30 minutes, but a
  // connection that sends nothing for 2 minutes is closed (a stalled or
  // slow-drip client), and headers still have Node's 60 seconds.
  server.requestTimeout = 30 * 60_000;
  server.timeout = 2 * 60_000;
  fediverse.start();
  ready = true;
  // The port bound (PORT=0 asks for any free one).
  const port = (server.address() as AddressInfo | null)?.port ?? config.port;
  log.info({ host: config.host, port, publicUrl: config.publicUrl.href }, "listening");
  log.info({ actor: fediverse.actorUri.href, acct: `@${acct}` }, "fediverse bot on");
  // The bot talks only to its own PDS (wherever its DID document puts it): the operator's, past the guard.
  const botFetch = fetchGuard ? { fetch: createOperatorFetch() } : {};
  bluesky = startBlueskyBot({ config, store, log, options: { ...botFetch, ...options.bluesky, engine: { reconnect } } });
  bluesky?.ready.then((b) => (blueskyHandle = b.handle), () => {});
  await reconnection.start();
  log.info("reconnection workers on");
  const maintenance = scheduleMaintenance(store, log);
  const announcements = scheduleAnnouncements(config.announceCron, {
    store,
    messenger,
    defaultLanguage: config.defaultLanguage,
    log,
    posters: () => ({
      fediverse: {
        post: async (text, named) => (await fediverse.announce(text, named.map((n) => ({ actorUri: n.stableId, acct: n.handle })))).href,
        retract: (uri) => fediverse.retract(uri),
      },
      ...(bluesky
        ? { bluesky: { post: (text, named) => bluesky!.announce(text, named.map((n) => ({ did: n.stableId, handle: n.handle }))), retract: (uri) => bluesky!.retract(uri) } }
        : {}),
    }),
  });

  return {
    log,
    actorUri: fediverse.actorUri,
    async stop() {
      ready = false;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await maintenance.stop();
      await announcements.stop();
      await reconnection.stop();
      await bluesky?.stop();
      await fediverse.close();
      await services.close();
      unguardFetch();
      log.info("stopped");
    },
  };
}
