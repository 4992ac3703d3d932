/**
 * A loopback HTTP proxy in front of the local PDS that can misbehave on cue:
 * answer 429 with Bluesky's rate-limit headers, or drop every connection as
 * a restarting PDS does. Lets tests check that the bot waits and resumes.
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FlakyProxy {
  url: string;
  /** The next `count` requests to `method` (an XRPC NSID) get a 429 that resets in `resetSeconds`. */
  rateLimit(method: string, count: number, resetSeconds: number): void;
  /** Drops every request for `ms` milliseconds. */
  outage(ms: number): void;
  /** Requests seen per method, with their times. */
  seen: Array<{ method: string; at: number; status: number }>;
  close(): Promise<void>;
}

export async function startFlakyProxy(target: string): Promise<FlakyProxy> {
  const upstream = new URL(target);
  const limits = new Map<string, { count: number; resetSeconds: number }>();
  let downUntil = 0;
  const seen: FlakyProxy["seen"] = [];
  const server: Server = createServer((req, res) => {
    const method = new URL(req.url ?? "/", "http://x").pathname.replace(/^\/xrpc\//, "");
    if (Date.now() < downUntil) {
      seen.push({ method, at: Date.now(), status: 0 });
      req.socket.destroy();
      return;
    }
    const limit = limits.get(method);
    if (limit && limit.count > 0) {
      limit.count--;
      seen.push({ method, at: Date.now(), status: 429 });
      const reset = Math.ceil(Date.now() / 1000 + limit.resetSeconds);
      res.writeHead(429, {
        "content-type": "application/json",
        "ratelimit-limit": "3000",
        "ratelimit-remaining": "0",
        "ratelimit-reset": String(reset),
        "ratelimit-policy": "3000;w=300",
      });
      res.end(JSON.stringify({ error: "RateLimitExceeded", message: "Rate Limit Exceeded" }));
      return;
    }
    seen.push({ method, at: Date.now(), status: 200 });
    const forward = request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: { ...req.headers, host: upstream.host } },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    forward.on("error", () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    rateLimit(method, count, resetSeconds) {
      limits.set(method, { count, resetSeconds });
    },
    outage(ms) {
      downUntil = Date.now() + ms;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
