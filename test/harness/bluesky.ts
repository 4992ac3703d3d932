/**
 * A real local Bluesky for tests: @atproto/dev-env (PLC, PDS, AppView…) on
 * the run's PostgreSQL (a database of its own per test file), every server
 * bound to 127.0.0.1, plus the chat stand-in (./chat-service.ts) that the
 * PDS reaches for `did:web:api.bsky.chat#bsky_chat` through its own identity
 * resolver, as in production. Start it once per test file.
 */
import { createHmac, randomBytes } from "node:crypto";
import { AtpAgent, type Agent } from "@atproto/api";
import { TestNetwork } from "@atproto/dev-env";
import { inject } from "vitest";
import { connect } from "../../src/store/database.ts";
import { CHAT_DID, didDocument, startChatService, type ChatService } from "./chat-service.ts";
import { forceLoopbackListen } from "./loopback.ts";
import { keepSqliteObjectsAlive } from "./sqlite-gc.ts";

export interface TestUser {
  did: string;
  handle: string;
  password: string;
  agent: AtpAgent;
}

export interface BlueskyNetwork {
  network: TestNetwork;
  pdsUrl: string;
  chat: ChatService;
  createUser(name: string, options?: { bot?: boolean; allowIncoming?: "all" | "following" | "none" }): Promise<TestUser>;
  /** Gives `user` a handle on a domain of their own (resolved by the test's resolvers, like DNS). */
  setCustomHandle(user: TestUser, handle: string): Promise<void>;
  /** Waits until the AppView has indexed everything written so far. */
  processAll(): Promise<void>;
  close(): Promise<void>;
}

interface Resolver {
  did: { resolveNoCache(did: string): Promise<unknown> };
  handle: { resolve(handle: string): Promise<string | undefined> };
}

export interface BlueskyNetworkOptions {
  /** The PostgreSQL server to create the network's database on; default: the test run's (vitest `inject`). Benchmarks pass their own. */
  adminDatabaseUrl?: string;
  /** The network's database (created, dropped on close); default `bsky_<random>`. */
  databaseName?: string;
  /** The PDS hands out each account's DID document with its sessions, as Bluesky's entryway does: clients then talk to the endpoint it names. */
  didDocWithSession?: boolean;
}

