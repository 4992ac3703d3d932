/**
 * A local fediverse for tests: a Fedify server on 127.0.0.1 with users who
 * send real signed activities (raw JSON bodies, shaped like the servers they
 * imitate) and collect what arrives in their inboxes. Its account domain
 * can differ from its web host (Mastodon's LOCAL_DOMAIN / WEB_DOMAIN): with
 * `splitDomain`, accts are `user@localhost:<port>` while actors live on
 * `http://127.0.0.1:<port>`.
 *
 * Users also take follows: each `Follow` that arrives is recorded on its
 * user and, unless the user is locked (manuallyApprovesFollowers), answered
 * with a signed `Accept`, as real servers do. A user marked `gone` is served
 * as a Tombstone (410), like a deleted account. A user's inbox can be made to
 * fail its next deliveries (`failNextDeliveries`), like a server that is down
 * for a while; every POST to it is timed in `deliveryAttempts`.
 *
 * With `signedFetch`, the server behaves as GoToSocial always does (and
 * Mastodon or Akkoma in authorized-fetch mode): a GET of an actor must carry
 * a valid HTTP signature (checked against the signer's key, fetched from its
 * server), else it is refused with 401; only the key document
 * (`/users/<name>/main-key`, the key id its users sign with) is served
 * unsigned, as a minimal actor. Refused GETs are kept in `refusedFetches`.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { webcrypto } from "node:crypto";
import { randomUUID } from "node:crypto";
import { createFederation, generateCryptoKeyPair, MemoryKvStore, signRequest, verifyRequest, type Federation } from "@fedify/fedify";
import { Accept, Application, Create, CryptographicKey, Delete, Endpoints, Follow, Note, Person, Service, Tombstone } from "@fedify/vocab";
import { LITEPUB_CONTEXT } from "./fediverse-shapes.ts";

export interface ReceivedNote {
  id: string;
  activityId: string | null;
  attributedTo: string | null;
  to: string[];
  cc: string[];
  content: string;
  mentions: { href: string; name: string | null }[];
  inReplyTo: string | null;
  raw: Record<string, unknown>;
}

/** A `Follow` activity as a user received it. */
export interface ReceivedFollow {
  id: string;
  actor: string;
  object: string;
  raw: Record<string, unknown>;
}

export interface FediUserSpec {
  name: string;
  /** Service or Application: an automated account (the bot must never answer it). */
  type?: "Person" | "Service" | "Application";
  /** Accounts this one claims to be (alsoKnownAs), for Move. */
  alsoKnownAs?: string[];
  /** Approves followers by hand (manuallyApprovesFollowers): follows are not accepted automatically. */
  locked?: boolean;
}

export class FediUser {
  readonly name: string;
  readonly server: FediServer;
  readonly type: "Person" | "Service" | "Application";
  alsoKnownAs: string[];
  locked: boolean;
  /** Deleted: the actor answers 410 with a Tombstone. */
  gone = false;
  readonly notes: ReceivedNote[] = [];
  readonly accepts: Record<string, unknown>[] = [];
  /** Follow activities received, in order (signatures verified by Fedify). */
  readonly follows: ReceivedFollow[] = [];
  /** Every POST to this user's own inbox: when, and the status it got (failed ones included). */
  readonly deliveryAttempts: { at: number; status: number }[] = [];
  /** Deliveries to this user's own inbox still to refuse, and with which status. */
  private failing = { count: 0, status: 500 };
  keys!: webcrypto.CryptoKeyPair;
  private waiters: (() => void)[] = [];

  constructor(server: FediServer, spec: FediUserSpec) {
    this.server = server;
    this.name = spec.name;
    this.type = spec.type ?? "Person";
    this.alsoKnownAs = spec.alsoKnownAs ?? [];
    this.locked = spec.locked ?? false;
  }

  get actorId(): string {
    return `${this.server.origin}/users/${this.name}`;
  }
  get keyId(): string {
    // GoToSocial's key ids are a path of their own, served unsigned.
    return this.server.signedFetch ? `${this.actorId}/main-key` : `${this.actorId}#main-key`;
  }
  get followers(): string {
    return `${this.actorId}/followers`;
  }
  get acct(): string {
    return `${this.name}@${this.server.accountDomain}`;
  }

  /** Refuses the next `count` POSTs to this user's own inbox with `status` (a server down for a while). */
  failNextDeliveries(count: number, status = 500): void {
    this.failing = { count, status };
  }

