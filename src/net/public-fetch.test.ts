import { execFile } from "node:child_process";
import { createServer, request, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { promisify } from "node:util";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertPublicHost, createOperatorFetch, createPublicFetch, guardProcessFetch, isNonPublicAddressError, isPublicAddress, NonPublicAddressError } from "./public-fetch.ts";

const execFileAsync = promisify(execFile);

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

describe("isPublicAddress", () => {
  it("refuses every range no public server lives on, and takes public ones", () => {
    for (const address of ["127.0.0.1", "10.0.0.1", "100.64.0.1", "169.254.169.254", "::1", "::", "fe80::1", "fd00::1", "fec0::1",
      "::ffff:10.0.0.1", "::ffff:0:7f00:1", "64:ff9b:1::1", "2001:db8::1", "3fff::1", "5f00::1", "ff02::1"]) {
      expect(isPublicAddress(address), address).toBe(false);
    }
    for (const address of ["1.1.1.1", "::ffff:8.8.8.8", "2a01:4f8::1", "2606:4700::1111"]) expect(isPublicAddress(address), address).toBe(true);
  });

  it("judges a NAT64 address (the well-known prefix) by the IPv4 server it stands for", () => {
    for (const address of ["64:ff9b::808:808", "64:ff9b::8.8.8.8", "64:ff9b:0:0:0:0:101:101"]) expect(isPublicAddress(address), address).toBe(true);
    for (const address of ["64:ff9b::a00:1", "64:ff9b::10.0.0.1", "64:ff9b::7f00:1", "64:ff9b::", "64:ff9b::a9fe:a9fe"]) expect(isPublicAddress(address), address).toBe(false);
  });
});

describe("guardProcessFetch", () => {
  // Fedify delivers with the platform's fetch and follows an inbox's redirects itself: the guard is on every connection.
  it("checks every connection the process's fetch makes, redirects included, and lets the operator's own origins through", async () => {
    const targets = [
      `http://127.0.0.1:${port}/internal`,
      `http://rebound.example:${port}/internal`,
      `http://[::ffff:127.0.0.1]:${port}/internal`,
      // The trusted host, on another port: trust is for an origin, not a host.
      `http://localhost:${port}/internal`,
    ];
    const redirecting = createServer((req, res) => res.writeHead(307, { Location: targets[Number(req.url!.slice(1))]! }).end());
    await new Promise<void>((resolve) => redirecting.listen(0, "127.0.0.1", resolve));
    const redirector = `http://localhost:${(redirecting.address() as AddressInfo).port}`;
    const before = requests;
    const guard = guardProcessFetch({ resolve: rebinding, trustedOrigins: [`${redirector}/some/path`] });
    try {
      for (const [i, target] of targets.entries()) {
        const error = await fetch(`${redirector}/${i}`, { method: "POST", body: "{}" }).catch((e: unknown) => e);
        expect(isNonPublicAddressError(error), target).toBe(true);
      }
      // The operator's own origin (here the first hop) is reached wherever it is.
      expect((await fetch(`${redirector}/0`, { redirect: "manual" })).status).toBe(307);
      // And their own services' fetch goes past the guard.
      expect(await (await createOperatorFetch()(`http://127.0.0.1:${port}/`)).text()).toBe("here");
      expect(requests).toBe(before + 1);
    } finally {
      guard.undo();
      await new Promise<void>((resolve) => redirecting.close(() => resolve()));
    }
    // Undone: the process's fetch is as it was.
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toBe("here");
  });

  it("keeps an egress proxy: requests go through it (wherever it is), and hosts it leaves out (NO_PROXY) are checked here", async () => {
    // A proxy on loopback that takes every request to this test's server, tunnelled (CONNECT) or forwarded.
    const proxy = createServer((req, res) => {
      const upstream = request({ host: "127.0.0.1", port, path: "/", method: req.method }, (answer) => answer.pipe(res));
      req.pipe(upstream);
    });
    proxy.on("connect", (_req, client: Socket) => {
      const upstream = connect(port, "127.0.0.1", () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.pipe(client).pipe(upstream);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const script = `import { guardProcessFetch } from ${JSON.stringify(new URL("./public-fetch.ts", import.meta.url).href)};
      const guard = guardProcessFetch();
      const outcome = (p) => p.then((r) => r.text(), (e) => "refused: " + (e.cause?.code ?? e.message));
      const direct = await outcome(fetch(process.env.DIRECT_URL));
      const proxied = await outcome(fetch("http://public.example/"));
      console.log(JSON.stringify({ viaProxy: guard.viaProxy, direct, proxied }));`;
    const run = async (env: Record<string, string>) => {
      const { stdout } = await execFileAsync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, DIRECT_URL: `http://127.0.0.1:${port}/`, ...env } });
      return JSON.parse(stdout) as { viaProxy: boolean; direct: string; proxied: string };
    };
    try {
      const before = requests;
      expect(await run({ NODE_USE_ENV_PROXY: "1", HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl, NO_PROXY: "127.0.0.1" })).toEqual({
        viaProxy: true,
        direct: "refused: ENONPUBLIC",
        proxied: "here",
      });
      expect(requests).toBe(before + 1);
      const unproxied = await run({ NODE_USE_ENV_PROXY: "", HTTP_PROXY: "", HTTPS_PROXY: "", NO_PROXY: "" });
      expect(unproxied).toMatchObject({ viaProxy: false, direct: "refused: ENONPUBLIC" });
      expect(unproxied.proxied).not.toBe("here");
    } finally {
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });
});
