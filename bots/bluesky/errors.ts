/**
 * Telling apart failures worth waiting out (network down, PDS restarting,
 * 5xx, a 429 that outlasted its retries) from answers that will not change
 * (bad password, a refusal, a deleted record).
 */
import { XRPCError } from "@atproto/api";

/** @atproto/xrpc's ResponseType.Unknown: the request got no answer (not re-exported by @atproto/api). */
const NO_RESPONSE = 1;

export function isTransient(error: unknown): boolean {
  if (error instanceof XRPCError) return error.status < 200 || error.status >= 500 || error.status === 429;
  return true; // fetch failures (ECONNREFUSED, reset sockets) are TypeErrors and the like
}

/** The XRPC error name (`NotFollowedBySender`, `ExpiredToken`…), if any. */
export function errorName(error: unknown): string | undefined {
  return error instanceof XRPCError ? error.error : undefined;
}

export function isAuthFailure(error: unknown): boolean {
  return (
    error instanceof XRPCError &&
    (error.status === 401 || ["AuthenticationRequired", "ExpiredToken", "InvalidToken", "AccountTakedown"].includes(error.error))
  );
}

/**
 * Whether an event that failed this way should be tried again rather than
 * given up: the network's passing failures, and a refused or lost session
 * (the bot logs in again; the event is not the problem).
 */
export function isRetryable(error: unknown): boolean {
  return isTransient(error) || isAuthFailure(error) || error instanceof ChatUnavailableError;
}

/**
 * Whether a failure that will be retried is the network's or the server's
 * passing trouble — no answer at all, 5xx, 429, a dropped or refused
 * connection (to Bluesky or to PostgreSQL), a timeout — rather than
 * something about this one event (a bug, an answer that does not parse, a
 * value the database refuses), which is not worth retrying forever.
 */
export function isPassingFailure(error: unknown): boolean {
  if (error instanceof XRPCError) {
    if (error.status === NO_RESPONSE) return true;
    if (error.status >= 500 || error.status === 429) return true;
  }
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 6; e = e.cause, depth++) {
    if (e.name === "AbortError" || e.name === "TimeoutError") return true;
    if (e instanceof TypeError && e.message === "fetch failed") return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code !== "string") continue;
    // System errors (ECONNREFUSED, ECONNRESET, ETIMEDOUT…), undici's and postgres.js's connection errors.
    if (/^E[A-Z]+$/.test(code) || code.startsWith("UND_ERR") || code.startsWith("CONNECT")) return true;
    // PostgreSQL: connection exception, serialization failure or deadlock, insufficient resources, shutting down.
    if (e.name === "PostgresError" && /^(08|40|53|57)/.test(code)) return true;
  }
  return false;
}

/**
 * Whether a failure counts against the event being answered, towards giving
 * it up: a retryable failure that is neither passing trouble nor the bot's
 * own (its session, its access to chat).
 */
export function isEventFailure(error: unknown): boolean {
  return (
    isRetryable(error) &&
    !isPassingFailure(error) &&
    !isAuthFailure(error) &&
    !(error instanceof ChatUnavailableError) &&
    !(error instanceof EventBusyError)
  );
}

export function describe(error: unknown): string {
  if (error instanceof XRPCError) return `${error.status} ${error.error}: ${error.message}`;
  if (error instanceof Error) return `${error.name}: ${error.message}${error.cause instanceof Error ? ` (${error.cause.message})` : ""}`;
  return String(error);
}

/** Another worker holds a fresh claim on the event: come back to it at the next poll, quietly. */
export class EventBusyError extends Error {
  constructor(eventId: string) {
    super(`event ${eventId} is being handled by another worker`);
    this.name = "EventBusyError";
  }
}

/**
 * The PDS refuses every chat call of the bot's session while its other calls
 * work: the app password was made without access to direct messages.
 */
export class ChatUnavailableError extends Error {
  constructor(cause: unknown) {
    super(`Bluesky chat refused to the bot's session (${describe(cause)})`, { cause });
    this.name = "ChatUnavailableError";
  }
}
