/**
 * Access to the client API of a Mastodon test instance (./mastodon-instance.ts):
 * what a request to `/api/` or `/oauth/` meets before any endpoint. Every
 * such request is logged. Doorkeeper's part is answered here: app
 * registration, the authorize form and its POST, tokens (authorization_code
 * and client_credentials), revoke; the scope checks endpoints make are here
 * too (`doorkeeper`, with Mastodon's scope hierarchy). Rack::Attack's part
 * follows: an injected fault if one is queued, then a dead token is refused
 * (401) and a live one counted against its rate limit (`X-RateLimit-*`
 * headers, 429). What gets through goes to the instance's endpoints.
 */
import { randomBytes } from "node:crypto";

/** A registered OAuth app. */
export interface InstanceApp {
  clientId: string;
  clientSecret: string;
  name: string;
  website: string | null;
  redirectUris: string[];
  scopes: string[];
}

export interface LoggedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  status: number;
  token: string | null;
}

/** An access token; `accountId` is null for an app's own token (client_credentials). */
export interface AccessToken {
  app: InstanceApp;
  accountId: string | null;
  scopes: string[];
  revoked: boolean;
}

/** What access asks of the instance (read on each request: tests change the rate limit and scopes on the fly). */
export interface AccessHost {
  rateLimit(): { limit: number; windowMs: number };
  /** Apps with granular scopes are refused (422), as by an instance older than Mastodon 2.4.3. */
  rejectGranularScopes(): boolean;
  /** The clock of rate-limit windows. */
  now(): number;
  /** The id of the local account these credentials log into, if any. */
  login(username: string, password: string | null): string | undefined;
  /** The instance's endpoints, for a request let through (`token` undefined: none was sent). */
  api(method: string, path: string, params: URLSearchParams, token: AccessToken | undefined): Promise<Response>;
}

const LEGACY = ["read", "write", "follow", "push"];
// Mastodon's granular scopes (2.4.3+) and `profile` (4.3+).
const GRANULAR = [
  ..."accounts blocks bookmarks favourites filters follows lists mutes notifications search statuses".split(" ").map((r) => `read:${r}`),
  ..."accounts blocks bookmarks conversations favourites filters follows lists media mutes notifications reports statuses"
    .split(" ")
    .map((r) => `write:${r}`),
  "profile",
];
/** What the deprecated `follow` scope covers. */
const FOLLOW_SCOPE = new Set(["read:follows", "write:follows", "write:blocks", "write:mutes"]);

const INVALID_TOKEN = { error: "The access token is invalid" };
const INVALID_SCOPE = { error: "invalid_scope", error_description: "The requested scope is invalid, unknown, or malformed." };
const INVALID_CLIENT = {
  error: "invalid_client",
  error_description:
    "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
};
const INVALID_GRANT = {
  error: "invalid_grant",
  error_description:
    "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the "
    + "authorization request, or was issued to another client.",
};

export const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json; charset=utf-8", ...headers } });
const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** Mastodon writes the reset with microseconds: `2026-01-01T12:05:00.000000Z`. */
const iso6 = (ms: number) => new Date(ms).toISOString().replace(/Z$/, "000Z");
const token64 = () => randomBytes(32).toString("base64url");

export class InstanceAccess {
  readonly requests: LoggedRequest[] = [];
  readonly apps: InstanceApp[] = [];
  readonly #host: AccessHost;
  readonly #tokens = new Map<string, AccessToken>();
  readonly #codes = new Map<string, { app: InstanceApp; accountId: string; redirectUri: string; scopes: string[] }>();
  readonly #windows = new Map<string, { start: number; count: number }>();
  readonly #faults: { status: number; resetInMs: number | undefined }[] = [];

  constructor(host: AccessHost) {
    this.#host = host;
  }

  register(name: string, website: string | null, redirectUris: string[], scopes: string[]): InstanceApp {
    const app = { clientId: token64(), clientSecret: token64(), name, website, redirectUris, scopes };
    this.apps.push(app);
    return app;
  }

  issue(app: InstanceApp, accountId: string | null, scopes: string[]): string {
    const token = token64();
    this.#tokens.set(token, { app, accountId, scopes, revoked: false });
    return token;
  }

  revoke(token: string): void {
    const t = this.#tokens.get(token);
    if (t) t.revoked = true;
  }

  /** The next `count` API requests answer `status` (429 by default, its reset `resetInMs` away). */
  failNext(count: number, options: { status?: number; resetInMs?: number } = {}): void {
    for (let i = 0; i < count; i++) this.#faults.push({ status: options.status ?? 429, resetInMs: options.resetInMs });
  }

