/**
 * A small client for the REST API of a Mastodon-compatible instance, acting
 * with one person's token: the calls the reconnection needs, typed, with the
 * instance's rate limit (`X-RateLimit-*`) honoured, expired tokens and rate
 * limits turned into the reconnection's errors, timeouts, and no requests to
 * private addresses unless allowed. It never logs; errors never carry tokens.
 */
import { setTimeout as delay } from "node:timers/promises";
import { assertPublicHost, isNonPublicAddressError, NonPublicAddressError, publicFetch } from "../../net/public-fetch.ts";
import { AuthorizationExpiredError, RateLimitedError } from "../types.ts";

/** The Account entity fields this project reads. */
export interface MastodonAccount {
  id: string;
  username: string;
  /** `user` for local accounts, `user@domain` for remote ones. */
  acct: string;
  url: string | null;
  /** The actor URI (Mastodon ≥ 4.2). */
  uri?: string;
  display_name?: string;
  locked: boolean;
  bot?: boolean;
  /** Present (true) only when suspended. */
  suspended?: boolean;
  /** The new account when this one moved. */
  moved?: MastodonAccount | null;
}

/** The Relationship entity fields this project reads. */
export interface MastodonRelationship {
  id: string;
  following: boolean;
  requested: boolean;
  followed_by?: boolean;
  blocking: boolean;
  blocked_by: boolean;
  domain_blocking: boolean;
}

/** What the instance said last about the token's rate limit. */
export interface RateLimitState {
  limit: number | null;
  remaining: number;
  reset: Date;
}

/** An answer the call cannot use. `status` 0: no HTTP answer (network, timeout, refused address). */
export class MastodonApiError extends Error {
  readonly status: number;
  /** Short and log-safe: `http_404`, `timeout`, `network`, `private_address`. */
  readonly code: string;
  /** The instance's own `error` text, if any. */
  readonly serverError: string | undefined;
  constructor(status: number, code: string, serverError?: string) {
    super(serverError ? `${code}: ${serverError}` : code);
    this.name = "MastodonApiError";
    this.status = status;
    this.code = code;
    this.serverError = serverError;
  }
}

export interface MastodonClientOptions {
  /** The instance's origin, e.g. `https://mastodon.social`. */
  instance: string;
  accessToken?: string;
  /** Tests and the sandbox only: allow loopback and private addresses (and plain http). */
  allowPrivateAddresses?: boolean;
  /** Per request (default 30 s: resolving remote accounts can be slow). */
  timeoutMs?: number;
  /** Waits for a rate limit this long at most; longer → `RateLimitedError` (default 0: never wait). */
  maxWaitMs?: number;
  /** Aborts every request (the job stopping). */
  signal?: AbortSignal;
  fetch?: typeof fetch;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  userAgent?: string;
}

type QueryValue = string | number | boolean | readonly string[];

/** Server error texts that mean the token no longer lets us act (Mastodon's wording). */
const TOKEN_PROBLEM = /access token|outside the authorized scopes|requires an authenticated user|login is (currently disabled|missing|currently pending)/i;
/** Without a reset time, a 429 is retried after this long. */
const DEFAULT_BACKOFF_MS = 60_000;
const MAX_ATTEMPTS = 5;

export class MastodonClient {
  readonly instance: string;
  readonly #options: MastodonClientOptions;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  #checked: Promise<void> | undefined;
  #rate: RateLimitState | undefined;
  #inFlight = 0;

  constructor(options: MastodonClientOptions) {
    this.instance = new URL(options.instance).origin;
    this.#options = options;
    this.#fetch = options.fetch ?? (options.allowPrivateAddresses ? fetch : publicFetch);
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? ((ms, signal) => delay(ms, undefined, signal ? { signal } : {}));
  }

  /** The last rate-limit headers seen. */
  get rateLimit(): RateLimitState | undefined {
    return this.#rate;
  }

  verifyCredentials(): Promise<MastodonAccount> {
    return this.request("GET", "/api/v1/accounts/verify_credentials");
  }