export async function startBlueskyNetwork(options: BlueskyNetworkOptions = {}): Promise<BlueskyNetwork> {
  forceLoopbackListen();
  keepSqliteObjectsAlive();
  const adminUrl = options.adminDatabaseUrl ?? inject("adminDatabaseUrl");
  const dbName = options.databaseName ?? `bsky_${randomBytes(5).toString("hex")}`;
  const admin = connect(adminUrl, { max: 1 });
  await admin.unsafe(`create database ${dbName}`);
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  const db = connect(url.toString(), { max: 1 });
  await db.unsafe("create extension if not exists pg_trgm");
  await db.end({ timeout: 5 });

  process.env.REDIS_HOST ??= "127.0.0.1:1";
  const network = await TestNetwork.create({
    dbPostgresUrl: url.toString(),
    dbPostgresSchema: "reconnexion",
    // The chat stand-in is plain http on loopback; production proxies only to https.
    pds: { disableSsrfProtection: true, ...(options.didDocWithSession ? { enableDidDocWithSession: true } : {}) },
  });
  const chat = await startChatService({ plcUrl: network.plc.url, appviewUrl: network.bsky.url, pdsUrl: network.pds.url });

  const customHandles = new Map<string, string>();
  const resolvers: Resolver[] = [
    network.pds.ctx.idResolver as unknown as Resolver,
    network.bsky.ctx.idResolver as unknown as Resolver,
    network.bsky.dataplane.idResolver as unknown as Resolver,
  ];
  for (const resolver of resolvers) {
    const resolveDid = resolver.did.resolveNoCache.bind(resolver.did);
    resolver.did.resolveNoCache = async (did: string) => (did === CHAT_DID ? didDocument(CHAT_DID, chat.url) : resolveDid(did));
    const resolveHandle = resolver.handle.resolve.bind(resolver.handle);
    resolver.handle.resolve = async (handle: string) => customHandles.get(handle.toLowerCase()) ?? resolveHandle(handle);
  }

  const processAll = () => network.processAll();

  return {
    network,
    pdsUrl: network.pds.url,
    chat,
    processAll,
    async createUser(name, options = {}) {
      const agent = new AtpAgent({ service: network.pds.url });
      const handle = `${name}.test`;
      const password = `${name}-password`;
      await agent.createAccount({ handle, email: `${name}@example.com`, password });
      const did = agent.session!.did;
      await agent.com.atproto.repo.putRecord({
        repo: did,
        collection: "app.bsky.actor.profile",
        rkey: "self",
        record: {
          $type: "app.bsky.actor.profile",
          displayName: name,
          ...(options.bot ? { labels: { $type: "com.atproto.label.defs#selfLabels", values: [{ val: "bot" }] } } : {}),
        },
      });
      if (options.allowIncoming) {
        await agent.com.atproto.repo.putRecord({
          repo: did,
          collection: "chat.bsky.actor.declaration",
          rkey: "self",
          record: { $type: "chat.bsky.actor.declaration", allowIncoming: options.allowIncoming },
        });
      }
      return { did, handle, password, agent };
    },
    async setCustomHandle(user, handle) {
      customHandles.set(handle.toLowerCase(), user.did);
      await user.agent.com.atproto.identity.updateHandle({ handle });
      user.handle = handle;
    },
    async close() {
      await chat.close();
      await network.close();
      await admin.unsafe(`drop database if exists ${dbName} with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}

/** The subjects of the follow records in `user`'s own repo (the PDS: authoritative, immediate). */
export async function followSubjects(user: TestUser): Promise<string[]> {
  const subjects: string[] = [];
  let cursor: string | undefined;
  do {
    const res = await user.agent.com.atproto.repo.listRecords({ repo: user.did, collection: "app.bsky.graph.follow", limit: 100, cursor });
    subjects.push(...res.data.records.map((r) => (r.value as { subject: string }).subject));
    cursor = res.data.cursor;
  } while (cursor);
  return subjects;
}

/** Whom `actor` follows, as the AppView shows it (after `processAll`). */
export async function appViewFollows(net: BlueskyNetwork, actor: string): Promise<string[]> {
  const appview = new AtpAgent({ service: net.network.bsky.url });
  return (await appview.app.bsky.graph.getFollows({ actor })).data.follows.map((f) => f.did);
}

/** Creates one follow record in `did`'s repo through `agent` (a session of theirs: OAuth, app password). */
export function createFollow(agent: Agent, did: string, subject: string) {
  return agent.com.atproto.repo.applyWrites({
    repo: did,
    writes: [
      {
        $type: "com.atproto.repo.applyWrites#create",
        collection: "app.bsky.graph.follow",
        value: { $type: "app.bsky.graph.follow", subject, createdAt: new Date().toISOString() },
      },
    ],
  });
}

/**
 * An access token as the local PDS signs them for password and app-password
 * sessions, expired a minute ago: what a long-lived agent holds once its
 * token has run out (the PDS answers it `ExpiredToken`).
 */
export function expiredAccessToken(net: BlueskyNetwork, did: string): string {
  const now = Math.floor(Date.now() / 1000);
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${part({ typ: "at+jwt", alg: "HS256" })}.${part({
    scope: "com.atproto.appPass",
    aud: net.network.pds.ctx.cfg.service.did,
    sub: did,
    iat: now - 7200,
    exp: now - 60,
  })}`;
  return `${body}.${createHmac("sha256", net.network.pds.jwtSecretKey()).update(body).digest("base64url")}`;
}
