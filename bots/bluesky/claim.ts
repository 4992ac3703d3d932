/**
 * A claim held on an event while it is answered: renewed in the background
 * (heartbeat), so that no other worker takes it over however long a send
 * waits (a 429 can hold one for minutes), and checked before each piece is
 * sent. Once the claim is found taken over, its signal aborts: requests made
 * on its behalf (one waiting out a 429 included) stop, and nothing more is sent.
 */
import type { Logger } from "../../src/logger.ts";
import { ClaimLostError, STALE_CLAIM_SECONDS, type BlueskyState } from "../../src/store/bluesky-state.ts";
import { EventBusyError } from "./errors.ts";

/** How often a held claim is renewed by default: well within STALE_CLAIM_SECONDS. */
export const CLAIM_HEARTBEAT_MS = (STALE_CLAIM_SECONDS * 1000) / 5;

export class HeldClaim {
  private readonly state: BlueskyState;
  private readonly account: string;
  readonly eventId: string;
  readonly token: string;
  private readonly lostController = new AbortController();
  private readonly timer: NodeJS.Timeout;

  constructor(state: BlueskyState, account: string, eventId: string, token: string, heartbeatMs = CLAIM_HEARTBEAT_MS) {
    this.state = state;
    this.account = account;
    this.eventId = eventId;
    this.token = token;
    // A failed renewal (database unreachable) is not a loss: the next one tries again.
    this.timer = setInterval(() => void this.renew().catch(() => {}), heartbeatMs);
    this.timer.unref();
  }

  /** Whether the claim was found taken over by another worker. */
  get lost(): boolean {
    return this.lostController.signal.aborted;
  }

  /** Aborted once the claim is found lost: for the requests made on its behalf. */
  get signal(): AbortSignal {
    return this.lostController.signal;
  }

  /** Renews the claim; false (and the signal aborted) when it is no longer this holder's. */
  async renew(): Promise<boolean> {
    if (this.lost) return false;
    if (!(await this.state.renew(this.account, this.eventId, this.token))) this.markLost();
    return !this.lost;
  }

  /** Before each piece goes out: the claim renewed, or ClaimLostError (nothing more is to be sent). */
  async check(): Promise<void> {
    if (!(await this.renew())) throw new ClaimLostError(this.eventId);
  }

  /** Marks the claim lost (a store call found it no longer this holder's). */
  markLost(): void {
    if (!this.lost) this.lostController.abort(new ClaimLostError(this.eventId));
  }

  /** Stops the heartbeat: the event is finished, released or lost. */
  end(): void {
    clearInterval(this.timer);
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
