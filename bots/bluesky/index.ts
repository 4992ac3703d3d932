/**
 * The Bluesky bot: logs in (resuming the saved session), labels its profile
 * as a bot, then polls its notifications and the chat log, hands each
 * mention or chat message to the conversation engine and delivers the
 * answers. Network errors, PDS restarts and rate limits make it wait and
 * resume; it never exits on its own.
 *
 * Built on @atproto/api rather than @skyware/bot (see README): the bot needs
 * its session refreshes saved as they happen, cursors of its own, and 429
 * handling that reads Bluesky's `ratelimit-*` headers — none of which
 * @skyware/bot 0.3.12 exposes.
 */
import type { AppBskyActorDefs } from "@atproto/api";
import type { Config } from "../../src/config.ts";
import { botNamesFrom, ConversationEngine, type EngineContext } from "../../src/conversation/index.ts";
import type { Logger } from "../../src/logger.ts";
import type { Store } from "../../src/store/index.ts";
import { pollChat, type ChatContext } from "./chat.ts";
import { describe, EventBusyError, isAuthFailure, isTransient } from "./errors.ts";
import { pollMentions, type MentionContext } from "./mentions.ts";
import { Outbox } from "./outbox.ts";
import { ensureBotProfile } from "./profile.ts";
import { rateLimitedFetch, sleep } from "./rate-limit.ts";
import { accountKey, openSession, type OpenSession } from "./session.ts";

/** Handled events are remembered this long (far past any notification the bot may see again). */
const EVENT_RETENTION_DAYS = 30;
const PURGE_EVERY_MS = 60 * 60_000;

export interface BlueskyBotOptions {
  /** Pause between two polls when all is well (default 5 s). */
  pollIntervalMs?: number;
  /** First pause after a failure; doubles up to `maxBackoffMs` (defaults 2 s, 5 min). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Read the chat log (default true). */
  chat?: boolean;
  /** The HTTP client under the rate limiter (tests). */
  fetch?: typeof globalThis.fetch;
  /** Notifications asked for per page (default 50; tests lower it). */
  notificationPageSize?: number;
  /** Engine overrides (clock, limits) for tests. */
  engine?: Partial<EngineContext>;
}

export interface BlueskyBot {
  /** Resolves once the bot is logged in (rejects if it never will be: bad credentials, stopped). */
  ready: Promise<{ did: string; handle: string; via: OpenSession["via"] }>;
  /** Resolves after the next complete poll of notifications and chat. */
  nextPoll(): Promise<void>;
  /**
   * Writes to a person by chat DM, unprompted (reconnection reports). False
   * when the bot is not logged in or the person does not accept DMs from it.
   */
  message(to: { did: string; handle: string | null }, texts: readonly string[]): Promise<boolean>;
  /** Posts publicly (≤ 300 graphemes), mentioning `named`; returns the post's URI. Throws while logged out. */
  announce(text: string, named: readonly { did: string; handle: string }[]): Promise<string>;
  /** Deletes one of its public posts (`announce`'s URI); a post already gone is not an error. */
  retract(uri: string): Promise<void>;
  stop(): Promise<void>;
}

