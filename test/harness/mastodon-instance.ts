/**
 * A Mastodon-compatible test instance: a Fedify server on 127.0.0.1 (see
 * ./fediverse.ts) whose local users are real actors with keys, answering the
 * subset of Mastodon's client API the reconnection uses — instance,
 * verify_credentials, lookup, search with resolve, relationships, follow —
 * with Mastodon's JSON shapes and error texts. Requests reach these
 * endpoints through ./mastodon-access.ts: the request log, apps and OAuth
 * (authorize form, token, revoke), scopes, and the per-token rate limit
 * (`X-RateLimit-*`, 429).
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
import { randomUUID } from "node:crypto";
import { startFediServer, type FediServer, type FediUser, type FediUserSpec } from "./fediverse.ts";
import { doorkeeper, InstanceAccess, json, type AccessToken, type InstanceApp, type LoggedRequest } from "./mastodon-access.ts";

export type { InstanceApp, LoggedRequest } from "./mastodon-access.ts";

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

const NOT_FOUND = { error: "Record not found" };

export class MastodonInstance {
  server!: FediServer;
  readonly requests: LoggedRequest[];
  readonly apps: InstanceApp[];
  /** Follow activities that could not be delivered. */
  readonly deliveryErrors: unknown[] = [];
  rateLimit: { limit: number; windowMs: number };
  maxFollowing: number;
  rejectGranularScopes: boolean;
  readonly #access: InstanceAccess;
  readonly #accounts = new Map<string, InstanceAccount>();
  /** `follower:followed` account ids. */
  readonly #follows = new Set<string>();
  /** Pending requests: `follower:followed` → Follow activity id. */
  readonly #pending = new Map<string, string>();
  readonly #blocks = new Set<string>();
  #nextId = 109_000_000_000_000_001n;

  constructor(options: MastodonInstanceOptions) {
    this.rateLimit = options.rateLimit ?? { limit: 300, windowMs: 300_000 };
    this.maxFollowing = options.maxFollowing ?? 7_500;
    this.rejectGranularScopes = options.rejectGranularScopes ?? false;
    this.#access = new InstanceAccess({
      rateLimit: () => this.rateLimit,
      rejectGranularScopes: () => this.rejectGranularScopes,
      now: options.now ?? Date.now,
      login: (username, password) => {
        const user = this.account(username);
        return user && user.domain === null && user.password === password ? user.id : undefined;
      },
      api: (method, path, params, token) => this.#api(method, path, params, token),
    });
    this.requests = this.#access.requests;
    this.apps = this.#access.apps;
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
    const app = this.#access.register("test", null, ["urn:ietf:wg:oauth:2.0:oob"], scopes.split(" "));
    return this.#access.issue(app, this.#must(username).id, scopes.split(" "));
  }

  revokeToken(token: string): void {
    this.#access.revoke(token);
  }

  /** The next `count` API requests answer `status` (429 by default, its reset `resetInMs` away). */
  failNext(count: number, options: { status?: number; resetInMs?: number } = {}): void {
    this.#access.failNext(count, options);
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

  // --- HTTP: Mastodon's API and OAuth routes go through access (./mastodon-access.ts); everything else to Fedify.

  /** @internal */
  async route(request: Request): Promise<Response | null> {
    return this.#access.route(request);
  }

  /** The endpoints, for a request access let through. */
  async #api(method: string, path: string, params: URLSearchParams, token: AccessToken | undefined): Promise<Response> {
    const me = token?.accountId ? this.#accounts.get(token.accountId) : undefined;
    const guard = (accepted: string[], user = true) => doorkeeper(token, !!me, accepted, user);
    const route = `${method} ${path}`;
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

/** Starts an instance on 127.0.0.1 (a free port) with these local users; `close()` stops it. */
export async function startMastodonInstance(options: MastodonInstanceOptions = {}): Promise<MastodonInstance> {
  const instance = new MastodonInstance(options);
  instance.server = await startFediServer({ users: [], routes: (request) => instance.route(request) });
  instance.server.onAccept = (_user, accept) => instance.accepted(accept);
  for (const spec of options.users ?? []) await instance.addUser(spec);
  return instance;
}