  /** Answers and logs a request to Mastodon's API or OAuth routes; null for any other path (Fedify's). */
  async route(request: Request): Promise<Response | null> {
    const url = new URL(request.url);
    if (!url.pathname.startsWith("/api/") && !url.pathname.startsWith("/oauth/")) return null;
    const bearer = request.headers.get("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1] ?? null;
    const entry = { method: request.method, path: url.pathname, query: url.searchParams, status: 0, token: bearer };
    this.requests.push(entry);
    let response: Response;
    try {
      const params = await readParams(request, url);
      response = url.pathname.startsWith("/oauth/")
        ? this.#oauth(request.method, url.pathname, params)
        : await this.#limited(request.method, url.pathname, params, bearer);
    } catch (error) {
      response = json({ error: error instanceof Error ? error.message : String(error) }, 500);
    }
    entry.status = response.status;
    return response;
  }

  // --- the API: faults, tokens, rate limit

  /** Rack::Attack's part: injected faults, then the per-token window, its headers on every answer. */
  async #limited(method: string, path: string, params: URLSearchParams, bearer: string | null): Promise<Response> {
    const fault = this.#faults.shift();
    if (fault) {
      if (fault.status !== 429) return json(fault.status === 401 ? INVALID_TOKEN : { error: "Injected failure" }, fault.status);
      const reset = this.#host.now() + (fault.resetInMs ?? this.#host.rateLimit().windowMs);
      return json({ error: "Too many requests" }, 429, this.#rateHeaders(0, reset));
    }
    const token = bearer ? this.#tokens.get(bearer) : undefined;
    if (bearer && (!token || token.revoked)) return json(INVALID_TOKEN, 401);
    if (!bearer) return this.#api(method, path, params, undefined);
    const { limit, windowMs } = this.#host.rateLimit();
    const start = Math.floor(this.#host.now() / windowMs) * windowMs;
    const seen = this.#windows.get(bearer);
    const window = seen?.start === start ? seen : { start, count: 0 };
    window.count++;
    this.#windows.set(bearer, window);
    const headers = this.#rateHeaders(Math.max(0, limit - window.count), start + windowMs);
    if (window.count > limit) return json({ error: "Too many requests" }, 429, headers);
    const response = await this.#api(method, path, params, token);
    for (const [k, v] of Object.entries(headers)) response.headers.set(k, v);
    return response;
  }

  #rateHeaders(remaining: number, reset: number): Record<string, string> {
    const { limit } = this.#host.rateLimit();
    return { "X-RateLimit-Limit": String(limit), "X-RateLimit-Remaining": String(remaining), "X-RateLimit-Reset": iso6(reset) };
  }

  /** App registration is answered here; every other API route by the instance. */
  async #api(method: string, path: string, params: URLSearchParams, token: AccessToken | undefined): Promise<Response> {
    if (method === "POST" && path === "/api/v1/apps") return this.#createApp(params);
    return this.#host.api(method, path, params, token);
  }

