/**
 * Chat: messages in chat.bsky.convo conversations with the bot are commands;
 * the answers go into the same conversation. The bot follows the chat log
 * (getLog) from a cursor saved in the database, so messages that arrive
 * while it is stopped are answered after it restarts, and each message is
 * taken on once.
 */
import type { AppBskyActorDefs, ChatBskyConvoDefs, ChatBskyConvoGetLog } from "@atproto/api";
import type { Incoming } from "../../src/conversation/index.ts";
import { describe, EventBusyError, isTransient } from "./errors.ts";
import { isBotLabelled } from "./labels.ts";
import type { MentionContext } from "./mentions.ts";

const PROFILE_TTL_MS = 10 * 60_000;
const MAX_PAGES = 20;

export interface ChatContext extends MentionContext {
  /** Senders' profiles (handle, bot label), cached for PROFILE_TTL_MS. */
  profiles: Map<string, { at: number; profile: AppBskyActorDefs.ProfileViewDetailed | undefined }>;
}

type LogEntry = ChatBskyConvoGetLog.OutputSchema["logs"][number];

/** The message a log entry creates, when it is a new (not deleted) message. */
function createdMessage(entry: LogEntry): { convoId: string; message: ChatBskyConvoDefs.MessageView } | undefined {
  if (entry.$type !== "chat.bsky.convo.defs#logCreateMessage") return undefined;
  const { convoId, message } = entry as ChatBskyConvoDefs.LogCreateMessage;
  return message.$type === "chat.bsky.convo.defs#messageView" ? { convoId, message: message as ChatBskyConvoDefs.MessageView } : undefined;
}

async function profileOf(ctx: ChatContext, did: string) {
  const cached = ctx.profiles.get(did);
  if (cached && Date.now() - cached.at < PROFILE_TTL_MS) return cached.profile;
  let profile: AppBskyActorDefs.ProfileViewDetailed | undefined;
  try {
    profile = (await ctx.agent.app.bsky.actor.getProfile({ actor: did })).data;
  } catch (error) {
    if (isTransient(error)) throw error;
  }
  ctx.profiles.set(did, { at: Date.now(), profile });
  return profile;
}

/** One pass over the chat log; returns how many messages were answered. */
export async function pollChat(ctx: ChatContext): Promise<number> {
  const { state, account } = ctx;
  let cursor = await state.chatCursor(account);
  const firstRun = cursor === undefined;
  let answered = 0;
  for (let page = 0; page < MAX_PAGES; page++) {
    const res = await ctx.outbox.chat.chat.bsky.convo.getLog(cursor ? { cursor } : {});
    const logs = res.data.logs;
    if (!firstRun) {
      for (const entry of logs) {
        const created = createdMessage(entry);
        if (created && created.message.sender.did !== ctx.bot.did) {
          if (await handleMessage(ctx, created.convoId, created.message)) answered++;
        }
      }
    }
    if (!res.data.cursor || res.data.cursor === cursor) break;
    cursor = res.data.cursor;
    await state.saveChatCursor(account, cursor);
    if (logs.length === 0) break;
  }
  if (firstRun && cursor === undefined) await state.saveChatCursor(account, "");
  return answered;
}

async function handleMessage(ctx: ChatContext, convoId: string, message: ChatBskyConvoDefs.MessageView): Promise<boolean> {
  const { state, account, log } = ctx;
  const eventId = `chat:${convoId}:${message.id}`;
  const claim = await state.claim(account, eventId, "chat");
  if (claim.status === "done") return false;
  if (claim.status === "busy") throw new EventBusyError(eventId);
  try {
    const profile = await profileOf(ctx, message.sender.did);
    if (isBotLabelled(profile?.labels)) {
      await state.finish(account, eventId, "skipped");
      return false;
    }
    const sender = { did: message.sender.did, handle: profile?.handle ?? null };
    // A retry sends what the first try wrote, from where it stopped: the
    // message is not run twice (a link code would be spent already).
    let texts = claim.status === "resume" && Array.isArray(claim.replies) ? (claim.replies as string[]) : null;
    let handledAs = "resumed";
    if (!texts) {
      const incoming: Incoming = {
        channel: "bluesky",
        sender: { platform: "bluesky", stableId: sender.did, handle: sender.handle, isBot: false },
        text: message.text,
        isPrivate: true,
        replyTo: { convoId, messageId: message.id },
      };
      const outcome = await ctx.engine.handle(incoming);
      handledAs = outcome.handledAs;
      texts = outcome.replies.map((r) => r.text);
      if (texts.length) await state.saveReplies(account, eventId, texts);
    }
    if (texts.length) {
      const sent = await ctx.outbox.sendToConvo(convoId, texts, [sender], {
        skip: claim.status === "resume" ? claim.sent : 0,
        onSent: (n) => state.saveSent(account, eventId, n),
      });
      if (sent !== true) log.info({ convoId, reason: sent }, "Bluesky chat answer refused");
    }
    await state.finish(account, eventId, "done");
    log.info({ convoId, handledAs }, "answered Bluesky chat message");
    return true;
  } catch (error) {
    if (isTransient(error)) {
      await state.release(account, eventId).catch(() => {});
      throw error;
    }
    log.error({ convoId, err: describe(error) }, "cannot answer Bluesky chat message");
    await state.finish(account, eventId, "skipped");
    return false;
  }
}
