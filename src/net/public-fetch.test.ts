import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertPublicHost, createPublicFetch, guardProcessFetch, isNonPublicAddressError, NonPublicAddressError } from "./public-fetch.ts";

let server: Server;
let port: number;
let requests = 0;
beforeAll(async () => {
  server = createServer((_req, res) => {
    requests++;
    res.end("here");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** A name that resolves to this machine's loopback, as a rebinding attacker's DNS would answer at connect time. */
const rebinding = async () => [{ address: "127.0.0.1", family: 4 }];

describe("publicFetch", () => {
  it("refuses to connect when the host resolves to a private address at connect time", async () => {
    const before = requests;
    const publicFetch = createPublicFetch({ resolve: rebinding });
    const error = await publicFetch(`http://instance.example:${port}/api/v1/instance`).catch((e: unknown) => e);
    expect(isNonPublicAddressError(error)).toBe(true);
    expect(requests).toBe(before);
  });

  it("refuses private IP literals without any lookup", async () => {
    const publicFetch = createPublicFetch({ resolve: () => Promise.reject(new Error("no lookup expected")) });
    for (const host of ["127.0.0.1", "[::1]", "10.1.2.3", "[::ffff:192.168.0.1]", "[::7f00:1]", "[::]"]) {
      const error = await publicFetch(`http://${host}:${port}/`).catch((e: unknown) => e);
      expect(isNonPublicAddressError(error), host).toBe(true);
    }
  });

  it("connects to an allowed address through the same path", async () => {
    const before = requests;
    const publicFetch = createPublicFetch({ resolve: rebinding, isAllowed: () => true });
    const response = await publicFetch(`http://instance.example:${port}/`);
    expect(response).toBeInstanceOf(Response);
    expect(response.url).toBe(`http://instance.example:${port}/`);
    expect(await response.text()).toBe("here");
    expect(requests).toBe(before + 1);
  });

  it("never follows a redirect (its target would skip the lookup check)", async () => {
    const redirecting = createServer((_req, res) => res.writeHead(302, { Location: `http://127.0.0.1:${port}/` }).end());
    await new Promise<void>((resolve) => redirecting.listen(0, "127.0.0.1", resolve));
    try {
      const before = requests;
      const publicFetch = createPublicFetch({ resolve: rebinding, isAllowed: (a) => a === "127.0.0.1" });
      const response = await publicFetch(`http://redirector.example:${(redirecting.address() as AddressInfo).port}/`, { redirect: "follow" });
      expect(response.status).toBe(302);
      expect(requests).toBe(before);
    } finally {
      await new Promise<void>((resolve) => redirecting.close(() => resolve()));
    }
  });

  it("answers early for a name that is or resolves to a private address", async () => {
    await expect(assertPublicHost("localhost")).rejects.toBeInstanceOf(NonPublicAddressError);
    await expect(assertPublicHost("[::1]")).rejects.toBeInstanceOf(NonPublicAddressError);
    expect(await assertPublicHost("name.invalid")).toBe(false);
  });
});

describe("guardProcessFetch", () => {
  // Fedify delivers with the platform's fetch and follows an inbox's redirects itself: the guard is on every connection.
  it("checks every connection the process's fetch makes, redirects included, and lets the operator's own hosts through", async () => {
    const targets = [`http://127.0.0.1:${port}/internal`, `http://rebound.example:${port}/internal`, `http://[::ffff:127.0.0.1]:${port}/internal`];
    const redirecting = createServer((req, res) => res.writeHead(307, { Location: targets[Number(req.url!.slice(1))]! }).end());
    await new Promise<void>((resolve) => redirecting.listen(0, "127.0.0.1", resolve));
    const redirector = `http://localhost:${(redirecting.address() as AddressInfo).port}`;
    const before = requests;
    const unguard = guardProcessFetch({ resolve: rebinding, trustedHosts: ["localhost"] });
    try {
      for (const [i, target] of targets.entries()) {
        const error = await fetch(`${redirector}/${i}`, { method: "POST", body: "{}" }).catch((e: unknown) => e);
        expect(isNonPublicAddressError(error), target).toBe(true);
      }
      // The operator's own host (here the first hop) is reached wherever it is.
      expect((await fetch(`${redirector}/0`, { redirect: "manual" })).status).toBe(307);
      expect(requests).toBe(before);
    } finally {
      unguard();
      await new Promise<void>((resolve) => redirecting.close(() => resolve()));
    }
    // Undone: the process's fetch is as it was.
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("here");
  });
});
