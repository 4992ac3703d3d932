/**
 * A claim on a row (a fediverse note, a Bluesky event) held while a worker
 * answers it: renewed in the background (heartbeat), so that no other worker
 * takes it over however long the work waits (a lock held by a bulk import, a
 * 429 waited out). Once a renewal finds it taken over, it is lost for good
 * and its signal aborts, so requests made on its behalf stop.
 */
export class RenewedClaim {
  private readonly renewal: () => Promise<boolean>;
  private readonly lostController = new AbortController();
  private readonly lostReason: () => Error;
  private readonly timer: NodeJS.Timeout;

  /**
   * `renewal` extends the claim's lease, false when it is no longer this
   * holder's; `heartbeatMs`: how often, well within the lease;
   * `lostReason`: what the signal aborts with.
   */
  constructor(renewal: () => Promise<boolean>, heartbeatMs: number, lostReason: () => Error) {
    this.renewal = renewal;
    this.lostReason = lostReason;
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

  /** Renews the claim; false (and marked lost) when it is no longer this holder's. */
  async renew(): Promise<boolean> {
    if (this.lost) return false;
    if (!(await this.renewal())) this.markLost();
    return !this.lost;
  }

  /** Marks the claim lost (a store call found it no longer this holder's). */
  markLost(): void {
    if (!this.lost) this.lostController.abort(this.lostReason());
  }

  /** Stops the heartbeat: the work is finished, released or lost. */
  end(): void {
    clearInterval(this.timer);
  }
}
