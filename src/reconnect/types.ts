/**
 * The shapes shared by the reconnection's parts: the job runner, the
 * Bluesky and Mastodon writers, the authorization flows and the reports.
 */
import type { TargetPlatform } from "../store/index.ts";

// Outcomes are defined with the table that stores them.
export { TARGET_OUTCOMES, type TargetOutcome } from "../store/reconnect-jobs.ts";
import type { TargetOutcome } from "../store/reconnect-jobs.ts";

/** One account to follow, as the store knows it. */
export interface Target {
  /** The target's person id: the key outcomes are recorded under. */
  personId: number;
  /** DID (Bluesky) or actor URI (fediverse); null for a fediverse account known by acct only. */
  stableId: string | null;
  /** Bluesky handle or fediverse acct `user@host`. */
  handle: string | null;
}

export interface TargetResult {
  personId: number;
  outcome: TargetOutcome;
  /** Short, log-safe reason for `failed` (an error code, an HTTP status). */
  reason?: string;
}

/** The authorization is expired or revoked: the job pauses until the person authorizes again. */
export class AuthorizationExpiredError extends Error {
  constructor(message = "authorization expired or revoked") {
    super(message);
    this.name = "AuthorizationExpiredError";
  }
}

/** The network asked us to wait (429, rate-limit headers, write budget): retry at `until`. */
export class RateLimitedError extends Error {
  readonly until: Date;
  constructor(until: Date, message = `rate limited until ${until.toISOString()}`) {
    super(message);
    this.name = "RateLimitedError";
    this.until = until;
  }
}

/** Mastodon OAuth token as stored (encrypted) in account_authorization, kind `mastodon-oauth`. */
export interface MastodonAuthorization {
  /** The instance's API origin, e.g. `https://mastodon.social`. */
  instance: string;
  accessToken: string;
  scope: string;
  /** The person's account id on that instance (verify_credentials). */
  accountId: string;
  /**
   * The app the token was issued to: only that client may revoke it, and the
   * instance's stored app may be replaced since (a new PUBLIC_URL) or
   * forgotten. Absent from authorizations stored before it was kept: then the
   * instance's current app is tried.
   */
  app?: { clientId: string; clientSecret: string };
}

/** Bluesky app password as stored (encrypted), kind `bluesky-app-password`. */
export interface BlueskyAppPasswordAuthorization {
  did: string;
  /** The PDS the account lives on. */
  service: string;
  identifier: string;
  appPassword: string;
  /** Saved session, refreshed as it is used (avoids a login per job). */
  session?: unknown;
}

export type { TargetPlatform };

/**
 * One run of a writer over a job's remaining targets. The runner persists
 * everything; the writer only talks to the network. Exactly-once rests on
 * `markInFlight`: a writer saves, before each write call, a marker that lets
 * a later run recognise its own write (Bluesky: the follow record's rkey;
 * Mastodon: the target's account id on the person's instance). A run that
 * finds a marker from a dead run checks the network: if the follow exists,
 * the outcome is `followed` (ours), not `already_following`.
 */
export interface WriterRun {
  /** Targets without an outcome yet, in the order asked. */
  readonly targets: readonly Target[];
  /** Markers left by earlier runs that died before recording an outcome (target person id → marker). */
  readonly inFlight: ReadonlyMap<number, string>;
  /** Persists markers before the write they describe is sent. */
  markInFlight(entries: readonly { personId: number; marker: string }[]): Promise<void>;
  /** Persists outcomes (and clears their markers). Call as soon as a batch is known. */
  record(results: readonly TargetResult[]): Promise<void>;
  /** Aborted when the service stops: return (or throw) promptly, the job resumes later. */
  readonly signal?: AbortSignal;
}

/**
 * Follows a run's targets from one person's account. Returns when every
 * target has an outcome; throws `RateLimitedError` to be resumed at a later
 * time (outcomes recorded so far stay), `AuthorizationExpiredError` to pause
 * until the person authorizes again.
 */
export interface FollowWriter {
  run(run: WriterRun): Promise<void>;
}
