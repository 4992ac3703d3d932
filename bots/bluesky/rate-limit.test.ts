import { describe, expect, it } from "vitest";
import { rateLimitedFetch, waitFromHeaders } from "./rate-limit.ts";

function response(status: number, headers: Record<string, string> = {}) {
  return new Response(status === 200 ? "{}" : JSON.stringify({ error: "RateLimitExceeded" }), { status, headers });
}

describe("waitFromHeaders", () => {
  const now = 1_700_000_000_000;
  it("reads retry-after in seconds or as a date, else ratelimit-reset as an epoch", () => {
    expect(waitFromHeaders(new Headers({ "retry-after": "3" }), now)).toBe(3000);
    expect(waitFromHeaders(new Headers({ "retry-after": new Date(now + 5000).toUTCString() }), now)).toBe(5000);
    expect(waitFromHeaders(new Headers({ "ratelimit-reset": String(now / 1000 + 7) }), now)).toBe(7000);
    expect(waitFromHeaders(new Headers({}), now)).toBeUndefined();
  });
});

describe("rateLimitedFetch", () => {
  it("retries a 429 after the announced reset", async () => {
    let clock = 0;
    const calls: number[] = [];
    const answers = [response(429, { "ratelimit-reset": "2", "ratelimit-remaining": "0" }), response(200)];
    const waits: number[] = [];
    const f = rateLimitedFetch({
      base: async () => {
        calls.push(clock);
        return answers.shift()!;
      },
      now: () => clock,
      onWait: ({ ms }) => {
        waits.push(ms);
        clock += ms;
      },
      maxWaitMs: 10,
    });
    const res = await f("http://pds.invalid/xrpc/x");
    expect(res.status).toBe(200);
    expect(calls).toHaveLength(2);
    expect(waits).toEqual([10]); // capped by maxWaitMs in this test
  });

  it("holds later requests while no request is left in the window", async () => {
    let clock = 0;
    const waits: number[] = [];
    const f = rateLimitedFetch({
      base: async () => response(200, { "ratelimit-remaining": "0", "ratelimit-reset": "1" }),
      now: () => clock,
      onWait: ({ ms }) => waits.push(ms),
      maxWaitMs: 5,
    });
    await f("http://pds.invalid/xrpc/a");
    await f("http://pds.invalid/xrpc/b");
    expect(waits).toEqual([1000]);
  });

  it("gives the 429 back after too many retries", async () => {
    const f = rateLimitedFetch({ base: async () => response(429, { "retry-after": "0" }), maxRetries: 2 });
    expect((await f("http://pds.invalid/xrpc/x")).status).toBe(429);
  });

  it("does not send a request whose own signal aborts while it waits out a 429, and stops waiting at once", async () => {
    let calls = 0;
    const f = rateLimitedFetch({
      base: async () => {
        calls++;
        return response(429, { "retry-after": "30" });
      },
    });
    const controller = new AbortController();
    const started = Date.now();
    const pending = f(new Request("http://pds.invalid/xrpc/x", { signal: controller.signal }));
    setTimeout(() => controller.abort(new Error("claim lost")), 50);
    await expect(pending).rejects.toThrow("claim lost");
    expect(calls).toBe(1);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
