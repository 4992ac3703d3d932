/**
 * What keeps the bot from being abused or from abusing anyone: no answer to
 * automated accounts or to itself (no bot-to-bot loops); a per-sender rate
 * limit shared by every process through the database (a flood gets one
 * "slow down", then silence until it pauses for a whole window); a size cap checked before
 * parsing; one hint for text the bot does not understand, then silence.
 */
import type { Store } from "../store/index.ts";
import type { Limits } from "./context.ts";
import type { Incoming } from "./incoming.ts";

/** True for senders the bot must never answer. */
export function isMuted(incoming: Incoming, botStableIds: readonly string[]): boolean {
  return incoming.sender.isBot || botStableIds.includes(incoming.sender.stableId);
}

export type RateVerdict = "ok" | "slow-down" | "silent";

/** Counts this message against the sender's window. */
export async function rateLimit(store: Store, incoming: Incoming, now: Date, limits: Limits): Promise<RateVerdict> {
  const count = await store.conversation.countMessage(incoming.sender, now, limits.windowSeconds, limits.messagesPerWindow);
  if (count <= limits.messagesPerWindow) return "ok";
  return count === limits.messagesPerWindow + 1 ? "slow-down" : "silent";
}

/** Whether the raw message is too large to even parse. */
export function rawTooLong(incoming: Incoming, limits: Limits): boolean {
  const raw = incoming.html ?? incoming.text ?? "";
  return raw.length > limits.maxInputCharacters;
}

/** Whether the sender may get a hint now (once, then silence for a while). */
export function mayHint(store: Store, incoming: Incoming, now: Date, limits: Limits): Promise<boolean> {
  return store.conversation.claimHint(incoming.sender, now, limits.hintSilenceSeconds);
}
