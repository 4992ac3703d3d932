/**
 * How the Bluesky writer reads XRPC failures: what to do about an error
 * (wait, re-authorize, retry, give up on the batch) and what the server said
 * about its rate limits.
 */

/** rate-limited: 429; auth: the session is dead; transient: no (usable) answer; rejected: a 4xx refusal. */
export type Failure = "rate-limited" | "auth" | "transient" | "rejected";

/**
 * Error codes meaning the person must authorize again (their own account
 * deactivated or taken down included). Not `ExpiredToken`, nor a bare 401:
 * the agents refresh on those, and pass them through only when the refresh
 * could not reach the server (the session is intact: wait and retry); a
 * session that is really gone reaches here as a SESSION_ERRORS cause.
 */
const AUTH_ERRORS = new Set(["InvalidToken", "AuthenticationRequired", "AuthMissing", "AccountTakedown", "AccountDeactivated"]);
/**
 * Thrown by @atproto/oauth-client when a session cannot be refreshed or was
 * revoked, and by our agents (app password, OAuth) when the authorization is
 * dead; @atproto/api wraps them in an XRPCError, so causes are searched.
 */
const SESSION_ERRORS = new Set(["TokenRefreshError", "TokenRevokedError", "TokenInvalidError", "AuthorizationExpiredError"]);

/** What kind of failure `error` is (an XRPCError, or whatever fetch threw). */
export function classify(error: unknown): Failure {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (SESSION_ERRORS.has(e.name)) return "auth";
  }
  const status = (error as { status?: unknown }).status;
  if (typeof status !== "number") return "transient"; // fetch failed before any answer
  if (status === 429) return "rate-limited";
  if (AUTH_ERRORS.has(errorCode(error))) return "auth";
  if (status === 401 || errorCode(error) === "ExpiredToken") return "transient";
  if (status < 100 || status >= 500) return "transient"; // 1: no answer, 2: unreadable answer
  return "rejected";
}

/** A short, log-safe name for `error`: its XRPC error code, else its HTTP status. */
export function errorCode(error: unknown): string {
  const e = error as { error?: unknown; status?: unknown; message?: unknown };
  if (typeof e.error === "string" && e.error) return e.error;
  return typeof e.status === "number" ? `HTTP ${e.status}` : String(e.message ?? error);
}

/** `ratelimit-remaining` / `ratelimit-reset` (epoch seconds, rounded down by the server: +1 s). */
export function serverLimit(headers: Record<string, string | undefined> | undefined): { remaining: number; resetAt: Date } | undefined {
  const remaining = Number(headers?.["ratelimit-remaining"]);
  const reset = Number(headers?.["ratelimit-reset"]);
  if (!headers?.["ratelimit-remaining"] || !Number.isFinite(remaining) || !Number.isFinite(reset) || reset <= 0) return undefined;
  return { remaining, resetAt: new Date((reset + 1) * 1000) };
}

/**
 * When a 429 ends: its `ratelimit-reset`, else `retry-after` seconds, else a
 * minute — and never sooner than a second from now (a reset already past,
 * from a skewed clock, would have the writer ask again at once, and again).
 */
export function rateLimitedUntil(error: unknown, now: number): Date {
  const headers = (error as { headers?: Record<string, string | undefined> }).headers;
  const reset = serverLimit(headers)?.resetAt;
  const seconds = Number(headers?.["retry-after"]);
  const until = reset ? reset.getTime() : now + (Number.isFinite(seconds) && seconds > 0 ? seconds : 60) * 1000;
  return new Date(Math.max(until, now + MIN_RATE_LIMIT_WAIT_MS));
}

/** The shortest wait after a 429. */
const MIN_RATE_LIMIT_WAIT_MS = 1000;
