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
import type { Config } from "../../src/config.ts";
import { botNamesFrom, ConversationEngine, type EngineContext } from "../../src/conversation/index.ts";
import type { Logger } from "../../src/logger.ts";
import type { Store } from "../../src/store/index.ts";
import { pollChat, type ChatContext } from "./chat.ts";
import { ChatUnavailableError, describe, EventBusyError, isAuthFailure, isRetryable, isTransient } from "./errors.ts";
import { pollMentions, type MentionContext } from "./mentions.ts";
import { Outbox } from "./outbox.ts";
import { ensureBotProfile } from "./profile.ts";
import { rateLimitedFetch, sleep } from "./rate-limit.ts";
import { accountKey, openSession, type OpenSession } from "./session.ts";

/** Handled events are remembered this long (far past any notification the bot may see again). */
const EVENT_RETENTION_DAYS = 30;
const PURGE_EVERY_MS = 60 * 60_000;

/** When one part of the bot's reading (mentions, chat) is due, and how it has been going. */
interface PollSchedule {
  part: "mentions" | "chat";
  /** Logged when it works again after failing. */
  resumed: string;
  /** When the next pass is due (ms since the epoch). */
  at: number;
  /** The back-off after the next failure. */
  wait: number;
  failing: boolean;
}

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
  /** How often a claim on an event being answered is renewed (default a fifth of the time after which it goes stale). */
  claimHeartbeatMs?: number;
  /** How often a poll of mentions reads back the whole lookback for unanswered mentions listed late (default 5 min; see mentions.ts). */
  notificationSweepMs?: number;
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

  // Successful passes over mentions and over the chat log; a waiter needs both past its targets.
  let mentionPolls = 0;
  let chatPolls = 0;
  // Without chat (turned off, or refused to the bot), mentions alone make a poll.
  const chatOff = opts.chat === false;
  let pollWaiters: Array<{ mentions: number; chat: number; resolve: () => void }> = [];
  const settleWaiters = (all: boolean) => {
    const due = pollWaiters.filter((w) => all || (mentionPolls >= w.mentions && (chatOff || liveOutbox?.chatUnavailable || chatPolls >= w.chat)));
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

  /**
   * Runs `attempt` (a login) until it succeeds, waiting out network failures
   * (with back-off); undefined when the PDS refuses the credentials (said in
   * one error line, and passed to `refused`) or the bot stops.
   */
  async function retryingLogin<T>(attempt: () => Promise<T>, refused: (error: unknown) => void): Promise<T | undefined> {
    let wait = backoffMs;
    while (!abort.signal.aborted) {
      try {
        return await attempt();
      } catch (error) {
        if (isAuthFailure(error) || !isTransient(error)) {
          log.error({ err: describe(error) }, "Bluesky bot off: the PDS refused BLUESKY_HANDLE / BLUESKY_APP_PASSWORD");
          refused(error);
          return undefined;
        }
        log.warn({ err: describe(error), retryInMs: wait }, "Bluesky unreachable: retrying login");
        await sleep(wait, abort.signal);
        wait = Math.min(wait * 2, maxBackoffMs);
      }
    }
    return undefined;
  }

  async function login(): Promise<OpenSession | undefined> {
    const session = await retryingLogin(
      () => openSession({ service, handle: handle!, appPassword: appPassword!, state: store.bluesky, log, fetch }),
      readyReject,
    );
    if (!session && abort.signal.aborted) readyReject(new Error("stopped"));
    return session;
  }

  async function run(): Promise<void> {
    const session = await login();
    if (!session) {
      stopped = true;
      settleWaiters(true);
      return;
    }
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
    const outbox = new Outbox(session.agent, { langs: [config.defaultLanguage], log });
    liveOutbox = outbox;
    const base = { agent: session.agent, outbox, engine, state: store.bluesky, account, bot, log, ...(opts.claimHeartbeatMs ? { claimHeartbeatMs: opts.claimHeartbeatMs } : {}) };
    const mentionCtx: MentionContext = {
      ...base,
      ...(opts.notificationPageSize ? { pageSize: opts.notificationPageSize } : {}),
      ...(opts.notificationSweepMs !== undefined ? { sweepEveryMs: opts.notificationSweepMs } : {}),
    };
    const chatCtx: ChatContext = { ...base, profiles: new Map(), convoKinds: new Map() };
    let profileDone = false;
    let lastPurge = 0;
    readyResolve({ ...bot, via: session.via });

    // Mentions and chat are read on schedules of their own: chat failing
    // (or refused to the bot) backs off without slowing mentions down.
    const mentions: PollSchedule = { part: "mentions", resumed: "Bluesky reachable again: resuming", at: 0, wait: backoffMs, failing: false };
    const chat: PollSchedule = { part: "chat", resumed: "Bluesky chat reachable again: resuming", at: 0, wait: backoffMs, failing: false };

    /** Set when the bot cannot go on (its credentials refused): the loop ends. */
    let off = false;

    /**
     * After a failed call: when the bot's session is gone (@atproto/api drops
     * it when a token refresh is refused), logs in again with the configured
     * credentials, on the same agent (everything holding it carries on), and
     * says whether it did. A token refused without the library trying a
     * refresh (InvalidToken) is refreshed first: that tells whether the session lives.
     */
    async function keepSession(error: unknown): Promise<"alive" | "renewed" | "off"> {
      const agent = session!.agent;
      if (agent.hasSession && isAuthFailure(error)) await agent.sessionManager.refreshSession().catch(() => {});
      if (agent.hasSession) return "alive";
      log.warn({ err: describe(error) }, "Bluesky session lost: logging in again");
      const renewed = await retryingLogin(
        () => agent.login({ identifier: account, password: appPassword! }),
        () => {},
      );
      if (!renewed) {
        if (!abort.signal.aborted) off = true;
        return "off";
      }
      if (renewed.data.did !== bot.did) {
        log.error({ did: renewed.data.did, expected: bot.did }, "Bluesky bot off: BLUESKY_HANDLE now names another account");
        off = true;
        return "off";
      }
      log.info("Bluesky session lost: logged in again");
      return "renewed";
    }

    /**
     * The bot's profile and chat declaration, written once: a failure (even
     * one that will not pass, such as a record the PDS refuses) is logged and
     * tried again later, with back-off, and never holds up answering.
     */
    let profileAt = 0;
    let profileWait = backoffMs;
    async function upkeepProfile(): Promise<void> {
      if (profileDone || Date.now() < profileAt) return;
      try {
        await ensureBotProfile(session!.agent, bot.did, store.bluesky, account);
        profileDone = true;
      } catch (error) {
        if (abort.signal.aborted) return;
        const wait = profileWait;
        profileWait = Math.min(profileWait * 2, maxBackoffMs);
        profileAt = Date.now() + wait;
        const line = { err: describe(error), retryInMs: wait };
        if (isRetryable(error)) log.warn(line, "Bluesky profile upkeep failed: retrying later");
        else log.error(line, "Bluesky profile upkeep failed: retrying later");
      }
    }

    /**
     * One pass over `schedule`'s part (`poll`), then when it is due next: at
     * the poll interval, or after a back-off that doubles while it fails.
     * After a new login, `other` is read at once too.
     */
    async function read(schedule: PollSchedule, other: PollSchedule, poll: () => Promise<void>, polled: () => void): Promise<void> {
      try {
        await poll();
        if (schedule.failing) log.info(schedule.resumed);
        schedule.failing = false;
        schedule.wait = backoffMs;
        polled();
        schedule.at = Date.now() + pollIntervalMs;
      } catch (error) {
        if (error instanceof EventBusyError) {
          // Another replica is answering that event: come back at the next poll.
          log.debug({ err: error.message }, "Bluesky event busy elsewhere");
          schedule.at = Date.now() + pollIntervalMs;
          return;
        }
        if (abort.signal.aborted) return void (schedule.at = Date.now());
        const kept = await keepSession(error);
        if (kept === "off") return void (schedule.at = Date.now());
        if (kept === "renewed") {
          // Logged in again: both are read at once with the new session.
          other.at = 0;
          schedule.at = Date.now();
          return;
        }
        const wait = schedule.wait;
        schedule.wait = Math.min(schedule.wait * 2, maxBackoffMs);
        schedule.at = Date.now() + wait;
        // Chat refused to the bot (said once, by the outbox): tried again now and then, in case it was fixed.
        if (schedule.part === "chat" && error instanceof ChatUnavailableError) log.debug({ retryInMs: wait }, "Bluesky chat refused to the bot: waiting");
        else {
          schedule.failing = true;
          log.warn({ err: describe(error), retryInMs: wait, part: schedule.part }, "Bluesky poll failed: waiting");
        }
      }
    }

    const readMentions = () =>
      read(mentions, chat, async () => {
        // The purge of old events, when due, goes with a pass over mentions.
        if (Date.now() - lastPurge > PURGE_EVERY_MS) {
          lastPurge = Date.now();
          await store.bluesky.purge(EVENT_RETENTION_DAYS);
        }
        await pollMentions(mentionCtx);
      }, () => mentionPolls++);
    const readChat = () => read(chat, mentions, async () => void (await pollChat(chatCtx)), () => chatPolls++);

    while (!abort.signal.aborted && !off) {
      await upkeepProfile();
      if (Date.now() >= mentions.at) await readMentions();
      if (!chatOff && !off && !abort.signal.aborted && Date.now() >= chat.at) await readChat();
      settleWaiters(false);
      if (off) break;
      await sleep(Math.min(mentions.at, chatOff ? Infinity : chat.at) - Date.now(), abort.signal);
    }
    if (off) {
      // Nothing more can be sent: callers are told the bot is not logged in, and nobody waits for a poll.
      liveOutbox = undefined;
      stopped = true;
      settleWaiters(true);
    }
  }

  let liveOutbox: Outbox | undefined;
  /** The bot gave up (credentials refused): no poll will come. */
  let stopped = false;
  const running = run().catch((error: unknown) => {
    log.error({ err: describe(error) }, "Bluesky bot stopped on an unexpected error");
    readyReject(error);
  });

  return {
    ready,
    nextPoll() {
      // A poll that starts after this call: the one in flight may have begun before.
      return new Promise<void>((resolve) => {
        if (abort.signal.aborted || stopped) return resolve();
        pollWaiters.push({ mentions: mentionPolls + 2, chat: chatPolls + 2, resolve });
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