  #createApp(params: URLSearchParams): Response {
    const name = params.get("client_name");
    const redirects = [...params.getAll("redirect_uris"), ...params.getAll("redirect_uris[]")]
      .flatMap((r) => r.split(/\s+/))
      .filter(Boolean);
    const invalid = (error: string) => json({ error: `Validation failed: ${error}` }, 422);
    if (!name) return invalid("Application name can't be blank");
    if (redirects.length === 0 || redirects.some((r) => !URL.canParse(r))) return invalid("Redirect URI must be an absolute URI.");
    const scopes = (params.get("scopes") ?? "read").split(/\s+/).filter(Boolean);
    const known = this.#host.rejectGranularScopes() ? LEGACY : [...LEGACY, ...GRANULAR];
    if (scopes.some((s) => !known.includes(s))) return invalid("Scopes doesn't match configured on the server.");
    const app = this.register(name, params.get("website"), redirects, scopes);
    return json({
      id: String(this.apps.length),
      name: app.name,
      website: app.website,
      scopes: app.scopes,
      redirect_uri: redirects.join("\n"),
      redirect_uris: redirects,
      client_id: app.clientId,
      client_secret: app.clientSecret,
      client_secret_expires_at: 0,
    });
  }

  // --- OAuth: authorize, token, revoke

  #oauth(method: string, path: string, p: URLSearchParams): Response {
    const app = this.apps.find((a) => a.clientId === p.get("client_id"));
    if (path === "/oauth/authorize") return app ? this.#authorize(method, app, p) : page(401, `<p>${INVALID_CLIENT.error_description}</p>`);
    if (!app || app.clientSecret !== p.get("client_secret")) return json(INVALID_CLIENT, 401);
    if (path === "/oauth/revoke") {
      const t = this.#tokens.get(p.get("token") ?? "");
      if (t && t.app !== app) return json({ error: "unauthorized_client", error_description: "You are not authorized to revoke this token" }, 403);
      if (t) t.revoked = true;
      return json({});
    }
    if (path !== "/oauth/token") return json({ error: "Not found" }, 404);
    const created_at = Math.floor(Date.now() / 1000);
    if (p.get("grant_type") === "client_credentials") {
      const scopes = (p.get("scope") ?? "read").split(/\s+/).filter(Boolean);
      if (scopes.some((s) => !app.scopes.includes(s))) return json(INVALID_SCOPE, 400);
      return json({ access_token: this.issue(app, null, scopes), token_type: "Bearer", scope: scopes.join(" "), created_at });
    }
    const code = this.#codes.get(p.get("code") ?? "");
    if (p.get("grant_type") !== "authorization_code" || code?.app !== app || code.redirectUri !== p.get("redirect_uri")) {
      return json(INVALID_GRANT, 400);
    }
    this.#codes.delete(p.get("code")!);
    const accessToken = this.issue(app, code.accountId, code.scopes);
    return json({ access_token: accessToken, token_type: "Bearer", scope: code.scopes.join(" "), created_at });
  }

  /** GET shows the login-and-authorize form; POST checks it and sends the browser back with a code (or an error). */
  #authorize(method: string, app: InstanceApp, p: URLSearchParams): Response {
    const redirect = p.get("redirect_uri") ?? "";
    if (!app.redirectUris.includes(redirect)) return page(400, "<p>The redirect uri included is not valid.</p>");
    const back = (query: Record<string, string>) => {
      const to = new URL(redirect);
      for (const [k, v] of Object.entries(query)) to.searchParams.set(k, v);
      if (p.get("state")) to.searchParams.set("state", p.get("state")!);
      return new Response(null, { status: 302, headers: { Location: to.href } });
    };
    const scopes = (p.get("scope") ?? "read").split(/\s+/).filter(Boolean);
    if (scopes.some((s) => !app.scopes.includes(s))) return back(INVALID_SCOPE);
    if (method === "GET") return page(200, form(app, p));
    if (p.get("decision") === "deny") {
      return back({ error: "access_denied", error_description: "The resource owner or authorization server denied the request." });
    }
    const accountId = this.#host.login(p.get("username") ?? "", p.get("password"));
    if (accountId === undefined) return page(401, `<p class="error">Invalid username or password.</p>${form(app, p)}`);
    const code = token64();
    this.#codes.set(code, { app, accountId, redirectUri: redirect, scopes });
    return back({ code });
  }
}

/**
 * Doorkeeper's checks on an endpoint: a token, one of the `accepted` scopes,
 * and unless `user` is false, a user behind the token (`hasUser`). Null lets
 * the request through.
 */
export function doorkeeper(token: AccessToken | undefined, hasUser: boolean, accepted: string[], user = true): Response | null {
  if (!token) return json(INVALID_TOKEN, 401);
  if (!accepted.some((s) => grants(token.scopes, s))) return json({ error: "This action is outside the authorized scopes" }, 403);
  if (user && !hasUser) return json({ error: "This method requires an authenticated user" }, 422);
  return null;
}

/** Mastodon's scope hierarchy: `read` covers `read:*`, `write` covers `write:*`, `follow` a few of both. */
function grants(scopes: string[], wanted: string): boolean {
  const [family] = wanted.split(":");
  return scopes.includes(wanted) || scopes.includes(family!) || (scopes.includes("follow") && FOLLOW_SCOPE.has(wanted));
}

/** Query, then a form or JSON body (as Rails merges them into `params`). */
async function readParams(request: Request, url: URL): Promise<URLSearchParams> {
  const params = new URLSearchParams(url.searchParams);
  if (request.method !== "POST") return params;
  const text = await request.text();
  if ((request.headers.get("content-type") ?? "").includes("json") && text) {
    for (const [k, v] of Object.entries(JSON.parse(text) as Record<string, unknown>)) {
      for (const item of Array.isArray(v) ? v : [v]) if (item != null) params.append(k, String(item));
    }
  } else for (const [k, v] of new URLSearchParams(text)) params.append(k, v);
  return params;
}

function form(app: InstanceApp, p: URLSearchParams): string {
  const hidden = ["response_type", "client_id", "redirect_uri", "scope", "state"]
    .map((k) => `<input type="hidden" name="${k}" value="${escape(p.get(k) ?? "")}">`)
    .join("");
  return `<h1>Authorization required</h1>
<p><strong>${escape(app.name)}</strong> would like permission to access your account (${escape(p.get("scope") ?? "read")}).</p>
<form method="post" action="/oauth/authorize">${hidden}
<label>Username <input name="username" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit" name="decision" value="authorize">Authorize</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>`;
}

function page(status: number, body: string): Response {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test instance</title></head><body>${body}</body></html>`;
  return new Response(html, { status, headers: { "Content-Type": "text/html; charset=utf-8" } });
}