  /** `acct` as `user` (local) or `user@domain`; null when the instance does not know it. */
  async lookup(acct: string): Promise<MastodonAccount | null> {
    try {
      return await this.request<MastodonAccount>("GET", "/api/v1/accounts/lookup", { query: { acct } });
    } catch (error) {
      if (error instanceof MastodonApiError && (error.status === 404 || error.status === 410)) return null;
      throw error;
    }
  }

  /** Accounts matching `q` (an acct or an actor URI); `resolve` lets the instance fetch unknown remote ones. */
  async searchAccounts(q: string, options: { resolve?: boolean; limit?: number } = {}): Promise<MastodonAccount[]> {
    const result = await this.request<{ accounts?: MastodonAccount[] }>("GET", "/api/v2/search", {
      query: { q, type: "accounts", resolve: options.resolve ?? false, limit: options.limit ?? 5 },
    });
    return result.accounts ?? [];
  }

  /** Relationships, in one call (suspended accounts are left out by Mastodon). */
  relationships(ids: readonly string[]): Promise<MastodonRelationship[]> {
    return this.request("GET", "/api/v1/accounts/relationships", { query: { "id[]": ids } });
  }

  follow(id: string): Promise<MastodonRelationship> {
    return this.request("POST", `/api/v1/accounts/${encodeURIComponent(id)}/follow`, { body: {} });
  }

