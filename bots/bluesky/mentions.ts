/**
 * Mentions: the bot reads its notifications, keeps the posts that mention it
 * (a mention facet with its DID), and answers each once — publicly in the
 * thread, privately by chat when the answer is private. How far it has read
 * is saved, so mentions that arrive while it is stopped are answered after
 * it restarts; accounts labelled as bots and deleted posts are not answered.
 */
import type { AppBskyFeedPost, AppBskyNotificationListNotifications, AtpAgent } from "@atproto/api";
import type { ConversationEngine, Incoming } from "../../src/conversation/index.ts";
import type { Logger } from "../../src/logger.ts";
import type { BlueskyState } from "../../src/store/bluesky-state.ts";
import { HeldClaim } from "./claim.ts";
import { EventBusyError } from "./errors.ts";
import { settleFailedEvent, tellGaveUp } from "./event-failure.ts";
import { isBotLabelled } from "./labels.ts";
import type { Outbox, ThreadProgress, ThreadRef } from "./outbox.ts";
import { sendPrivatePart, splitOutcome, type PublicPlaceAnswer } from "./public-answer.ts";

type Notification = AppBskyNotificationListNotifications.Notification;

/** How far back of the watermark each poll reads every notification again (indexing is not strictly in order). */
const OVERLAP_MS = 2 * 60_000;
/**
 * How far back of the watermark a mention not yet answered is still looked
 * for. Bluesky's AppView lists a notification at min(createdAt, indexedAt)
 * — and gives that as its `indexedAt` —, so a post whose createdAt is behind
 * (a slow clock, a late relay) is listed below newer ones already read.
 * Never further back than the bot's first start, though: what was listed
 * before it is the account's history, not to be answered.
 */
export const LOOKBACK_MS = 6 * 60 * 60_000;
/**
 * How often a poll reads the whole lookback, rather than stopping at the
 * first page below the watermark that holds no unanswered mention (and at
 * each start).
 */
export const SWEEP_EVERY_MS = 5 * 60_000;
const PAGE = 50;
/** Only these notifications can carry a command (the AppView filters the others out). */
const REASONS = ["mention", "reply"];
/** A safety net against a cursor that never ends: 50,000 mentions and replies. */
const MAX_PAGES = 1000;

/** What reading mentions and chat both work with: the bot's session, outbox, engine and state. */
export interface MentionContext {
  agent: AtpAgent;
  outbox: Outbox;
  engine: ConversationEngine;
  state: BlueskyState;
  account: string;
  bot: { did: string; handle: string };
  log: Logger;
  /** Notifications per page (default 50). */
  pageSize?: number;
  /** How often a claim on an event being answered is renewed (default CLAIM_HEARTBEAT_MS). */
  claimHeartbeatMs?: number;
  /** How often a poll reads the whole lookback (default SWEEP_EVERY_MS). */
  sweepEveryMs?: number;
  /** When the last poll that read the whole lookback ended (ms since the epoch; kept here between polls). */
  sweptAt?: number;
}

/** Whether a post's (or a chat message's) facets mention `did`. */
export function mentions(record: Pick<AppBskyFeedPost.Record, "facets">, did: string): boolean {
  return (record.facets ?? []).some((facet) =>
    facet.features.some((f) => f.$type === "app.bsky.richtext.facet#mention" && (f as { did?: string }).did === did),
  );
}

/** A notification that may carry a command: a post by someone else whose facets mention the bot. */
function isCommand(ctx: MentionContext, n: Notification): boolean {
  if ((n.reason !== "mention" && n.reason !== "reply") || n.author.did === ctx.bot.did) return false;
  const record = n.record as AppBskyFeedPost.Record;
  return record.$type === "app.bsky.feed.post" && mentions(record, ctx.bot.did);
}

/**
 * The mentions and replies to look at, oldest first: every one listed newer
 * than the watermark (minus the overlap), however long the bot was away (the
 * watermark then moves past all of them); and below that, back to the
 * lookback, the mentions not yet settled (answered, skipped, given up). None
 * listed before `from`, the bot's first start (when known). The reading stops
 * at the first page below the watermark that holds none of those — or, on a
 * sweep, only at the horizon.
 */
async function newNotifications(ctx: MentionContext, since: Date, from: Date | undefined, sweep: boolean): Promise<Notification[]> {
  const found: Notification[] = [];
  let cursor: string | undefined;
  const floor = since.getTime() - OVERLAP_MS;
  const horizon = Math.max(since.getTime() - LOOKBACK_MS, from?.getTime() ?? -Infinity);
  const at = (n: Notification) => Date.parse(n.indexedAt);
  for (let page = 0; ; page++) {
    if (page === MAX_PAGES) {
      ctx.log.warn({ pages: page }, "Bluesky notifications: stopped reading at the page limit; older mentions are skipped");
      break;
    }
    const res = await ctx.agent.app.bsky.notification.listNotifications({ limit: ctx.pageSize ?? PAGE, reasons: REASONS, ...(cursor ? { cursor } : {}) });
    const items = res.data.notifications;
    const older = items.filter((n) => at(n) < floor && at(n) >= horizon && isCommand(ctx, n));
    const settled = await ctx.state.settledEvents(ctx.account, older.map((n) => n.uri));
    const unsettled = older.filter((n) => !settled.has(n.uri));
    found.push(...items.filter((n) => at(n) >= floor && at(n) >= horizon), ...unsettled);
    cursor = res.data.cursor;
    // A filtered page may be empty and still not the last: the cursor (a time, on Bluesky's AppView) says how far it went.
    const below = (t: number) => items.some((n) => at(n) < t) || Date.parse(cursor ?? "") < t;
    if (!cursor || below(horizon) || (!sweep && below(floor) && unsettled.length === 0)) break;
  }
  return found.sort((a, b) => at(a) - at(b));
}

