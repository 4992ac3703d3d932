/**
 * Which failures are waited out and which count against the event being
 * answered (bots/bluesky/errors.ts): a wrong call here means either a bad
 * event retried forever, holding up the ones after it, or good events given
 * up during an outage.
 */
import { XRPCError } from "@atproto/api";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { ChatUnavailableError, EventBusyError, isEventFailure, isPassingFailure, isRetryable } from "./errors.ts";

const systemError = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code });
const postgresError = (code: string) => Object.assign(new postgres.PostgresError(`error ${code}`), { code });

describe("failures of an event's answer", () => {
  it.each([
    ["no answer at all (fetch failed, wrapped by XRPC)", new XRPCError(1, "Unknown", "fetch failed", undefined, { cause: new TypeError("fetch failed") })],
    ["a 502 from the PDS", new XRPCError(502, "BadGateway")],
    ["a 429 that outlasted its retries", new XRPCError(429, "RateLimitExceeded")],
    ["fetch failed on a refused connection", new TypeError("fetch failed", { cause: systemError("ECONNREFUSED") })],
    ["a socket closed under undici", Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" })],
    ["PostgreSQL unreachable (postgres.js)", Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" })],
    ["PostgreSQL shutting down", postgresError("57P01")],
    ["a deadlock", postgresError("40P01")],
    ["a request aborted on timeout", new DOMException("The operation timed out.", "TimeoutError")],
  ])("waits out %s without counting it against the event", (_, error) => {
    expect(isRetryable(error)).toBe(true);
    expect(isPassingFailure(error)).toBe(true);
    expect(isEventFailure(error)).toBe(false);
  });

  it.each([
    ["a bug in the bot", new TypeError("Cannot read properties of undefined (reading 'text')")],
    ["an answer that does not parse", new XRPCError(2, "InvalidResponse", "The server gave an invalid response")],
    ["a value PostgreSQL refuses", postgresError("22021")],
  ])("retries %s a few times, counting each try against the event", (_, error) => {
    expect(isRetryable(error)).toBe(true);
    expect(isPassingFailure(error)).toBe(false);
    expect(isEventFailure(error)).toBe(true);
  });

  it("retries the bot's own trouble (session refused, chat not allowed, another worker on it) without counting it against the event", () => {
    for (const error of [
      new XRPCError(401, "AuthenticationRequired"),
      new XRPCError(400, "ExpiredToken"),
      new ChatUnavailableError(new XRPCError(403, "Forbidden")),
      new EventBusyError("chat:c:m"),
    ]) {
      expect(isRetryable(error)).toBe(true);
      expect(isEventFailure(error)).toBe(false);
    }
  });

  it("does not retry a refusal that will not change (a 4xx)", () => {
    const error = new XRPCError(400, "InvalidRequest", "Record not found");
    expect(isRetryable(error)).toBe(false);
    expect(isEventFailure(error)).toBe(false);
  });
});
