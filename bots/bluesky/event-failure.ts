/**
 * What becomes of a mention or chat message whose answer failed. Passing
 * trouble (the network, a PDS restarting, the bot's own session or chat
 * access) is waited out: the event is released and the pass stops, to be
 * tried again after a back-off. A failure of the event's own (a bug, an
 * answer that does not parse, a value the database refuses) is tried a few
 * times too, then given up — so that one bad event never holds up the ones
 * after it — and the person is told their message could not be answered.
 */
import type { Logger } from "../../src/logger.ts";
import { ClaimLostError, type BlueskyState } from "../../src/store/bluesky-state.ts";
import { claimLost, type HeldClaim } from "./claim.ts";
import { describe, isEventFailure, isRetryable } from "./errors.ts";

/** Tries of one event failing for a reason of its own before it is given up (with the bot's back-off between them). */
export const MAX_EVENT_FAILURES = 5;

export interface EventFailureContext {
  state: BlueskyState;
  account: string;
  log: Logger;
}

/**
 * Settles a failed answer to the event `held` (which had failed
 * `failuresBefore` times before). Throws — the event released, the pass to
 * be retried — while it is worth trying again; returns how the event was
 * closed when the pass should go on: `failed` (given up: tell the person),
 * or `skipped` (a refusal that will not change, such as a 4xx).
 */
export async function settleFailedEvent(
  ctx: EventFailureContext,
  held: HeldClaim,
  failuresBefore: number,
  error: unknown,
  what: "mention" | "chat message",
  fields: Record<string, unknown>,
): Promise<"failed" | "skipped"> {
  const { state, account, log } = ctx;
  if (held.lost || error instanceof ClaimLostError) claimLost(ctx, held);
  const own = isEventFailure(error);
  const failures = failuresBefore + (own ? 1 : 0);
  if (isRetryable(error) && failures < MAX_EVENT_FAILURES) {
    if (own) log.warn({ ...fields, failures, err: describe(error) }, `Bluesky ${what} failed: trying again`);
    await state.release(account, held.eventId, held.token, { failed: own }).catch(() => {});
    throw error;
  }
  const closed = isRetryable(error) ? "failed" : "skipped";
  log.error({ ...fields, ...(closed === "failed" ? { failures } : {}), err: describe(error) }, closed === "failed" ? `gave up on Bluesky ${what}` : `cannot answer Bluesky ${what}`);
  await state.finish(account, held.eventId, held.token, closed).catch((lost: unknown) => {
    if (lost instanceof ClaimLostError) claimLost(ctx, held);
    throw lost;
  });
  return closed;
}

/** Sends the "could not answer" notice, once, at most: a failure here is only logged. */
export async function tellGaveUp(log: Logger, send: () => Promise<unknown>, fields: Record<string, unknown>): Promise<void> {
  try {
    await send();
  } catch (error) {
    log.warn({ ...fields, err: describe(error) }, "Bluesky: could not say a message was given up");
  }
}
