/**
 * The Mastodon client's edges: addresses it refuses, rate-limit headers,
 * 429 without a reset, timeouts, and token errors that never carry the token.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthorizationExpiredError, RateLimitedError } from "../types.ts";
import { isPublicAddress } from "../../net/public-fetch.ts";
import { MastodonApiError, MastodonClient } from "./client.ts";

let server: Server;
let origin: string;
/** What the next request gets: status, headers, body (or no answer at all). */
let answer: { status: number; headers?: Record<string, string>; body?: unknown; hang?: boolean } = { status: 200, body: {} };

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    if (answer.hang) return;
    res.writeHead(answer.status, { "Content-Type": "application/json", ...answer.headers });
    res.end(JSON.stringify(answer.body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const client = (options: Partial<ConstructorParameters<typeof MastodonClient>[0]> = {}) =>
  new MastodonClient({ instance: origin, accessToken: "SECRET-TOKEN", allowPrivateAddresses: true, ...options });

describe("MastodonClient", () => {
  it("tells public addresses from the rest", () => {
    for (const ip of ["127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1"]) {
      expect(isPublicAddress(ip), ip).toBe(false);
    }
    for (const ip of ["1.1.1.1", "93.184.216.34", "2606:4700:4700::1111"]) expect(isPublicAddress(ip), ip).toBe(true);
  });

  it("refuses loopback, private hosts and plain http unless allowed", async () => {
    await expect(client({ allowPrivateAddresses: false }).verifyCredentials()).rejects.toMatchObject({ code: "insecure_url" });
    await expect(client({ instance: "https://127.0.0.1:9", allowPrivateAddresses: false }).verifyCredentials()).rejects.toMatchObject({ code: "private_address" });
    await expect(client({ instance: "https://localhost:9", allowPrivateAddresses: false }).verifyCredentials()).rejects.toMatchObject({ code: "private_address" });
  });

  it("reads X-RateLimit-* (Mastodon writes microseconds)", async () => {
    answer = { status: 200, body: [], headers: { "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "299", "X-RateLimit-Reset": "2030-01-01T00:05:00.000000Z" } };
    const c = client();
    await c.relationships(["1"]);
    expect(c.rateLimit).toEqual({ limit: 300, remaining: 299, reset: new Date("2030-01-01T00:05:00Z") });
  });

  it("reads an X-RateLimit-Reset given in Unix seconds, or in seconds from now, as other servers write it", async () => {
    const now = Date.parse("2030-01-01T00:00:00Z");
    answer = { status: 200, body: [], headers: { "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "10", "X-RateLimit-Reset": String(now / 1000 + 300) } };
    const epoch = client({ now: () => now });
    await epoch.relationships(["1"]);
    expect(epoch.rateLimit?.reset).toEqual(new Date(now + 300_000));
    answer = { status: 200, body: [], headers: { "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "10", "X-RateLimit-Reset": "120" } };
    const relative = client({ now: () => now });
    await relative.relationships(["1"]);
    expect(relative.rateLimit?.reset).toEqual(new Date(now + 120_000));
  });

  it("throws RateLimitedError on a 429: at the reset header, else after a back-off", async () => {
    answer = { status: 429, body: { error: "Too many requests" }, headers: { "X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2030-01-01T00:05:00.000000Z" } };
    await expect(client().follow("1")).rejects.toMatchObject({ until: new Date("2030-01-01T00:05:00Z") });
    answer = { status: 429, body: { error: "Too many requests" } };
    const now = Date.parse("2030-01-01T00:00:00Z");
    const error = await client({ now: () => now }).follow("1").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitedError);
    expect((error as RateLimitedError).until.getTime()).toBe(now + 60_000);
  });

  it("turns refused tokens into AuthorizationExpiredError, without the token in the message", async () => {
    for (const [status, error] of [[401, "The access token is invalid"], [403, "This action is outside the authorized scopes"], [403, "Your login is currently disabled"]] as const) {
      answer = { status, body: { error } };
      const e = await client().verifyCredentials().catch((x: unknown) => x);
      expect(e).toBeInstanceOf(AuthorizationExpiredError);
      expect(String((e as Error).message)).not.toContain("SECRET-TOKEN");
    }
    answer = { status: 403, body: { error: "This action is not allowed" } };
    await expect(client().follow("1")).rejects.toMatchObject({ status: 403, serverError: "This action is not allowed" });
    answer = { status: 404, body: { error: "Record not found" } };
    expect(await client().lookup("nobody@example.org")).toBeNull();
  });

  it("gives up on an instance that does not answer", async () => {
    answer = { status: 200, hang: true };
    const error = await client({ timeoutMs: 200 }).verifyCredentials().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MastodonApiError);
    expect(error).toMatchObject({ status: 0, code: "timeout" });
    answer = { status: 200, body: {} };
  });
});
