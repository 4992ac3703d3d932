/**
 * The bot under test: the real service wiring (express app + Fedify + the
 * PostgreSQL queues) on 127.0.0.1, on a port that stays the same across
 * restarts (its actor URIs depend on it).
 */
import type { Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { createFediverseBot, type FediverseBot, type FediverseBotOptions } from "../../bots/fediverse/index.ts";
import { loadConfig, type Config } from "../../src/config.ts";
import { createLogger } from "../../src/logger.ts";
import { createWebApp } from "../../src/web/app.ts";
import type { TestDatabase } from "./database.ts";
import { until } from "./wait.ts";

export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The bot's configuration for tests; a variable set to `undefined` in `env` is left unset (its default). */
export function botConfig(port: number, env: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    PORT: String(port),
    ALLOW_PRIVATE_ADDRESSES: "true",
    DEFAULT_LANGUAGE: "en",
    ...env,
  });
}

export interface RunningBot {
  bot: FediverseBot;
  config: Config;
  origin: string;
  actorId: string;
  inbox: string;
  sharedInbox: string;
  /**
   * Resolves once the bot has nothing left to do: every activity it took in
   * handled (a queued one is deleted only once its handler is done, and what
   * a handler queues is committed before that), every delivery made, none
   * waiting to be tried again. What has not arrived by then was never sent:
   * a positive signal to wait for before checking that nothing came.
   */
  drained(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the bot; `workers: false` accepts activities without handling them (for restart tests). */
export async function startBot(
  db: TestDatabase,
  port: number,
  options: { workers?: boolean | "inbox"; env?: Record<string, string | undefined> } & Partial<Pick<FediverseBotOptions, "engine" | "onHandled" | "queue" | "claimLeaseSeconds" | "outboxRetryPolicy" | "inboxRetryPolicy">> = {},
): Promise<RunningBot> {
  const config = botConfig(port, options.env);
  const bot = createFediverseBot({
    config,
    store: db.store,
    sql: db.sql,
    log: createLogger(process.env.TEST_LOG_LEVEL ?? "silent"),
    queue: { pollMs: 200, ...options.queue },
    ...(options.engine ? { engine: options.engine } : {}),
    ...(options.onHandled ? { onHandled: options.onHandled } : {}),
    ...(options.claimLeaseSeconds !== undefined ? { claimLeaseSeconds: options.claimLeaseSeconds } : {}),
    ...(options.outboxRetryPolicy ? { outboxRetryPolicy: options.outboxRetryPolicy } : {}),
    ...(options.inboxRetryPolicy ? { inboxRetryPolicy: options.inboxRetryPolicy } : {}),
  });
  const app = createWebApp({ store: db.store, ready: () => true, routes: [bot.middleware] });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(port, "127.0.0.1", () => resolve(s));
    s.once("error", reject);
  });
  if (options.workers === "inbox") bot.start("inbox");
  else if (options.workers !== false) bot.start();
  const origin = config.publicUrl.origin;
  return {
    bot,
    config,
    origin,
    actorId: bot.actorUri.href,
    inbox: `${bot.actorUri.href}/inbox`,
    sharedInbox: `${origin}/inbox`,
    async drained(timeoutMs = 30_000) {
      const { inbox, outbox, fanout } = bot.queues;
      await bot.settled();
      await until("the bot's queues to be empty", async () => (await inbox.depth()) + (await outbox.depth()) + (await fanout.depth()) === 0, timeoutMs, 50);
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await bot.close();
    },
  };
}
