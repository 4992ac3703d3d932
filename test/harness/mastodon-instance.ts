/**
 * A Mastodon-compatible test instance: a Fedify server on 127.0.0.1 (see
 * ./fediverse.ts) whose local users are real actors with keys, answering the
 * subset of Mastodon's client API the reconnection uses — apps, OAuth
 * (authorize form, token, revoke), verify_credentials, lookup, search with
 * resolve, relationships, follow — with Mastodon's JSON shapes, error texts
 * and per-token rate limit (`X-RateLimit-*`, 429).
 *
 * Following a remote account sends a real signed `Follow` to its server (a
 * FediServer user records it and, unless locked, Accepts); as in Mastodon,
 * the relationship says `requested` until the `Accept` arrives. Resolving a
 * remote acct or actor URI goes through WebFinger and the actor document on
 * its server, over http (everything is on loopback).
 *
 * Test levers: issueToken / revokeToken, failNext (the next N API requests
 * answer 429 or another status), rateLimit, maxFollowing, suspend, block,
 * follow, and the request log.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { startFediServer, type FediServer, type FediUser, type FediUserSpec } from "./fediverse.ts";

/** An account as the instance knows it: local (with a user and password) or remote. */
export interface InstanceAccount {
  id: string;
  username: string;
  /** null for local accounts. */
  domain: string | null;
  uri: string;
  url: string;
  inbox: string | null;
  displayName: string;
  locked: boolean;
  bot: boolean;
  suspended: boolean;
  user?: FediUser;
  password?: string;
}

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

export interface MastodonInstanceOptions {
  /** Local users; password defaults to `password`. */
  users?: (FediUserSpec & { password?: string })[];
  /** Behave like an instance older than Mastodon 2.4.3: apps with granular scopes are refused (422). */
  rejectGranularScopes?: boolean;
  /** Per token (default Mastodon's: 300 per 5 minutes). */
  rateLimit?: { limit: number; windowMs: number };
  /** FollowLimitValidator's threshold; counts follows and pending requests here, to stay deterministic. */
  maxFollowing?: number;
  /** The clock of rate-limit windows (tests may share a fake one with the client). */
  now?: () => number;
}

interface Token {
  app: InstanceApp;
  accountId: string | null;
  scopes: string[];
  revoked: boolean;
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
const NOT_FOUND = { error: "Record not found" };
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

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json; charset=utf-8", ...headers } });
const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** Mastodon writes the reset with microseconds: `2026-01-01T12:05:00.000000Z`. */
const iso6 = (ms: number) => new Date(ms).toISOString().replace(/Z$/, "000Z");
const token64 = () => randomBytes(32).toString("base64url");

export class MastodonInstance {
  server!: FediServer;
  readonly requests: LoggedRequest[] = [];
  readonly apps: InstanceApp[] = [];
  /** Follow activities that could not be delivered. */
  readonly deliveryErrors: unknown[] = [];
  rateLimit: { limit: number; windowMs: number };
  maxFollowing: number;
  rejectGranularScopes: boolean;
  readonly #now: () => number;
  readonly #accounts = new Map<string, InstanceAccount>();
  /** `follower:followed` account ids. */
  readonly #follows = new Set<string>();
  /** Pending requests: `follower:followed` → Follow activity id. */
  readonly #pending = new Map<string, string>();
  readonly #blocks = new Set<string>();
  readonly #tokens = new Map<string, Token>();
  readonly #codes = new Map<string, { app: InstanceApp; accountId: string; redirectUri: string; scopes: string[] }>();
  readonly #windows = new Map<string, { start: number; count: number }>();
  readonly #faults: { status: number; resetInMs: number | undefined }[] = [];
  #nextId = 109_000_000_000_000_001n;

  constructor(options: MastodonInstanceOptions) {
    this.rateLimit = options.rateLimit ?? { limit: 300, windowMs: 300_000 };
    this.maxFollowing = options.maxFollowing ?? 7_500;
    this.rejectGranularScopes = options.rejectGranularScopes ?? false;
    this.#now = options.now ?? Date.now;
  }

  get origin(): string {
    return this.server.origin;
  }

  /** The domain in accts (`user@domain`). */
  get domain(): string {
    return this.server.accountDomain;
  }

