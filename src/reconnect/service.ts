/**
 * What the conversation asks of the reconnection: open or join a job, and
 * make one-time links. `Reconnector` implements it; the conversation sees
 * only this.
 */
import type { TargetPlatform } from "../store/index.ts";
import type { JobRequest } from "../store/reconnect-jobs.ts";
import type { RequestResult } from "./reconnector.ts";

export interface ReconnectService {
  request(input: {
    personId: number;
    platform: TargetPlatform;
    request: JobRequest;
    targets: readonly number[];
    notifyIdentityId: number | null;
  }): Promise<RequestResult>;
  connectLink(personId: number, identityId: number): Promise<string>;
  /** Revokes, at their servers, the tokens and sessions stored for these identities of the person (before `forget` or `unlink`). Best effort. */
  revokeAuthorizations(personId: number, identityIds: readonly number[]): Promise<void>;
}
