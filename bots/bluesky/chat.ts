/**
 * Chat: messages in a direct chat.bsky.convo conversation with the bot are
 * commands; the answers go into the same conversation. In a group
 * conversation the bot answers only messages that mention it, and treats
 * the group as a public place: the private part of an answer goes by direct
 * message. The bot follows the chat log (getLog) from a cursor saved in the
 * database, so messages that arrive while it is stopped are answered after
 * it restarts, and each message is taken on once.
 */
import type { AppBskyActorDefs, ChatBskyConvoDefs, ChatBskyConvoGetLog } from "@atproto/api";
import type { Incoming } from "../../src/conversation/index.ts";
import { ChatUnavailableError, describe, errorName, EventBusyError, isRetryable } from "./errors.ts";
import { settleFailedEvent, tellGaveUp } from "./event-failure.ts";
import { isBotLabelled } from "./labels.ts";
import { HeldClaim } from "./claim.ts";
import { mentions, type MentionContext } from "./mentions.ts";
import { CHAT_UNAVAILABLE, type ChatProgress, type Person } from "./outbox.ts";
import { sendPrivatePart, splitOutcome, type PublicPlaceAnswer } from "./public-answer.ts";

const PROFILE_TTL_MS = 10 * 60_000;
const MAX_PAGES = 20;
/** Conversations whose kind is remembered (a conversation's kind never changes); past this, the memory starts again. */
const MAX_KNOWN_CONVOS = 10_000;

export type ConvoKind = "direct" | "group";

export interface ChatContext extends MentionContext {
  /** Senders' profiles (handle, bot label), cached for PROFILE_TTL_MS. */
  profiles: Map<string, { at: number; profile: AppBskyActorDefs.ProfileViewDetailed | "gone" | undefined }>;
  /** Each conversation's kind, once looked up. */
  convoKinds: Map<string, ConvoKind>;
}

/**
 * Whether a conversation is a direct one, the bot and one person: only
 * there is an answer private. Services that predate group conversations
 * send no `kind`; then two members mean direct. Anything else is a group.
 */
export function convoKindOf(convo: ChatBskyConvoDefs.ConvoView): ConvoKind {
  const type = convo.kind?.$type;
  if (type === undefined || type === "chat.bsky.convo.defs#directConvo") return convo.members.length === 2 ? "direct" : "group";
  return "group";
}

async function convoKind(ctx: ChatContext, convoId: string): Promise<ConvoKind> {
  const known = ctx.convoKinds.get(convoId);
  if (known) return known;
  let convo: ChatBskyConvoDefs.ConvoView;
  try {
    convo = (await ctx.outbox.chat((chat) => chat.chat.bsky.convo.getConvo({ convoId }))).data.convo;
  } catch (error) {
    if (isRetryable(error)) throw error;
    // Not known for sure: treated as a group, where nothing private is said (and only mentions are answered).
    ctx.log.warn({ convoId, err: describe(error) }, "Bluesky conversation not found: taken for a group");
    return "group";
  }
  if (ctx.convoKinds.size >= MAX_KNOWN_CONVOS) ctx.convoKinds.clear();
  const kind = convoKindOf(convo);
  ctx.convoKinds.set(convoId, kind);
  return kind;
}