  /**
   * One call. Waits out rate limits up to `maxWaitMs` (then retries), throws
   * `RateLimitedError` beyond, `AuthorizationExpiredError` when the token is
   * refused, `MastodonApiError` for other failures.
   * `auth: false` sends no token (app registration, token exchange).
   */
  async request<T>(
    method: "GET" | "POST",
    path: string,
    options: { query?: Record<string, QueryValue>; body?: Record<string, unknown>; form?: boolean; auth?: boolean } = {},
  ): Promise<T> {
    const url = new URL(path, this.instance);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (Array.isArray(value)) for (const v of value) url.searchParams.append(key, v);
      else url.searchParams.set(key, String(value));
    }
    await (this.#checked ??= this.#checkAddress());
    const auth = options.auth ?? true;
    for (let attempt = 1; ; attempt++) {
      await this.#gate();
      let response: Response;
      try {
        response = await this.#send(method, url, options.body, options.form ?? false, auth);
      } finally {
        this.#inFlight--;
      }
      const rate = this.#readRateLimit(response.headers);
      if (rate) this.#rate = rate;
      if (response.status === 429) {
        const until = rate?.reset.getTime() ?? this.#now() + DEFAULT_BACKOFF_MS;
        const reset = new Date(Math.max(until, this.#now() + 1_000));
        this.#rate = { limit: rate?.limit ?? null, remaining: 0, reset };
        await response.body?.cancel();
        if (attempt >= MAX_ATTEMPTS) throw new RateLimitedError(this.#rate.reset);
        continue; // the gate waits or throws
      }
      const text = await response.text().catch((error: unknown) => {
        throw this.#options.signal?.aborted ? this.#options.signal.reason : new MastodonApiError(0, "network", String(error));
      });
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        json = undefined;
      }
      if (response.ok) return json as T;
      const serverError = errorText(json);
      const status = response.status;
      if (auth && (status === 401 || ((status === 403 || status === 422) && TOKEN_PROBLEM.test(serverError ?? "")))) {
        throw new AuthorizationExpiredError(`${this.instance} refused the token (${status}${serverError ? `: ${serverError}` : ""})`);
      }
      throw new MastodonApiError(response.status, `http_${response.status}`, serverError);
    }
  }

  async #send(method: string, url: URL, body: Record<string, unknown> | undefined, form: boolean, auth: boolean): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.#options.userAgent) headers["User-Agent"] = this.#options.userAgent;
    if (auth && this.#options.accessToken) headers.Authorization = `Bearer ${this.#options.accessToken}`;
    let payload: string | undefined;
    if (body) {
      headers["Content-Type"] = form ? "application/x-www-form-urlencoded" : "application/json";
      payload = form
        ? new URLSearchParams(Object.entries(body).map(([k, v]): [string, string] => [k, String(v)])).toString()
        : JSON.stringify(body);
    }
    const external = this.#options.signal;
    external?.throwIfAborted();
    const timeout = AbortSignal.timeout(this.#options.timeoutMs ?? 30_000);
    const signal = external ? AbortSignal.any([external, timeout]) : timeout;
    try {
      // No redirects: an API answer never moves, and a redirect could point anywhere.
      return await this.#fetch(url, { method, headers, body: payload ?? null, signal, redirect: "manual" });
    } catch (error) {
      if (external?.aborted) throw external.reason;
      if (timeout.aborted) throw new MastodonApiError(0, "timeout");
      if (isNonPublicAddressError(error)) throw new MastodonApiError(0, "private_address", `${url.hostname} is not a public address`);
      throw new MastodonApiError(0, "network", error instanceof Error ? error.message : undefined);
    }
  }

  /**
   * Holds a request while the known budget is spent: waits for the reset if
   * short enough, else throws. A request let through is counted in flight at
   * once, so concurrent callers cannot all take the last unit.
   */
  async #gate(): Promise<void> {
    for (;;) {
      const rate = this.#rate;
      const wait = rate ? rate.reset.getTime() - this.#now() : 0;
      if (rate && wait <= 0) this.#rate = undefined;
      if (!rate || wait <= 0 || rate.remaining - this.#inFlight > 0) {
        this.#inFlight++;
        return;
      }
      if (wait > (this.#options.maxWaitMs ?? 0)) throw new RateLimitedError(rate.reset);
      await this.#sleep(wait, this.#options.signal);
    }
  }

  #readRateLimit(headers: Headers): RateLimitState | undefined {
    const remaining = Number(headers.get("x-ratelimit-remaining") ?? NaN);
    const resetHeader = headers.get("x-ratelimit-reset");
    const retryAfter = headers.get("retry-after");
    // Mastodon writes an ISO time; some servers Unix seconds, or seconds from now.
    let reset = !resetHeader ? NaN : /^\d+$/.test(resetHeader) ? secondsToTime(Number(resetHeader), this.#now()) : Date.parse(resetHeader);
    if (Number.isNaN(reset) && retryAfter) {
      reset = /^\d+$/.test(retryAfter) ? this.#now() + Number(retryAfter) * 1000 : Date.parse(retryAfter);
    }
    if (Number.isNaN(reset)) return undefined;
    const limit = Number(headers.get("x-ratelimit-limit") ?? NaN);
    return {
      limit: Number.isNaN(limit) ? null : limit,
      remaining: Number.isNaN(remaining) ? 0 : remaining,
      reset: new Date(reset),
    };
  }

  async #checkAddress(): Promise<void> {
    const url = new URL(this.instance);
    if (this.#options.allowPrivateAddresses) return;
    if (url.protocol !== "https:") throw new MastodonApiError(0, "insecure_url");
    let resolves: boolean;
    try {
      resolves = await assertPublicHost(url.hostname);
    } catch (error) {
      if (error instanceof NonPublicAddressError) throw new MastodonApiError(0, "private_address", error.message);
      throw error;
    }
    if (!resolves) throw new MastodonApiError(0, "network", `cannot resolve ${url.hostname}`);
  }
}

function errorText(json: unknown): string | undefined {
  if (json && typeof json === "object") {
    const { error, error_description: description } = json as { error?: unknown; error_description?: unknown };
    if (typeof error === "string") return typeof description === "string" ? `${error}: ${description}` : error;
  }
  return undefined;
}

/** A reset given in whole seconds: a Unix time when it is one (after 2001), else a delay from `now`. */
function secondsToTime(seconds: number, now: number): number {
  return seconds > 1e9 ? seconds * 1000 : now + seconds * 1000;
}
