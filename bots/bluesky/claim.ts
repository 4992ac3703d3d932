/**
 * A claim held on an event while it is answered: renewed in the background
 * (src/renewed-claim.ts), so that no other worker takes it over however long
 * a send waits (a 429 can hold one for minutes), and checked before each
 * piece is sent. Once the claim is found taken over, its signal aborts:
 * requests made on its behalf (one waiting out a 429 included) stop, and
 * nothing more is sent.
 */
import type { Logger } from "../../src/logger.ts";
import { RenewedClaim } from "../../src/renewed-claim.ts";
import { ClaimLostError, STALE_CLAIM_SECONDS, type BlueskyState } from "../../src/store/bluesky-state.ts";
import { EventBusyError } from "./errors.ts";

/** How often a held claim is renewed by default: well within STALE_CLAIM_SECONDS. */
export const CLAIM_HEARTBEAT_MS = (STALE_CLAIM_SECONDS * 1000) / 5;

export class HeldClaim extends RenewedClaim {
  readonly eventId: string;
  readonly token: string;

  constructor(state: BlueskyState, account: string, eventId: string, token: string, heartbeatMs = CLAIM_HEARTBEAT_MS) {
    super(() => state.renew(account, eventId, token), heartbeatMs, () => new ClaimLostError(eventId));
    this.eventId = eventId;
    this.token = token;
  }

  /** Before each piece goes out: the claim renewed, or ClaimLostError (nothing more is to be sent). */
  async check(): Promise<void> {
    if (!(await this.renew())) throw new ClaimLostError(this.eventId);
  }
}

/**
 * Another worker took the event over (this one had stopped renewing its
 * claim): nothing more is sent or saved for it here, and the position is not
 * moved past it (the next poll sees it done, or still busy).
 */
export function claimLost(ctx: { log: Logger }, held: HeldClaim): never {
  held.markLost();
  ctx.log.warn({ event: held.eventId }, "Bluesky claim lost: another worker took the event over");
  throw new EventBusyError(held.eventId);
}