  /** @internal The status to answer a POST to this user's inbox with instead of handling it, if any. */
  takeFailure(): number | undefined {
    if (this.failing.count <= 0) return undefined;
    this.failing.count--;
    return this.failing.status;
  }

  /** @internal */
  deliver(kind: "note" | "accept", value: ReceivedNote | Record<string, unknown>): void {
    if (kind === "note") this.notes.push(value as ReceivedNote);
    else this.accepts.push(value as Record<string, unknown>);
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `count` notes have arrived (or throws after `timeoutMs`). */
  async waitForNotes(count: number, timeoutMs = 10_000): Promise<ReceivedNote[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.notes.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: ${this.notes.length} of ${count} notes after ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.notes.slice(0, count);
  }

  async waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`${this.name}: condition not met after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * POSTs a JSON body to an inbox, signed with this user's key (or
   * `signWith`'s, still naming this user's key id: a forgery), under
   * `keyId` if given (another key's id, with that key's signature).
   */
  async post(inbox: string, body: unknown, options: { signWith?: FediUser; unsigned?: boolean; tamper?: boolean; keyId?: string } = {}): Promise<Response> {
    const payload = JSON.stringify(body);
    let request = new Request(inbox, {
      method: "POST",
      headers: { "Content-Type": "application/activity+json", Accept: "application/activity+json" },
      body: payload,
    });
    if (!options.unsigned) {
      const signer = options.signWith ?? this;
      // A key from `signWith` but claimed as ours: a forged signature.
      request = await signRequest(request, signer.keys.privateKey, new URL(options.keyId ?? this.keyId));
    }
    if (options.tamper) {
      const headers = new Headers(request.headers);
      request = new Request(request.url, { method: "POST", headers, body: payload.replace("help", "stop") });
    }
    return fetch(request);
  }

  /** Accepts a received follow: a signed `Accept` posted to the follower's inbox. */
  async acceptFollow(follow: ReceivedFollow, followerInbox: string): Promise<Response> {
    return this.post(followerInbox, {
      "@context": "https://www.w3.org/ns/activitystreams",
      id: `${this.actorId}#accepts/follows/${randomUUID()}`,
      type: "Accept",
      actor: this.actorId,
      object: follow.raw,
    });
  }

  /** A new note id on this server. */
  noteId(): string {
    return `${this.server.origin}/users/${this.name}/statuses/${randomUUID()}`;
  }
}

export class FediServer {
  httpServer!: Server;
  origin = "";
  accountDomain = "";
  /** Actors served only to signed GETs (see the module's comment). */
  signedFetch = false;
  /** GETs refused for want of a valid signature (signedFetch), by path. */
  readonly refusedFetches: string[] = [];
  federation!: Federation<void>;
  readonly users = new Map<string, FediUser>();
  /** Public notes that reached the shared inbox (a bot's posts to its followers). */
  readonly publicNotes: ReceivedNote[] = [];
  /** Object ids of the Deletes received (signatures verified by Fedify), in order. */
  readonly deleted: string[] = [];
  /** Every JSON body POSTed to this server, as it came over the wire (before Fedify checks it). */
  readonly posted: { path: string; signed: boolean; body: Record<string, unknown> }[] = [];
  /** Every GET (and HEAD) this server answered, with the requester's User-Agent. */
  readonly fetched: { path: string; userAgent: string | null }[] = [];

  /** The body of the activity `id` as it was POSTed here (undefined if it never came). */
  postedActivity(id: string): Record<string, unknown> | undefined {
    return this.posted.find((p) => p.body.id === id)?.body;
  }
  /** Called after an `Accept` reached one of the users (e.g. a test Mastodon instance flipping a follow request). */
  onAccept?: (user: FediUser, accept: Record<string, unknown>) => void | Promise<void>;
  /** Errors met while auto-accepting follows (kept for assertions rather than thrown into Fedify). */
  readonly acceptErrors: unknown[] = [];

  user(name: string): FediUser {
    const u = this.users.get(name);
    if (!u) throw new Error(`no user ${name}`);
    return u;
  }

  addUser(spec: FediUserSpec): Promise<FediUser> {
    const user = new FediUser(this, spec);
    this.users.set(spec.name, user);
    return generateCryptoKeyPair("RSASSA-PKCS1-v1_5").then((keys) => {
      user.keys = keys;
      return user;
    });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.httpServer.close(() => resolve());
      this.httpServer.closeAllConnections();
    });
  }
}

const PUBLIC = "https://www.w3.org/ns/activitystreams#Public";