/** Starts the bot; without credentials, logs one line and returns undefined. */
export function startBlueskyBot(options: {
  config: Config;
  store: Store;
  log: Logger;
  options?: BlueskyBotOptions;
}): BlueskyBot | undefined {
  const { config, store } = options;
  const { handle, appPassword, service } = config.bluesky;
  if (!handle || !appPassword) {
    const missing = [!handle && "BLUESKY_HANDLE", !appPassword && "BLUESKY_APP_PASSWORD"].filter(Boolean).join(" and ");
    options.log.info(`Bluesky bot off: ${missing} ${missing.includes(" and ") ? "are" : "is"} not set`);
    return undefined;
  }
  const log = options.log.child({ component: "bluesky-bot" });
  const opts = options.options ?? {};
  const pollIntervalMs = opts.pollIntervalMs ?? 5000;
  const backoffMs = opts.backoffMs ?? 2000;
  const maxBackoffMs = opts.maxBackoffMs ?? 5 * 60_000;
  const abort = new AbortController();
  const account = accountKey(handle);
  const fetch = rateLimitedFetch({
    base: opts.fetch ?? globalThis.fetch,
    signal: abort.signal,
    onWait: ({ ms, status, url }) =>
      log.warn({ waitMs: Math.round(ms), status, method: new URL(url).pathname.replace("/xrpc/", "") }, "Bluesky rate limit: waiting"),
  });

  let completedPolls = 0;
  let pollWaiters: Array<{ target: number; resolve: () => void }> = [];
  const settleWaiters = (all: boolean) => {
    const due = pollWaiters.filter((w) => all || completedPolls >= w.target);
    pollWaiters = pollWaiters.filter((w) => !due.includes(w));
    for (const w of due) w.resolve();
  };
  let readyResolve!: (v: { did: string; handle: string; via: OpenSession["via"] }) => void;
  let readyReject!: (e: unknown) => void;
  const ready = new Promise<{ did: string; handle: string; via: OpenSession["via"] }>((resolve, reject) => {
    readyResolve = resolve;
    readyReject = reject;
  });
  ready.catch(() => {});

  async function login(): Promise<OpenSession | undefined> {
    let wait = backoffMs;
    while (!abort.signal.aborted) {
      try {
        return await openSession({ service, handle: handle!, appPassword: appPassword!, state: store.bluesky, log, fetch });
      } catch (error) {
        if (isAuthFailure(error) || !isTransient(error)) {
          log.error({ err: describe(error) }, "Bluesky bot off: the PDS refused BLUESKY_HANDLE / BLUESKY_APP_PASSWORD");
          readyReject(error);
          return undefined;
        }
        log.warn({ err: describe(error), retryInMs: wait }, "Bluesky unreachable: retrying login");
        await sleep(wait, abort.signal);
        wait = Math.min(wait * 2, maxBackoffMs);
      }
    }
    readyReject(new Error("stopped"));
    return undefined;
  }

  async function run(): Promise<void> {
    const session = await login();
    if (!session) return;
    const bot = { did: session.did, handle: session.handle };
    log.info({ did: bot.did, handle: bot.handle, session: session.via }, "Bluesky bot logged in");
    const engine = new ConversationEngine({
      ...opts.engine,
      store,
      config,
      bot: { ...botNamesFrom(config), blueskyHandle: bot.handle },
      botStableIds: [bot.did, ...(opts.engine?.botStableIds ?? [])],
    });
    // Posts the bot writes on its own (announcements) are in DEFAULT_LANGUAGE; replies carry their own.
    const outbox = new Outbox(session.agent, { langs: [config.defaultLanguage] });
    liveOutbox = outbox;
    const base = { agent: session.agent, outbox, engine, state: store.bluesky, account, bot, log };
    const mentionCtx: MentionContext = { ...base, ...(opts.notificationPageSize ? { pageSize: opts.notificationPageSize } : {}) };
    const chatCtx: ChatContext = { ...base, profiles: new Map<string, { at: number; profile: AppBskyActorDefs.ProfileViewDetailed | undefined }>(), convoKinds: new Map() };
    let profileDone = false;
    let lastPurge = 0;
    readyResolve({ ...bot, via: session.via });

    let wait = backoffMs;
    let failing = false;
    while (!abort.signal.aborted) {
      try {
        if (!profileDone) {
          await ensureBotProfile(session.agent, bot.did, store.bluesky, account);
          profileDone = true;
        }
        if (Date.now() - lastPurge > PURGE_EVERY_MS) {
          lastPurge = Date.now();
          await store.bluesky.purge(EVENT_RETENTION_DAYS);
        }
        await pollMentions(mentionCtx);
        if (opts.chat !== false) await pollChat(chatCtx);
        if (failing) log.info("Bluesky reachable again: resuming");
        failing = false;
        wait = backoffMs;
        completedPolls++;
        settleWaiters(false);
        await sleep(pollIntervalMs, abort.signal);
      } catch (error) {
        if (abort.signal.aborted) break;
        if (error instanceof EventBusyError) {
          // Another replica is answering that event: come back at the next poll.
          log.debug({ err: error.message }, "Bluesky event busy elsewhere");
          await sleep(pollIntervalMs, abort.signal);
          continue;
        }
        failing = true;
        log.warn({ err: describe(error), retryInMs: wait }, "Bluesky poll failed: waiting");
        await sleep(wait, abort.signal);
        wait = Math.min(wait * 2, maxBackoffMs);
      }
    }
  }

  let liveOutbox: Outbox | undefined;
  const running = run().catch((error: unknown) => {
    log.error({ err: describe(error) }, "Bluesky bot stopped on an unexpected error");
    readyReject(error);
  });

  return {
    ready,
    nextPoll() {
      // A poll that starts after this call: the one in flight may have begun before.
      return new Promise<void>((resolve) => {
        if (abort.signal.aborted) return resolve();
        pollWaiters.push({ target: completedPolls + 2, resolve });
      });
    },
    async message(to, texts) {
      if (!liveOutbox) return false;
      const result = await liveOutbox.sendDm(to, texts);
      if (!result.delivered) log.info({ reason: result.reason }, "Bluesky: DM refused");
      return result.delivered;
    },
    async announce(text, named) {
      if (!liveOutbox) throw new Error("the Bluesky bot is not logged in");
      return (await liveOutbox.post(text, named)).uri;
    },
    async retract(uri) {
      if (!liveOutbox) throw new Error("the Bluesky bot is not logged in");
      await liveOutbox.deletePost(uri);
    },
    async stop() {
      abort.abort();
      await running;
      settleWaiters(true);
    },
  };
}
