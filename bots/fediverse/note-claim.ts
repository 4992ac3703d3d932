/**
 * A claim held on a note while it is answered: renewed in the background
 * (heartbeat), so that no other worker takes the note over however long the
 * engine takes (a lock held by a bulk import, a slow database), as the
 * Bluesky bot's claims on events are (bots/bluesky/claim.ts). Saving the
 * replies and marking the note answered need the claim still held (the
 * token): a worker whose claim was taken over stops there.
 */
import type { FediverseState } from "../../src/store/fediverse-state.ts";

export class NoteClaim {
  private readonly state: FediverseState;
  readonly noteId: string;
  readonly token: string;
  private readonly timer: NodeJS.Timeout;
  private isLost = false;

  /** `heartbeatMs`: how often the claim is renewed, well within its lease. */
  constructor(state: FediverseState, noteId: string, token: string, heartbeatMs: number) {
    this.state = state;
    this.noteId = noteId;
    this.token = token;
    // A failed renewal (database unreachable) is not a loss: the next one tries again.
    this.timer = setInterval(() => void this.renew().catch(() => {}), heartbeatMs);
    this.timer.unref();
  }

  /** Whether the claim was found taken over by another worker. */
  get lost(): boolean {
    return this.isLost;
  }

  /** Renews the claim; false (and marked lost) when it is no longer this holder's. */
  async renew(): Promise<boolean> {
    if (this.isLost) return false;
    if (!(await this.state.renewNote(this.noteId, this.token))) this.isLost = true;
    return !this.isLost;
  }

  /** Stops the heartbeat: the note is answered, released or lost. */
  end(): void {
    clearInterval(this.timer);
  }
}
