/**
 * The fediverse bot: one Fedify federation, mounted in the express app,
 * with its key–value store and queues on the service's PostgreSQL.
 *
 *   const bot = await createFediverseBot({ config, store, sql, log });
 *   app.use(bot.middleware);
 *   bot.start();            // queue workers (inbox, outbox, fanout)
 *   await bot.close();      // stops taking tasks, waits for the running ones
 */
import { createFederation, type Federation, type RetryPolicy } from "@fedify/fedify";
import { isActor } from "@fedify/vocab";
import type { RequestHandler } from "express";
import { fedifyMiddleware } from "./express.ts";
import { ConversationEngine, type EngineContext } from "../../src/conversation/index.ts";
import type { Config } from "../../src/config.ts";
import type { Logger } from "../../src/logger.ts";
import type { Sql } from "../../src/store/database.ts";
import type { Store } from "../../src/store/index.ts";
import pkg from "../../package.json" with { type: "json" };
import { setupActor } from "./actor.ts";
import { publishNote, retractNote } from "./announce.ts";
import { prefersPage } from "../../src/web/link-page.ts";
import { sendPublicNotePage } from "../../src/web/public-note.ts";
import { DirectDelivery } from "./direct.ts";
import { sendReplies } from "./send.ts";
import { TtlCache } from "./cache.ts";
import { ICON_PATH, iconPng } from "./icon.ts";
import { setupInbox, type InboxOptions } from "./inbox.ts";
import { BotKeys } from "./keys.ts";
import { FediverseKvStore } from "./kv.ts";
import { publicInboxesOnly } from "./delivery-guard.ts";
import { PostgresQueue, UnreadableMessageError, type QueueOptions } from "./queue.ts";

const NOTE_PAGE = /^\/fediverse\/notes\/([0-9a-f-]{36})$/i;

export interface FediverseBotOptions {
  config: Config;
  store: Store;
  sql: Sql;
  log: Logger;
  /** Engine overrides (tests: clock, limits). */
  engine?: Partial<EngineContext>;
  queue?: QueueOptions;
  onHandled?: InboxOptions["onHandled"];
  /** See InboxOptions.claimLeaseSeconds (tests shorten it). */
  claimLeaseSeconds?: number;
  /** When a failed delivery is tried again (default: Fedify's exponential back-off from 1 s; tests shorten it). */
  outboxRetryPolicy?: RetryPolicy;
  /** When a message whose handling failed is tried again (default: Fedify's exponential back-off from 1 s; tests shorten it). */
  inboxRetryPolicy?: RetryPolicy;
}

export interface FediverseBot {
  federation: Federation<void>;
  /** Fedify's routes (WebFinger, actor, inboxes, NodeInfo…) and the avatar. */
  middleware: RequestHandler;
  actorUri: URL;
  queues: Record<"inbox" | "outbox" | "fanout", PostgresQueue>;
  /**
   * Writes to a person by direct message, unprompted (reconnection
   * reports): looks their actor up and queues the notes. False when the
   * actor cannot be fetched.
   */
  message(actorUri: string, acct: string | null, texts: readonly string[]): Promise<boolean>;
  /** Resolves once what the inbox does after answering (checking an unverifiable Delete with the actor's server) is done. */
  settled(): Promise<void>;
  /** Posts publicly (to its followers), mentioning `named`; returns the note's URI. */
  announce(text: string, named: readonly { actorUri: string; acct: string }[]): Promise<URL>;
  /** Takes back one of its public posts (`announce`'s URI): no longer served, deleted for its followers. */
  retract(noteUri: string): Promise<void>;
  /** Starts queue workers: all of them, or one queue's. */
  start(only?: "inbox" | "outbox" | "fanout"): void;
  /** Stops the workers and waits for the tasks they hold. */
  close(): Promise<void>;
}