async function noteOf(create: Create): Promise<ReceivedNote | null> {
  const object = await create.getObject();
  if (!(object instanceof Note) || !object.id) return null;
  const raw = (await object.toJsonLd({ format: "compact" })) as Record<string, unknown>;
  const mentions: ReceivedNote["mentions"] = [];
  for await (const tag of object.getTags()) {
    const t = tag as { href?: URL | null; name?: unknown };
    if (t.href) mentions.push({ href: t.href.href, name: t.name != null ? String(t.name) : null });
  }
  return {
    id: object.id.href,
    activityId: create.id?.href ?? null,
    attributedTo: object.attributionId?.href ?? null,
    to: [...create.toIds, ...object.toIds].map((u) => u.href),
    cc: [...create.ccIds, ...object.ccIds].map((u) => u.href),
    content: String(object.content ?? ""),
    mentions,
    inReplyTo: object.replyTargetId?.href ?? null,
    raw,
  };
}

/** A user's public key as served at its own id (signedFetch). */
function keyOf(user: FediUser): CryptographicKey {
  return new CryptographicKey({ id: new URL(user.keyId), owner: new URL(user.actorId), publicKey: user.keys.publicKey });
}

/**
 * For a signedFetch server: the key document, served to anyone, as a minimal
 * actor (GoToSocial's); a 401 for a GET of an actor without a valid
 * signature; null for anything else (served as usual).
 */
async function signedFetchOnly(server: FediServer, request: Request): Promise<Response | null> {
  if (request.method !== "GET" && request.method !== "HEAD") return null;
  const path = new URL(request.url).pathname;
  const keyDoc = /^\/users\/([^/]+)\/main-key$/.exec(path);
  if (keyDoc) {
    const user = server.users.get(decodeURIComponent(keyDoc[1]!));
    if (!user) return new Response("not found", { status: 404 });
    const actor = new Person({ id: new URL(user.actorId), preferredUsername: user.name, publicKey: keyOf(user) });
    return new Response(JSON.stringify(await actor.toJsonLd({ format: "compact" })), { headers: { "Content-Type": "application/activity+json" } });
  }
  if (!/^\/users\/[^/]+$/.test(path)) return null;
  const ctx = server.federation.createContext(new URL(server.origin), undefined);
  const spec = request.headers.has("signature-input") ? "rfc9421" : "draft-cavage-http-signatures-12";
  const key = await verifyRequest(request.clone(), { documentLoader: ctx.documentLoader, contextLoader: ctx.contextLoader, spec }).catch(() => null);
  if (key) return null;
  server.refusedFetches.push(path);
  return new Response("Unauthorized", { status: 401 });
}

