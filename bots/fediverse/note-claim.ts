/**
 * A claim held on a note while it is answered, renewed in the background as
 * the Bluesky bot's claims on events are (src/renewed-claim.ts). Saving the
 * replies and marking the note answered need the claim still held (the
 * token): a worker whose claim was taken over stops there.
 */
import { RenewedClaim } from "../../src/renewed-claim.ts";
import { NoteClaimLostError, type FediverseState } from "../../src/store/fediverse-state.ts";

export class NoteClaim extends RenewedClaim {
  readonly noteId: string;
  readonly token: string;

  /** `heartbeatMs`: how often the claim is renewed, well within its lease. */
  constructor(state: FediverseState, noteId: string, token: string, heartbeatMs: number) {
    super(() => state.renewNote(noteId, token), heartbeatMs, () => new NoteClaimLostError(noteId));
    this.noteId = noteId;
    this.token = token;
  }
}