export function createFediverseBot(options: FediverseBotOptions): FediverseBot {
  const { config, store, sql, log } = options;
  const username = config.fediverseBotUsername;
  const origin = config.publicUrl.origin;
  const onError = (error: unknown) =>
    error instanceof UnreadableMessageError ? log.error({ err: error.message }, "fediverse: queued message dropped") : log.warn({ err: error }, "fediverse: queue task failed");
  const queues = {
    inbox: new PostgresQueue(sql, "inbox", { concurrency: 4, onError, box: store.box, ...options.queue }),
    outbox: new PostgresQueue(sql, "outbox", {
      concurrency: 4,
      onError,
      box: store.box,
      ...(config.allowPrivateAddresses ? {} : { admit: publicInboxesOnly(log) }),
      ...options.queue,
    }),
    fanout: new PostgresQueue(sql, "fanout", { concurrency: 1, onError, box: store.box, ...options.queue }),
  };
  const kv = new FediverseKvStore(sql);
  const userAgent = `reconnexion/${pkg.version} (+${config.publicUrl.href})`;
  const federation = createFederation<void>({
    kv,
    queue: queues,
    origin,
    manuallyStartQueue: true,
    allowPrivateAddress: config.allowPrivateAddresses,
    userAgent,
    ...(options.outboxRetryPolicy ? { outboxRetryPolicy: options.outboxRetryPolicy } : {}),
    ...(options.inboxRetryPolicy ? { inboxRetryPolicy: options.inboxRetryPolicy } : {}),
  });
  const keys = new BotKeys(store, username);
  setupActor(federation, { username, keys, store, version: pkg.version });

  const actorUri = new URL(`/users/${username}`, origin);
  const engine = new ConversationEngine({ ...options.engine, store, config, botStableIds: [actorUri.href] });
  const delivery = new DirectDelivery(queues.outbox, username);
  const inboxBackground = setupInbox(federation, {
    username,
    delivery,
    store,
    engine,
    log,
    actors: new TtlCache({ ttlMs: 5 * 60_000, maxEntries: 10_000 }),
    batchOutbox: (fn, sql) => queues.outbox.batch(fn, sql),
    acct: {
      allowPrivateAddress: config.allowPrivateAddresses,
      userAgent,
      kv,
      memory: new TtlCache({ ttlMs: 5 * 60_000, maxEntries: 10_000 }),
      // https everywhere, except where private addresses are allowed (tests, sandbox).
      schemeFor: (actorId) => (config.allowPrivateAddresses && actorId.protocol === "http:" ? "http:" : "https:"),
    },
    ...(options.onHandled ? { onHandled: options.onHandled } : {}),
    ...(options.claimLeaseSeconds !== undefined ? { claimLeaseSeconds: options.claimLeaseSeconds } : {}),
  });

  const fedify = fedifyMiddleware(federation);
  const middleware: RequestHandler = (req, res, next) => {
    if (req.method === "GET" && req.path === ICON_PATH) {
      res.type("image/png").set("Cache-Control", "public, max-age=86400").send(iconPng());
      return;
    }
    // A public post, for a person whose server links to it; everything else, Fedify.
    const note = NOTE_PAGE.exec(req.path);
    if (req.method === "GET" && note && prefersPage(req)) {
      store.fediverse
        .publicNote(note[1]!)
        .then((kept) => (kept ? sendPublicNotePage(res, kept, config.defaultLanguage) : next()))
        .catch(next);
      return;
    }
    fedify(req, res, next);
  };

  const controller = new AbortController();
  const running: Promise<void>[] = [];
  return {
    federation,
    middleware,
    actorUri,
    queues,
    async message(actorUri, acct, texts) {
      const ctx = federation.createContext(new URL(origin), undefined);
      // Signed with the bot's key: some servers serve actors to signed requests only.
      const documentLoader = await ctx.getDocumentLoader({ identifier: username });
      const actor = await ctx.lookupObject(actorUri, { documentLoader }).catch(() => null);
      if (!actor || !isActor(actor)) return false;
      return (await sendReplies(ctx, { username, delivery, recipient: actor, acct, texts })) > 0;
    },
    async announce(text, named) {
      return publishNote(federation.createContext(new URL(origin), undefined), { username, store, text, named });
    },
    async retract(noteUri) {
      await retractNote(federation.createContext(new URL(origin), undefined), { username, store, noteUri });
    },
    start(only) {
      const task = federation
        .startQueue(undefined, { signal: controller.signal, ...(only ? { queue: only } : {}) })
        .catch((error: unknown) => log.error({ err: error }, "fediverse: queue stopped"));
      running.push(task);
    },
    settled: () => inboxBackground.settled(),
    async close() {
      controller.abort();
      await Promise.all(running);
      await inboxBackground.settled();
    },
  };
}
