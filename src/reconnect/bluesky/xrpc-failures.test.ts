/** How the Bluesky writer reads a 429's timing. */
import { describe, expect, it } from "vitest";
import { rateLimitedUntil } from "./xrpc-failures.ts";

const now = Date.parse("2030-01-01T00:00:00Z");
const limited = (headers: Record<string, string>) => ({ status: 429, headers });

describe("rateLimitedUntil", () => {
  it("is the ratelimit-reset (epoch seconds, +1 s for the server's rounding), else retry-after, else a minute", () => {
    expect(rateLimitedUntil(limited({ "ratelimit-remaining": "0", "ratelimit-reset": String(now / 1000 + 30) }), now)).toEqual(new Date(now + 31_000));
    expect(rateLimitedUntil(limited({ "retry-after": "5" }), now)).toEqual(new Date(now + 5_000));
    expect(rateLimitedUntil(limited({}), now)).toEqual(new Date(now + 60_000));
  });

  it("is never sooner than a second from now: a reset already past does not make the writer ask again at once", () => {
    expect(rateLimitedUntil(limited({ "ratelimit-remaining": "0", "ratelimit-reset": String(now / 1000 - 120) }), now)).toEqual(new Date(now + 1_000));
  });
});