/** Starts a server with these users on 127.0.0.1 (a free port). */
export async function startFediServer(options: {
  users: FediUserSpec[];
  splitDomain?: boolean;
  /** Answers requests outside Fedify's routes (e.g. a Mastodon client API); null passes them on. */
  routes?: (request: Request) => Promise<Response | null>;
  /** Serves actors to signed GETs only, keys unsigned (GoToSocial; Mastodon's authorized fetch). */
  signedFetch?: boolean;
}): Promise<FediServer> {
  const server = new FediServer();
  server.signedFetch = options.signedFetch ?? false;
  let federation: Federation<void> | undefined;
  server.httpServer = createServer(async (req, res) => {
    if (req.url === "/schemas/litepub-0.1.jsonld") {
      res.writeHead(200, { "Content-Type": "application/ld+json" });
      res.end(JSON.stringify(LITEPUB_CONTEXT));
      return;
    }
    if (req.method === "GET" || req.method === "HEAD") server.fetched.push({ path: req.url ?? "", userAgent: req.headers["user-agent"] ?? null });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? Buffer.concat(chunks) : undefined;
    if (req.method === "POST" && body) {
      try {
        const json = JSON.parse(body.toString("utf8")) as unknown;
        if (json && typeof json === "object") server.posted.push({ path: req.url ?? "", signed: "signature" in req.headers || "signature-input" in req.headers, body: json as Record<string, unknown> });
      } catch {
        // Not JSON: Fedify answers it.
      }
    }
    const inboxOf = req.method === "POST" ? /^\/users\/([^/?#]+)\/inbox$/.exec(req.url ?? "") : null;
    const recipient = inboxOf ? server.users.get(decodeURIComponent(inboxOf[1]!)) : undefined;
    const failure = recipient?.takeFailure();
    if (recipient && failure !== undefined) {
      recipient.deliveryAttempts.push({ at: Date.now(), status: failure });
      res.writeHead(failure, { "Content-Type": "text/plain" });
      res.end("down for a while");
      return;
    }
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
    const request = new Request(`http://${req.headers.host}${req.url}`, { method: req.method!, headers, ...(body ? { body } : {}) });
    const response =
      (server.signedFetch ? await signedFetchOnly(server, request) : null) ??
      (await options.routes?.(request)) ??
      (await federation!.fetch(request, { contextData: undefined }));
    recipient?.deliveryAttempts.push({ at: Date.now(), status: response.status });
    res.writeHead(response.status, Object.fromEntries(response.headers));
    res.end(Buffer.from(await response.arrayBuffer()));
  });
  await new Promise<void>((resolve) => server.httpServer.listen(0, "127.0.0.1", resolve));
  const port = (server.httpServer.address() as AddressInfo).port;
  server.origin = `http://127.0.0.1:${port}`;
  server.accountDomain = options.splitDomain ? `localhost:${port}` : `127.0.0.1:${port}`;

  federation = createFederation<void>({
    kv: new MemoryKvStore(),
    allowPrivateAddress: true,
    ...(options.splitDomain ? { origin: { handleHost: server.accountDomain, webOrigin: server.origin } } : {}),
  });
  server.federation = federation;
  federation
    .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
      const user = server.users.get(identifier);
      if (!user) return null;
      if (user.gone) return new Tombstone({ id: ctx.getActorUri(identifier) });
      const [pair] = await ctx.getActorKeyPairs(identifier);
      const Type = user.type === "Service" ? Service : user.type === "Application" ? Application : Person;
      return new Type({
        id: ctx.getActorUri(identifier),
        preferredUsername: identifier,
        name: identifier,
        url: new URL(`/@${identifier}`, server.origin),
        inbox: ctx.getInboxUri(identifier),
        endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
        followers: new URL(user.followers),
        publicKey: server.signedFetch ? keyOf(user) : (pair?.cryptographicKey ?? null),
        aliases: user.alsoKnownAs.map((a) => new URL(a)),
        manuallyApprovesFollowers: user.locked,
      });
    })
    .setKeyPairsDispatcher((_ctx, identifier) => {
      const user = server.users.get(identifier);
      return user ? [user.keys] : [];
    });
  federation
    .setInboxListeners("/users/{identifier}/inbox", "/inbox")
    .on(Create, async (ctx, create) => {
      const note = await noteOf(create);
      if (!note) return;
      // The shared inbox: to the users addressed (to or cc), and public notes kept for the server.
      if (ctx.recipient == null && [...note.to, ...note.cc].includes(PUBLIC)) server.publicNotes.push(note);
      for (const user of server.users.values()) {
        if (ctx.recipient === user.name || (ctx.recipient == null && [...note.to, ...note.cc].includes(user.actorId))) user.deliver("note", note);
      }
    })
    .on(Delete, (_ctx, del) => {
      if (del.objectId) server.deleted.push(del.objectId.href);
    })
    .on(Accept, async (ctx, accept) => {
      const user = ctx.recipient ? server.users.get(ctx.recipient) : undefined;
      if (!user) return;
      const raw = (await accept.toJsonLd()) as Record<string, unknown>;
      user.deliver("accept", raw);
      await server.onAccept?.(user, raw);
    })
    .on(Follow, async (ctx, follow) => {
      const target = follow.objectId?.href;
      const user = [...server.users.values()].find((u) => u.actorId === target);
      if (!user || !follow.id || !follow.actorId || (ctx.recipient && ctx.recipient !== user.name)) return;
      const received: ReceivedFollow = {
        id: follow.id.href,
        actor: follow.actorId.href,
        object: user.actorId,
        raw: (await follow.toJsonLd({ format: "compact" })) as Record<string, unknown>,
      };
      user.follows.push(received);
      if (user.locked) return;
      // Accepted after the inbox has answered, as real servers do.
      const follower = await follow.getActor(ctx);
      const inbox = follower?.inboxId?.href;
      if (!inbox) return;
      setTimeout(() => {
        user.acceptFollow(received, inbox).then(
          (res) => { if (!res.ok) server.acceptErrors.push(new Error(`Accept → ${res.status}`)); },
          (error: unknown) => server.acceptErrors.push(error),
        );
      }, 0);
    });
  await Promise.all(options.users.map((u) => server.addUser(u)));
  return server;
}