  /** Adds a local user (an actor on this server) with an account and password. */
  async addUser(spec: FediUserSpec & { password?: string }): Promise<InstanceAccount> {
    const user = await this.server.addUser(spec);
    return this.#save({
      username: spec.name,
      domain: null,
      uri: user.actorId,
      url: `${this.origin}/@${spec.name}`,
      inbox: null,
      displayName: spec.name,
      locked: spec.locked ?? false,
      bot: spec.type === "Service",
      suspended: false,
      user,
      password: spec.password ?? "password",
    });
  }

  /** A known account by acct (`user` or `user@domain`). */
  account(acct: string): InstanceAccount | undefined {
    const [username, domain] = acct.replace(/^@/, "").toLowerCase().split("@");
    const local = !domain || domain === this.domain.toLowerCase();
    return [...this.#accounts.values()].find(
      (a) => a.username.toLowerCase() === username && (local ? a.domain === null : a.domain === domain),
    );
  }

  /** A token for a local user, as if they had gone through OAuth. */
  issueToken(username: string, scopes = "read write follow"): string {
    const app = this.#register("test", null, ["urn:ietf:wg:oauth:2.0:oob"], scopes.split(" "));
    return this.#issue(app, this.#must(username).id, scopes.split(" "));
  }

  revokeToken(token: string): void {
    const t = this.#tokens.get(token);
    if (t) t.revoked = true;
  }

  /** The next `count` API requests answer `status` (429 by default, its reset `resetInMs` away). */
  failNext(count: number, options: { status?: number; resetInMs?: number } = {}): void {
    for (let i = 0; i < count; i++) this.#faults.push({ status: options.status ?? 429, resetInMs: options.resetInMs });
  }

  /** Suspends a known account (what a Delete, or a 410 from its server, also leads to). */
  suspend(acct: string): void {
    this.#must(acct).suspended = true;
  }

  /** `blocker` blocks `blocked` (accts as this instance writes them). */
  block(blocker: string, blocked: string): void {
    this.#blocks.add(this.#pair(blocker, blocked));
  }

  /** Makes `follower` follow `followed` already (before any test run). */
  follow(follower: string, followed: string): void {
    this.#follows.add(this.#pair(follower, followed));
  }

  isFollowing(follower: string, followed: string): boolean {
    return this.#follows.has(this.#pair(follower, followed));
  }

  isRequested(follower: string, followed: string): boolean {
    return this.#pending.has(this.#pair(follower, followed));
  }

  /** The follow POSTs logged for an account (by acct or id), from any token or from `token`. */
  followPosts(acctOrId: string, token?: string): LoggedRequest[] {
    const path = `/api/v1/accounts/${this.account(acctOrId)?.id ?? acctOrId}/follow`;
    return this.requests.filter((r) => r.method === "POST" && r.path === path && (token === undefined || r.token === token));
  }

  async close(): Promise<void> {
    await this.server.close();
  }

  #must(acct: string): InstanceAccount {
    const a = this.account(acct);
    if (!a) throw new Error(`unknown account ${acct}`);
    return a;
  }

  #pair(from: string, to: string): string {
    return `${this.#must(from).id}:${this.#must(to).id}`;
  }

  // --- HTTP: Mastodon's API and OAuth routes; everything else goes to Fedify.

  /** @internal */
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

  /** Rack::Attack's part: injected faults, then the per-token window, its headers on every answer. */
  async #limited(method: string, path: string, params: URLSearchParams, bearer: string | null): Promise<Response> {
    const fault = this.#faults.shift();
    if (fault) {
      if (fault.status !== 429) return json(fault.status === 401 ? INVALID_TOKEN : { error: "Injected failure" }, fault.status);
      return json({ error: "Too many requests" }, 429, this.#rateHeaders(0, this.#now() + (fault.resetInMs ?? this.rateLimit.windowMs)));
    }
    const token = bearer ? this.#tokens.get(bearer) : undefined;
    if (bearer && (!token || token.revoked)) return json(INVALID_TOKEN, 401);
    if (!bearer) return this.#api(method, path, params, undefined);
    const { limit, windowMs } = this.rateLimit;
    const start = Math.floor(this.#now() / windowMs) * windowMs;
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
    return { "X-RateLimit-Limit": String(this.rateLimit.limit), "X-RateLimit-Remaining": String(remaining), "X-RateLimit-Reset": iso6(reset) };
  }

  async #api(method: string, path: string, params: URLSearchParams, token: Token | undefined): Promise<Response> {
    const me = token?.accountId ? this.#accounts.get(token.accountId) : undefined;
    /** Doorkeeper's checks: one of the `accepted` scopes, and a user behind the token. */
    const guard = (accepted: string[], user = true): Response | null => {
      if (!token) return json(INVALID_TOKEN, 401);
      if (!accepted.some((s) => grants(token.scopes, s))) return json({ error: "This action is outside the authorized scopes" }, 403);
      if (user && !me) return json({ error: "This method requires an authenticated user" }, 422);
      return null;
    };
    const route = `${method} ${path}`;
    if (route === "POST /api/v1/apps") return this.#createApp(params);
    if (route === "GET /api/v2/instance") return json({ domain: this.domain, title: "Test instance", version: "4.3.0" });
    if (route === "GET /api/v1/instance") return json({ uri: this.domain, title: "Test instance", version: "4.3.0" });
    if (route === "GET /api/v1/accounts/verify_credentials") {
      const source = { privacy: "public", sensitive: false, language: null, note: "", fields: [], follow_requests_count: 0 };
      return guard(["read:accounts", "profile"]) ?? json({ ...this.#accountJson(me!), source });
    }
    if (route === "GET /api/v1/accounts/lookup") {
      const denied = token ? guard(["read:accounts"], false) : null;
      const found = this.account(params.get("acct") ?? "");
      return denied ?? (found ? json(this.#accountJson(found)) : json(NOT_FOUND, 404));
    }
    if (route === "GET /api/v2/search") {
      const denied = token ? guard(["read:search"], false) : null;
      if (denied) return denied;
      // Only a user token may make the instance resolve (fetch) unknown accounts.
      const found = await this.#search(params.get("q") ?? "", params.get("resolve") === "true" && !!me);
      const limit = Math.min(40, Number(params.get("limit") ?? 20) || 20);
      return json({ accounts: found.slice(0, limit).map((a) => this.#accountJson(a)), statuses: [], hashtags: [] });
    }
    if (route === "GET /api/v1/accounts/relationships") {
      const denied = guard(["read:follows"]);
      if (denied) return denied;
      const ids = [...params.getAll("id[]"), ...params.getAll("id")];
      // Suspended accounts are left out unless asked for (4.3+).
      const withSuspended = params.get("with_suspended") === "true";
      const accounts = ids.map((id) => this.#accounts.get(id)).filter((a) => a && (withSuspended || !a.suspended));
      return json(accounts.map((a) => this.#relationship(me!, a!)));
    }
    const follow = /^POST \/api\/v1\/accounts\/([^/]+)\/follow$/.exec(route);
    if (follow) return guard(["write:follows"]) ?? (await this.#follow(me!, follow[1]!));
    const show = /^GET \/api\/v1\/accounts\/(\d+)$/.exec(route);
    if (show) {
      const a = this.#accounts.get(show[1]!);
      return a ? json(this.#accountJson(a)) : json(NOT_FOUND, 404);
    }
    return json({ error: "Not found" }, 404);
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
    const known = this.rejectGranularScopes ? LEGACY : [...LEGACY, ...GRANULAR];
    if (scopes.some((s) => !known.includes(s))) return invalid("Scopes doesn't match configured on the server.");
    const app = this.#register(name, params.get("website"), redirects, scopes);
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

  #register(name: string, website: string | null, redirectUris: string[], scopes: string[]): InstanceApp {
    const app = { clientId: token64(), clientSecret: token64(), name, website, redirectUris, scopes };
    this.apps.push(app);
    return app;
  }

  #issue(app: InstanceApp, accountId: string | null, scopes: string[]): string {
    const token = token64();
    this.#tokens.set(token, { app, accountId, scopes, revoked: false });
    return token;
  }

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
      return json({ access_token: this.#issue(app, null, scopes), token_type: "Bearer", scope: scopes.join(" "), created_at });
    }
    const code = this.#codes.get(p.get("code") ?? "");
    if (p.get("grant_type") !== "authorization_code" || code?.app !== app || code.redirectUri !== p.get("redirect_uri")) {
      return json(INVALID_GRANT, 400);
    }
    this.#codes.delete(p.get("code")!);
    const accessToken = this.#issue(app, code.accountId, code.scopes);
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
    if (method === "GET") return page(200, this.#form(app, p));
    if (p.get("decision") === "deny") {
      return back({ error: "access_denied", error_description: "The resource owner or authorization server denied the request." });
    }
    const user = this.account(p.get("username") ?? "");
    if (!user || user.domain !== null || user.password !== p.get("password")) {
      return page(401, `<p class="error">Invalid username or password.</p>${this.#form(app, p)}`);
    }
    const code = token64();
    this.#codes.set(code, { app, accountId: user.id, redirectUri: redirect, scopes });
    return back({ code });
  }

  #form(app: InstanceApp, p: URLSearchParams): string {
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

  // --- accounts and follows

  async #search(q: string, resolve: boolean): Promise<InstanceAccount[]> {
    const query = q.trim().replace(/^@/, "");
    const visible = (a: InstanceAccount | undefined) => (a && !a.suspended ? [a] : []);
    if (/^https?:\/\//.test(query)) {
      const known = [...this.#accounts.values()].find((a) => a.uri === query || a.url === query);
      return visible(known ?? (resolve ? await this.#resolve(query) : undefined));
    }
    if (/^[^@\s]+@[^@\s]+$/.test(query)) return visible(this.account(query) ?? (resolve ? await this.#resolve(query) : undefined));
    const needle = query.toLowerCase();
    const matches = (a: InstanceAccount) => a.username.toLowerCase().includes(needle) || a.displayName.toLowerCase().includes(needle);
    return [...this.#accounts.values()].filter((a) => !a.suspended && matches(a));
  }

  /** Fetches a remote account the way Mastodon does: WebFinger for an acct, then the actor document. */
  async #resolve(query: string): Promise<InstanceAccount | undefined> {
    try {
      let actorUrl = query;
      let acctDomain: string | undefined;
      if (!/^https?:\/\//.test(query)) {
        const [user, domain] = query.split("@") as [string, string];
        if (domain.toLowerCase() === this.domain.toLowerCase()) return this.account(user);
        const finger = await fetch(`http://${domain}/.well-known/webfinger?resource=acct:${user}@${domain}`);
        const jrd = (await finger.json()) as { links?: { rel: string; type?: string; href?: string }[] };
        actorUrl = jrd.links?.find((l) => l.rel === "self" && l.type?.includes("json"))?.href ?? "";
        acctDomain = domain.toLowerCase();
        if (!actorUrl) return undefined;
      }
      const res = await fetch(actorUrl, { headers: { Accept: "application/activity+json" } });
      const known = [...this.#accounts.values()].find((a) => a.uri === actorUrl);
      if (res.status === 410 && known) known.suspended = true; // a gone actor is a deleted account
      if (!res.ok) return undefined;
      const actor = (await res.json()) as Record<string, unknown>;
      const id = String(actor.id);
      if (!acctDomain) {
        // The acct the actor holds, as its server's WebFinger says (the account domain may not be the web host).
        const finger = await fetch(`${new URL(id).origin}/.well-known/webfinger?resource=${encodeURIComponent(id)}`);
        const jrd = (finger.ok ? await finger.json() : {}) as { subject?: string };
        acctDomain = jrd.subject?.match(/@([^@]+)$/)?.[1]?.toLowerCase() ?? new URL(id).host;
      }
      const fields = {
        username: String(actor.preferredUsername),
        domain: acctDomain,
        uri: id,
        url: typeof actor.url === "string" ? actor.url : id,
        inbox: String(actor.inbox),
        displayName: String(actor.name ?? ""),
        locked: actor.manuallyApprovesFollowers === true,
        bot: actor.type === "Service" || actor.type === "Application",
      };
      return known ? Object.assign(known, fields) : this.#save({ ...fields, suspended: false });
    } catch {
      return undefined; // Mastodon answers no result when resolving fails
    }
  }

  #save(fields: Omit<InstanceAccount, "id">): InstanceAccount {
    const account = { id: String(this.#nextId++), ...fields };
    this.#accounts.set(account.id, account);
    return account;
  }

  /** FollowService: suspended/self → 404, blocks → 403, limit → 422; remote or locked → a request. */
  async #follow(me: InstanceAccount, id: string): Promise<Response> {
    const target = this.#accounts.get(id);
    if (!target || target.suspended || target.id === me.id) return json(NOT_FOUND, 404);
    const key = `${me.id}:${target.id}`;
    if (this.#blocks.has(key) || this.#blocks.has(`${target.id}:${me.id}`)) return json({ error: "This action is not allowed" }, 403);
    if (this.#follows.has(key) || this.#pending.has(key)) return json(this.#relationship(me, target));
    const count = [...this.#follows, ...this.#pending.keys()].filter((k) => k.startsWith(`${me.id}:`)).length;
    if (count >= this.maxFollowing) return json({ error: `Validation failed: You cannot follow more than ${this.maxFollowing} people` }, 422);
    if (target.domain === null && !target.locked) {
      this.#follows.add(key);
      return json(this.#relationship(me, target));
    }
    const activityId = `${this.origin}/${randomUUID()}`;
    this.#pending.set(key, activityId);
    if (target.domain !== null && target.inbox) {
      const body = { "@context": "https://www.w3.org/ns/activitystreams", id: activityId, type: "Follow", actor: me.uri, object: target.uri };
      // Mastodon delivers from a queue; delivering before answering keeps tests deterministic.
      const res = await me.user!.post(target.inbox, body).catch((error: unknown) => error);
      if (!(res instanceof Response)) this.deliveryErrors.push(res);
      else if (!res.ok) this.deliveryErrors.push(new Error(`Follow → ${res.status}`));
    }
    return json(this.#relationship(me, target));
  }

  /** @internal An Accept reached a local user: the pending request becomes a follow. */
  accepted(accept: Record<string, unknown>): void {
    const object = accept.object;
    const followId = typeof object === "string" ? object : (object as { id?: string } | undefined)?.id;
    for (const [key, id] of this.#pending) {
      if (id !== followId) continue;
      this.#pending.delete(key);
      this.#follows.add(key);
    }
  }

  #relationship(me: InstanceAccount, other: InstanceAccount) {
    const [out, back] = [`${me.id}:${other.id}`, `${other.id}:${me.id}`];
    const following = this.#follows.has(out);
    return {
      id: other.id,
      following,
      showing_reblogs: following,
      notifying: false,
      languages: null,
      followed_by: this.#follows.has(back),
      blocking: this.#blocks.has(out),
      blocked_by: this.#blocks.has(back),
      muting: false,
      muting_notifications: false,
      requested: this.#pending.has(out),
      requested_by: this.#pending.has(back),
      domain_blocking: false,
      endorsed: false,
      note: "",
    };
  }

  #accountJson(a: InstanceAccount) {
    const follows = [...this.#follows];
    const avatar = `${this.origin}/avatars/original/missing.png`;
    const header = `${this.origin}/headers/original/missing.png`;
    const base = {
      id: a.id,
      username: a.username,
      acct: a.domain ? `${a.username}@${a.domain}` : a.username,
      display_name: a.displayName,
      locked: a.locked,
      bot: a.bot,
      discoverable: true,
      indexable: false,
      group: false,
      created_at: "2024-01-01T00:00:00.000Z",
      note: "",
      url: a.url,
      uri: a.uri,
      avatar,
      avatar_static: avatar,
      header,
      header_static: header,
      followers_count: follows.filter((k) => k.endsWith(`:${a.id}`)).length,
      following_count: follows.filter((k) => k.startsWith(`${a.id}:`)).length,
      statuses_count: 0,
      last_status_at: null,
      emojis: [],
      roles: [],
      fields: [],
    };
    // A suspended account keeps its names, loses its profile, and says so.
    return a.suspended ? { ...base, display_name: "", locked: false, followers_count: 0, following_count: 0, suspended: true } : base;
  }
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

function page(status: number, body: string): Response {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test instance</title></head><body>${body}</body></html>`;
  return new Response(html, { status, headers: { "Content-Type": "text/html; charset=utf-8" } });
}

/** Starts an instance on 127.0.0.1 (a free port) with these local users; `close()` stops it. */
export async function startMastodonInstance(options: MastodonInstanceOptions = {}): Promise<MastodonInstance> {
  const instance = new MastodonInstance(options);
  instance.server = await startFediServer({ users: [], routes: (request) => instance.route(request) });
  instance.server.onAccept = (_user, accept) => instance.accepted(accept);
  for (const spec of options.users ?? []) await instance.addUser(spec);
  return instance;
}
