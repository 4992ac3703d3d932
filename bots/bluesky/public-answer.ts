/**
 * Answers to a message written where others read it — a post mentioning the
 * bot, or a group conversation — keep private content out of that place:
 * it goes by direct message, and the public part says so (or, when the
 * person does not accept the bot's messages, how to open them; when the bot
 * cannot send any, that the answer is private).
 */
import type { Outcome } from "../../src/conversation/index.ts";
import type { BlueskyState } from "../../src/store/bluesky-state.ts";
import type { HeldClaim } from "./claim.ts";
import { cannotWritePrivately, openYourMessages } from "./messages.ts";
import { CHAT_UNAVAILABLE, type Outbox, type Person } from "./outbox.ts";

/** An answer as the engine wrote it, kept with the event's claim until it is sent. */
export interface PublicPlaceAnswer {
  privateTexts: string[];
  publicAnswers: string[];
  notices: string[];
  language: string;
  handledAs: string;
  /** DM pieces already sent (a retry sends the rest). */
  dmSent?: number;
}

/**
 * The `sent` phases of an event answered in a public place: its DM delivered
 * (or none needed), refused by the person, or impossible (chat refused to the bot).
 */
export const DM_SENT = 1;
export const DM_REFUSED = 2;
export const DM_UNAVAILABLE = 3;

/** Sorts the engine's replies into what goes by DM and what may be said in public. */
export function splitOutcome(outcome: Outcome): PublicPlaceAnswer {
  return {
    privateTexts: outcome.replies.filter((r) => r.visibility === "private").map((r) => r.text),
    publicAnswers: outcome.replies.filter((r) => r.visibility === "public" && r.kind === "answer").map((r) => r.text),
    notices: outcome.replies.filter((r) => r.visibility === "public" && r.kind === "notice").map((r) => r.text),
    language: outcome.language,
    handledAs: outcome.handledAs,
  };
}

export interface PrivatePartContext {
  outbox: Outbox;
  state: BlueskyState;
  account: string;
  bot: { handle: string };
}

/**
 * Sends the private part of `answer` to `sender` by DM, once, while `held`
 * is this worker's claim (the phase is
 * saved as the event's `sent`; pieces sent so far in `answer.dmSent`, saved
 * by `keep`), and returns what may be said in public, in order: the public
 * answers, then the notice ("answered in private") — or, when the DM was
 * refused, how to open one's messages instead.
 */
export async function sendPrivatePart(
  ctx: PrivatePartContext,
  held: HeldClaim,
  sender: Person,
  answer: PublicPlaceAnswer,
  sentPhase: number,
  keep: () => Promise<void>,
  /** On a retry: when the message answered was sent (see ChatProgress.resumedSince). */
  resumedSince?: string,
): Promise<{ publicTexts: string[]; dmRefused: boolean }> {
  let phase = sentPhase;
  if (phase === 0) {
    const dm = answer.privateTexts.length
      ? await ctx.outbox.sendDm(sender, answer.privateTexts, {
          skip: answer.dmSent ?? 0,
          ...(resumedSince !== undefined ? { resumedSince } : {}),
          onSent: async (pieces) => {
            answer.dmSent = pieces;
            await keep();
          },
          beforeSend: () => held.check(),
          signal: held.signal,
        })
      : { delivered: true as const };
    phase = dm.delivered ? DM_SENT : dm.reason === CHAT_UNAVAILABLE ? DM_UNAVAILABLE : DM_REFUSED;
    await ctx.state.saveSent(ctx.account, held.eventId, held.token, phase);
  }
  const dmRefused = phase === DM_REFUSED || phase === DM_UNAVAILABLE;
  // Only what may be said in public: the private part is dropped, never moved into the thread.
  const instead =
    phase === DM_REFUSED ? [openYourMessages(answer.language, ctx.bot.handle)] : phase === DM_UNAVAILABLE ? [cannotWritePrivately(answer.language)] : answer.notices;
  const publicTexts = [...answer.publicAnswers, ...instead];
  return { publicTexts, dmRefused };
}
