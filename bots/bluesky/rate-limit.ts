/**
 * A `fetch` that respects Bluesky's rate limits: a 429 waits for the time the
 * server names (`retry-after`, else `ratelimit-reset`) and tries again; a
 * response saying no request is left (`ratelimit-remaining: 0`) holds every
 * later request until `ratelimit-reset`. Waits end early when the bot stops,
 * and a request whose own signal aborts while it waits is not sent.
 */

export interface RateLimitOptions {
  base?: typeof globalThis.fetch;
  /** How many times one request is retried after a 429. */
  maxRetries?: number;
  /** Longest single wait; longer announced resets are capped (and retried). */
  maxWaitMs?: number;
  signal?: AbortSignal;
  onWait?: (info: { ms: number; status: number; url: string }) => void;
  now?: () => number;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted || ms <= 0) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Milliseconds to wait before trying again, from a response's headers; undefined when it names none. */
export function waitFromHeaders(headers: Headers, now: number): number | undefined {
  const retryAfter = headers.get("retry-after");
  if (retryAfter) {
    const seconds = Number(retryAfter);
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
    const date = Date.parse(retryAfter);
    if (!Number.isNaN(date)) return Math.max(0, date - now);
  }
  const reset = Number(headers.get("ratelimit-reset"));
  if (reset > 0) {
    // An epoch in seconds (Bluesky), or, when small, a number of seconds from now.
    return Math.max(0, reset > 1e9 ? reset * 1000 - now : reset * 1000);
  }
  return undefined;
}

export function rateLimitedFetch(options: RateLimitOptions = {}): typeof globalThis.fetch {
  const base = options.base ?? globalThis.fetch;
  const maxRetries = options.maxRetries ?? 5;
  const maxWaitMs = options.maxWaitMs ?? 15 * 60_000;
  const now = options.now ?? Date.now;
  let blockedUntil = 0;

  return async function fetchWithLimits(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const own = (input instanceof Request ? input.signal : undefined) ?? init?.signal ?? undefined;
    const waitSignal = own && options.signal ? AbortSignal.any([own, options.signal]) : (own ?? options.signal);
    for (let attempt = 0; ; attempt++) {
      const hold = blockedUntil - now();
      if (hold > 0) {
        options.onWait?.({ ms: hold, status: 0, url });
        await sleep(Math.min(hold, maxWaitMs), waitSignal);
      }
      // Given up while it waited (its claim lost): never sent.
      own?.throwIfAborted();
      const response = await base(input instanceof Request ? input.clone() : input, init);
      const wait = waitFromHeaders(response.headers, now());
      if (response.status === 429) {
        if (attempt >= maxRetries || options.signal?.aborted) return response;
        const ms = Math.min(wait ?? 2 ** attempt * 1000, maxWaitMs);
        await response.body?.cancel().catch(() => {});
        options.onWait?.({ ms, status: 429, url });
        await sleep(ms, waitSignal);
        continue;
      }
      if (response.headers.get("ratelimit-remaining") === "0" && wait !== undefined) {
        blockedUntil = Math.max(blockedUntil, now() + wait);
      }
      return response;
    }
  };
}