/** Whether a chat message mentions the bot: a mention facet with its DID, or its handle in the text. */
export function mentionsBot(message: Pick<ChatBskyConvoDefs.MessageView, "text" | "facets">, bot: { did: string; handle: string }): boolean {
  if (mentions(message, bot.did)) return true;
  const handle = bot.handle.toLowerCase().replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(^|[^\\w@.])@${handle}(?![\\w.-])`, "iu").test(message.text);
}

/** A group answer: the engine's answer, and the pieces said in the group so far. */
interface GroupAnswer extends PublicPlaceAnswer {
  groupSent?: number;
}

type LogEntry = ChatBskyConvoGetLog.OutputSchema["logs"][number];

/** The message a log entry creates, when it is a new (not deleted) message. */
function createdMessage(entry: LogEntry): { convoId: string; message: ChatBskyConvoDefs.MessageView } | undefined {
  if (entry.$type !== "chat.bsky.convo.defs#logCreateMessage") return undefined;
  const { convoId, message } = entry as ChatBskyConvoDefs.LogCreateMessage;
  return message.$type === "chat.bsky.convo.defs#messageView" ? { convoId, message: message as ChatBskyConvoDefs.MessageView } : undefined;
}

/** What the AppView answers for a sender whose account is gone: taken down, deactivated, suspended. */
const SENDER_GONE = new Set(["AccountTakedown", "AccountDeactivated", "AccountSuspended"]);

/**
 * The sender's profile: undefined when it cannot be read for a reason that
 * will not change, `"gone"` when the account was taken down or deactivated.
 * (Those answers are about the account asked for, not the bot's session:
 * retried like a refused session, one such sender would hold up the chat.)
 */
async function profileOf(ctx: ChatContext, did: string): Promise<AppBskyActorDefs.ProfileViewDetailed | "gone" | undefined> {
  const cached = ctx.profiles.get(did);
  if (cached && Date.now() - cached.at < PROFILE_TTL_MS) return cached.profile;
  let profile: AppBskyActorDefs.ProfileViewDetailed | "gone" | undefined;
  try {
    profile = (await ctx.agent.app.bsky.actor.getProfile({ actor: did })).data;
  } catch (error) {
    if (SENDER_GONE.has(errorName(error) ?? "")) profile = "gone";
    else if (isRetryable(error)) throw error;
  }
  ctx.profiles.set(did, { at: Date.now(), profile });
  return profile;
}

/**
 * One pass over the chat log; returns how many messages were answered.
 * Nothing sent before the bot's first start is answered (when it began
 * reading its notifications): not the history its first read of the log
 * finds — nor does a first read that chat refused then (an app password
 * without DM access, an outage) skip what was sent since.
 */
export async function pollChat(ctx: ChatContext): Promise<number> {
  const { state, account } = ctx;
  let cursor = await state.chatCursor(account);
  const { from } = await state.notificationsPosition(account);
  // Accounts read before the first start was recorded: their first read skips the log's history whole.
  const skipAll = cursor === undefined && from === undefined;
  let answered = 0;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await ctx.outbox.chat((chat) => chat.chat.bsky.convo.getLog(cursor ? { cursor } : {}));
    const logs = res.data.logs;
    if (!skipAll) {
      for (const entry of logs) {
        const created = createdMessage(entry);
        if (!created || created.message.sender.did === ctx.bot.did) continue;
        if (from && Date.parse(created.message.sentAt) < from.getTime()) continue;
        if (await handleMessage(ctx, created.convoId, created.message)) answered++;
      }
    }
    if (!res.data.cursor || res.data.cursor === cursor) break;
    cursor = res.data.cursor;
    await state.saveChatCursor(account, cursor);
    if (logs.length === 0) break;
  }
  if (cursor === undefined) await state.saveChatCursor(account, "");
  return answered;
}

async function handleMessage(ctx: ChatContext, convoId: string, message: ChatBskyConvoDefs.MessageView): Promise<boolean> {
  const { state, account, log } = ctx;
  const kind = await convoKind(ctx, convoId);
  // Talk among a group's members is not for the bot.
  if (kind === "group" && !mentionsBot(message, ctx.bot)) return false;
  const eventId = `chat:${convoId}:${message.id}`;
  const claim = await state.claim(account, eventId, "chat", { sender: message.sender.did });
  if (claim.status === "done") return false;
  if (claim.status === "busy") throw new EventBusyError(eventId);
  const held = new HeldClaim(state, account, eventId, claim.token, ctx.claimHeartbeatMs);
  // Whether the sender is known not to be a bot: only then is a message given up said to be.
  let notABot = false;
  try {
    const profile = await profileOf(ctx, message.sender.did);
    if (profile === "gone" || isBotLabelled(profile?.labels)) {
      await state.finish(account, eventId, held.token, "skipped");
      return false;
    }
    notABot = true;
    const sender: Person = { did: message.sender.did, handle: profile?.handle ?? null };
    const incoming = (isPrivate: boolean): Incoming => ({
      channel: "bluesky",
      sender: { platform: "bluesky", stableId: sender.did, handle: sender.handle, isBot: false },
      text: message.text,
      isPrivate,
      replyTo: { convoId, messageId: message.id },
    });
    const resumed = claim.status === "resume" ? { replies: claim.replies, sent: claim.sent, since: message.sentAt } : undefined;
    // A resumed answer is sent the way it was written (the conversation's
    // kind may have been unknown then): a list of texts was written as a
    // private answer, and only ever goes to the sender.
    const saved = resumed?.replies;
    const answerAs = Array.isArray(saved) ? "direct" : saved && typeof saved === "object" ? "group" : kind;
    const handledAs =
      answerAs === "direct"
        ? await answerDirect(ctx, held, kind === "direct" ? convoId : undefined, sender, () => incoming(true), resumed)
        : await answerInGroup(ctx, held, convoId, sender, () => incoming(false), resumed);
    await state.finish(account, eventId, held.token, "done");
    log.info({ convoId, handledAs, group: kind === "group" || undefined }, "answered Bluesky chat message");
    return true;
  } catch (error) {
    // Retried (thrown) while worth it; else closed, and the pass goes on.
    const closed = await settleFailedEvent(ctx, held, claim.failures, error, "chat message", { convoId });
    // Not to a sender whose profile could not be read: it may be a bot, and answer back.
    if (closed === "failed" && notABot) {
      const sender = { platform: "bluesky" as const, stableId: message.sender.did, handle: null, isBot: false };
      await tellGaveUp(
        ctx.log,
        async () => ctx.outbox.sendToConvo(convoId, [await ctx.engine.couldNotAnswer({ channel: "bluesky", sender, text: message.text, isPrivate: kind === "direct" })]),
        { convoId },
      );
    }
    return false;
  } finally {
    held.end();
  }
}

type Resumed = { replies: unknown; sent: number; since: string } | undefined;

/**
 * A direct conversation: every answer, private or not, goes into it
 * (`convoId`), or, without one, into the direct conversation with the sender.
 */
async function answerDirect(ctx: ChatContext, held: HeldClaim, convoId: string | undefined, sender: Person, incoming: () => Incoming, resumed: Resumed): Promise<string> {
  const { state, account } = ctx;
  const { eventId, token } = held;
  // A retry sends what the first try wrote, from where it stopped: the
  // message is not run twice (a link code would be spent already).
  let texts = resumed && Array.isArray(resumed.replies) ? (resumed.replies as string[]) : null;
  let handledAs = "resumed";
  if (!texts) {
    const outcome = await ctx.engine.handle(incoming());
    handledAs = outcome.handledAs;
    texts = outcome.replies.map((r) => r.text);
    if (texts.length) await state.saveReplies(account, eventId, token, texts);
  }
  if (texts.length) {
    const progress: ChatProgress = {
      skip: resumed?.sent ?? 0,
      ...(resumed ? { resumedSince: resumed.since } : {}),
      onSent: (n: number) => state.saveSent(account, eventId, token, n),
      beforeSend: () => held.check(),
      signal: held.signal,
    };
    const sent = convoId
      ? await ctx.outbox.sendToConvo(convoId, texts, [sender], progress)
      : await ctx.outbox.sendDm(sender, texts, progress).then((dm) => (dm.delivered ? true : dm.reason));
    if (sent === CHAT_UNAVAILABLE) throw new ChatUnavailableError(sent);
    if (sent !== true) ctx.log.info({ convoId, reason: sent }, "Bluesky chat answer refused");
  }
  return handledAs;
}

/** A group conversation: a public place, like a thread; the private part goes by direct message. */
async function answerInGroup(ctx: ChatContext, held: HeldClaim, convoId: string, sender: Person, incoming: () => Incoming, resumed: Resumed): Promise<string> {
  const { state, account } = ctx;
  const { eventId, token } = held;
  const savedBefore = resumed?.replies;
  let answer = savedBefore && typeof savedBefore === "object" && !Array.isArray(savedBefore) ? (savedBefore as GroupAnswer) : null;
  if (!answer) {
    answer = splitOutcome(await ctx.engine.handle(incoming()));
    await state.saveReplies(account, eventId, token, answer);
  }
  const saved = answer;
  const keep = () => state.saveReplies(account, eventId, token, saved);
  const { publicTexts } = await sendPrivatePart(ctx, held, sender, saved, resumed?.sent ?? 0, keep, resumed?.since);
  if (publicTexts.length) {
    const sent = await ctx.outbox.sendToConvo(convoId, publicTexts, [sender], {
      skip: saved.groupSent ?? 0,
      ...(resumed ? { resumedSince: resumed.since } : {}),
      onSent: async (n) => {
        saved.groupSent = n;
        await keep();
      },
      beforeSend: () => held.check(),
      signal: held.signal,
    });
    if (sent === CHAT_UNAVAILABLE) throw new ChatUnavailableError(sent);
    if (sent !== true) ctx.log.info({ convoId, reason: sent }, "Bluesky group answer refused");
  }
  return saved.handledAs;
}