/** One pass over new notifications; returns how many mentions were answered. */
export async function pollMentions(ctx: MentionContext): Promise<number> {
  const { state, account } = ctx;
  const { seenAt: since, from } = await state.notificationsPosition(account);
  if (!since) {
    // First start ever: begin from now rather than answering the account's whole history
    // (and remember it: the lookback for mentions listed late stops there).
    await state.beginNotifications(account, new Date());
    ctx.sweptAt = Date.now();
    return 0;
  }
  const startedAt = Date.now();
  const sweep = ctx.sweptAt === undefined || startedAt - ctx.sweptAt >= (ctx.sweepEveryMs ?? SWEEP_EVERY_MS);
  const notifications = await newNotifications(ctx, since, from, sweep);
  let answered = 0;
  let latest = since;
  for (const n of notifications) {
    if (isCommand(ctx, n) && (await handleMention(ctx, n, n.record as AppBskyFeedPost.Record))) answered++;
    const at = new Date(n.indexedAt);
    if (at > latest) latest = at;
  }
  if (latest > since) {
    await state.advanceNotifications(account, latest);
    await ctx.agent.app.bsky.notification.updateSeen({ seenAt: latest.toISOString() }).catch(() => {});
  }
  if (sweep) ctx.sweptAt = startedAt;
  return answered;
}

/** A mention's answer, with the public thread's record keys and posts made so far. */
interface SavedAnswer extends PublicPlaceAnswer {
  thread?: ThreadProgress;
}

async function handleMention(ctx: MentionContext, n: Notification, record: AppBskyFeedPost.Record): Promise<boolean> {
  const { state, account } = ctx;
  const claim = await state.claim(account, n.uri, "mention", { sender: n.author.did });
  if (claim.status === "done") return false;
  if (claim.status === "busy") throw new EventBusyError(n.uri);
  const held = new HeldClaim(state, account, n.uri, claim.token, ctx.claimHeartbeatMs);
  try {
    return await answerMention(ctx, n, record, held, claim.status === "resume" ? claim : undefined);
  } catch (error) {
    // Retried (thrown) while worth it; else closed, and the pass goes on.
    const closed = await settleFailedEvent(ctx, held, claim.failures, error, "mention", { uri: n.uri });
    if (closed === "failed") {
      const self = { uri: n.uri, cid: n.cid };
      const sender = { platform: "bluesky" as const, stableId: n.author.did, handle: n.author.handle, isBot: false };
      await tellGaveUp(
        ctx.log,
        async () => {
          const text = await ctx.engine.couldNotAnswer({ channel: "bluesky", sender, text: record.text, isPrivate: false });
          return ctx.outbox.replyInThread({ parent: self, root: record.reply?.root ?? self }, [text], n.author);
        },
        { uri: n.uri },
      );
    }
    return false;
  } finally {
    held.end();
  }
}

async function answerMention(
  ctx: MentionContext,
  n: Notification,
  record: AppBskyFeedPost.Record,
  held: HeldClaim,
  resumed: { replies: unknown; sent: number } | undefined,
): Promise<boolean> {
  const { state, account, log } = ctx;
  const token = held.token;
  if (isBotLabelled(n.author.labels)) {
    await state.finish(account, n.uri, token, "skipped");
    return false;
  }
  // The post may have been deleted since it was indexed: never answer it then.
  const current = await ctx.agent.app.bsky.feed.getPosts({ uris: [n.uri] });
  const post = current.data.posts[0];
  if (!post) {
    await state.finish(account, n.uri, token, "skipped");
    log.debug({ uri: n.uri }, "mention deleted before it was answered");
    return false;
  }
  const self = { uri: post.uri, cid: post.cid };
  const thread: ThreadRef = { parent: self, root: record.reply?.root ?? self };
  const sender = { did: n.author.did, handle: post.author.handle };
  // A retry sends what the first try wrote: the message is not run twice.
  let answer = resumed ? (resumed.replies as SavedAnswer | null) : null;
  const sent = resumed?.sent ?? 0;
  if (!answer) {
    const incoming: Incoming = {
      channel: "bluesky",
      sender: { platform: "bluesky", stableId: sender.did, handle: sender.handle, isBot: isBotLabelled(post.author.labels) },
      text: record.text,
      isPrivate: false,
      replyTo: thread,
    };
    const outcome = await ctx.engine.handle(incoming);
    answer = splitOutcome(outcome);
    await state.saveReplies(account, n.uri, token, answer);
  }
  const saved = answer;
  const keep = () => state.saveReplies(account, n.uri, token, saved);
  const { publicTexts, dmRefused } = await sendPrivatePart(ctx, held, sender, saved, sent, keep, resumed ? n.indexedAt : undefined);
  if (publicTexts.length) {
    await ctx.outbox.replyInThread(thread, publicTexts, sender, answer.language, {
      ...(saved.thread ? { saved: saved.thread } : {}),
      save: async (progress) => {
        saved.thread = progress;
        await keep();
      },
      beforeSend: () => held.check(),
      signal: held.signal,
    });
  }
  await state.finish(account, n.uri, token, "done");
  log.info({ uri: n.uri, handledAs: answer.handledAs, dm: answer.privateTexts.length ? (dmRefused ? "refused" : "sent") : undefined }, "answered Bluesky mention");
  return true;
}
