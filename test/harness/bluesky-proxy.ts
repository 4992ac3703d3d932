/**
 * A loopback HTTP proxy in front of the local PDS that can misbehave on cue:
 * answer 429 with Bluesky's rate-limit headers, drop every connection as
 * a restarting PDS does, or refuse an access token as expired. Lets tests
 * check that the bot waits and resumes.
 */
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface FlakyProxy {
  url: string;
  /** The next `count` requests to `method` (an XRPC NSID) get a 429 that resets in `resetSeconds`. */
  rateLimit(method: string, count: number, resetSeconds: number): void;
  /** Drops every request for `ms` milliseconds. */
  outage(ms: number): void;
  /**
   * From now on, refuses requests carrying `accessJwt` (to `methods` only, when
   * given) as the PDS does an expired token: 400 ExpiredToken.
   */
  refuseToken(accessJwt: string, methods?: readonly string[]): void;
  /** Requests seen per method, with their times. */
  seen: Array<{ method: string; at: number; status: number }>;
  close(): Promise<void>;
}

export async function startFlakyProxy(target: string): Promise<FlakyProxy> {
  const upstream = new URL(target);
  const limits = new Map<string, { count: number; resetSeconds: number }>();
  let downUntil = 0;
  const refused = new Map<string, readonly string[] | undefined>();
  const seen: FlakyProxy["seen"] = [];
  const server: Server = createServer((req, res) => {
    const method = new URL(req.url ?? "/", "http://x").pathname.replace(/^\/xrpc\//, "");
    if (Date.now() < downUntil) {
      seen.push({ method, at: Date.now(), status: 0 });
      req.socket.destroy();
      return;
    }
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (bearer && refused.has(bearer) && (refused.get(bearer) ?? [method]).includes(method)) {
      seen.push({ method, at: Date.now(), status: 400 });
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "ExpiredToken", message: "Token has expired" }));
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
    refuseToken(accessJwt, methods) {
      refused.set(accessJwt, methods);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
