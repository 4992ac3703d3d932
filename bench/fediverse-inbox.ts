/**
 * Inbound DMs handled end to end by the fediverse bot: a signed Create(Note)
 * POSTed to its inbox → signature checked → queued in PostgreSQL → the
 * worker runs the conversation engine → the reply is queued for delivery.
 * Per message: from the POST to "reply queued". Next to it, in the same
 * run and on the same PostgreSQL, a bare Fedify actor whose inbox listener
 * only queues an echo (same queues and key–value store, no engine).
 *
 * Senders are users of a local Fedify server; requests are signed before
 * the clock starts (each carries its own Date header, valid for an hour),
 * and one warm-up message per sender fills the key cache. Outbound delivery
 * is not running: the figure stops at "reply queued".
 */
import type { Server } from "node:http";
import { Create, Mention, Note } from "@fedify/vocab";
import { createFederation, generateCryptoKeyPair } from "@fedify/fedify";
import { integrateFederation } from "@fedify/express";
import express from "express";
import { createFediverseBot } from "../bots/fediverse/index.ts";
import { FediverseKvStore } from "../bots/fediverse/kv.ts";
import { PostgresQueue } from "../bots/fediverse/queue.ts";
import { createLogger } from "../src/logger.ts";
import { Store } from "../src/store/index.ts";
import { SecretBox } from "../src/store/secrets.ts";
import { createWebApp } from "../src/web/app.ts";
import { startFediServer, type FediUser } from "../test/harness/fediverse.ts";
import { botConfig, freePort } from "../test/harness/fediverse-bot.ts";
import { createNote } from "../test/harness/fediverse-shapes.ts";
import type { Benchmark } from "./context.ts";
import { freshDatabase, dropDatabase } from "./db.ts";
import { int, log, ms, printTable, summarize } from "./report.ts";

const SENDERS = 50;
const CONCURRENCY = 16;

interface Target {
  inbox: string;
  actorId: string;
  acct: string;
  /** Resolves when the reply to this note id is queued. */
  handled: Map<string, () => void>;
}

interface Result {
  label: string;
  messages: number;
  seconds: number;
  latencies: number[];
}

async function listen(app: express.Express, port: number): Promise<Server> {
  return new Promise((resolve) => {
    const s = app.listen(port, "127.0.0.1", () => resolve(s));
  });
}

async function drive(label: string, target: Target, users: FediUser[], count: number): Promise<Result> {
  // Warm-up: one message per sender (key fetch, acct lookup, caches).
  await run(target, users, users.length);
  const latencies: number[] = [];
  const start = performance.now();
  await run(target, users, count, latencies);
  return { label, messages: count, seconds: (performance.now() - start) / 1000, latencies };
}

async function run(target: Target, users: FediUser[], count: number, latencies?: number[]): Promise<void> {
  const ref = { actorId: target.actorId, acct: target.acct };
  // Signed before timing starts.
  const requests = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const user = users[i % users.length]!;
      const body = createNote("mastodon", user, ref, "help");
      return { user, body, noteId: (body.object as { id: string }).id };
    }),
  );
  const signed = await Promise.all(requests.map(async (r) => ({ ...r, request: await sign(r.user, target.inbox, r.body) })));
  let next = 0;
  const worker = async () => {
    while (next < signed.length) {
      const r = signed[next++]!;
      const done = new Promise<void>((resolve) => target.handled.set(r.noteId, resolve));
      const t0 = performance.now();
      const res = await fetch(r.request);
      if (res.status >= 300) throw new Error(`inbox answered ${res.status}: ${await res.text()}`);
      await done;
      latencies?.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

async function sign(user: FediUser, inbox: string, body: unknown): Promise<Request> {
  const { signRequest } = await import("@fedify/fedify");
  const request = new Request(inbox, {
    method: "POST",
    headers: { "Content-Type": "application/activity+json" },
    body: JSON.stringify(body),
  });
  return signRequest(request, user.keys.privateKey, new URL(user.keyId));
}

export const fediverseInbox: Benchmark = {
  name: "fediverse-inbox",
  description: "inbound fediverse DMs: signed request in → reply queued, per second and p99, vs a bare echo actor",
  defaultSize: "small",
  async run(context) {
    const count = Math.max(200, context.sample);
    const sql = await freshDatabase(context.server, "bench_fediverse_inbox");
    const echoSql = await freshDatabase(context.server, "bench_fediverse_echo");
    const servers: Server[] = [];
    const closers: (() => Promise<void>)[] = [];
    try {
      const fedi = await startFediServer({ users: Array.from({ length: SENDERS }, (_, i) => ({ name: `sender${i}` })) });
      closers.push(() => fedi.close());
      const users = [...fedi.users.values()];

      // The bot, as `npm start` wires it, inbox workers only.
      const port = await freePort();
      const config = botConfig(port);
      const store = new Store(sql, new SecretBox("bench-secret-key-of-at-least-32-characters!"));
      const botTarget: Target = { inbox: "", actorId: "", acct: `reconnexion@127.0.0.1:${port}`, handled: new Map() };
      const bot = createFediverseBot({
        config, store, sql, log: createLogger("silent"),
        engine: { limits: { messagesPerWindow: 1_000_000_000 } },
        onHandled: ({ noteId }) => {
          botTarget.handled.get(noteId)?.();
          botTarget.handled.delete(noteId);
        },
      });
      botTarget.actorId = bot.actorUri.href;
      botTarget.inbox = `${bot.actorUri.href}/inbox`;
      servers.push(await listen(createWebApp({ store, ready: () => true, routes: [bot.middleware] }), port));
      bot.start("inbox");
      closers.push(() => bot.close());

      // The bare Fedify actor: same queue and key–value store, echoes each note.
      const echoPort = await freePort();
      const echoOrigin = `http://127.0.0.1:${echoPort}`;
      const echoTarget: Target = { inbox: `${echoOrigin}/users/echo/inbox`, actorId: `${echoOrigin}/users/echo`, acct: `echo@127.0.0.1:${echoPort}`, handled: new Map() };
      const echoKeys = await generateCryptoKeyPair("RSASSA-PKCS1-v1_5");
      const controller = new AbortController();
      const echo = createFederation<void>({
        kv: new FediverseKvStore(echoSql),
        queue: { inbox: new PostgresQueue(echoSql, "inbox"), outbox: new PostgresQueue(echoSql, "outbox"), fanout: new PostgresQueue(echoSql, "fanout") },
        origin: echoOrigin,
        manuallyStartQueue: true,
        allowPrivateAddress: true,
      });
      const { Service } = await import("@fedify/vocab");
      echo
        .setActorDispatcher("/users/{identifier}", async (ctx, id) => {
          if (id !== "echo") return null;
          const [pair] = await ctx.getActorKeyPairs(id);
          return new Service({ id: ctx.getActorUri(id), preferredUsername: id, inbox: ctx.getInboxUri(id), publicKey: pair!.cryptographicKey });
        })
        .setKeyPairsDispatcher(() => [echoKeys]);
      echo.setInboxListeners("/users/{identifier}/inbox", "/inbox").on(Create, async (ctx, create) => {
        const note = await create.getObject(ctx);
        const author = await create.getActor(ctx);
        if (!(note instanceof Note) || !note.id || !author?.id) return;
        const reply = new Note({
          id: new URL(`/notes/${crypto.randomUUID()}`, echoOrigin), attribution: ctx.getActorUri("echo"), to: author.id,
          content: note.content, tags: [new Mention({ href: author.id })], replyTarget: note.id,
        });
        await ctx.sendActivity({ identifier: "echo" }, author, new Create({ id: new URL(`${reply.id!.href}/activity`), actor: ctx.getActorUri("echo"), to: author.id, object: reply }));
        echoTarget.handled.get(note.id.href)?.();
        echoTarget.handled.delete(note.id.href);
      });
      const echoApp = express();
      echoApp.use(integrateFederation(echo, () => undefined));
      servers.push(await listen(echoApp, echoPort));
      const echoRunning = echo.startQueue(undefined, { signal: controller.signal, queue: "inbox" });
      closers.push(async () => {
        controller.abort();
        await echoRunning;
      });

      log(`${count} DMs from ${SENDERS} senders, ${CONCURRENCY} in flight`);
      const results: Result[] = [];
      results.push(await drive("bare Fedify echo actor", echoTarget, users, count));
      log(`echo done`);
      results.push(await drive("reconnexion bot (engine, `help`)", botTarget, users, count));
      log(`bot done`);

      const rows = results.map((r) => {
        const s = summarize(r.latencies);
        return [r.label, int(r.messages), int(r.messages / r.seconds), ms(s.p50), ms(s.p99), ms(s.max)];
      });
      printTable(
        "Inbound fediverse DMs, signed request in → reply queued",
        ["actor", "messages", "msg/s", "p50 ms", "p99 ms", "max ms"],
        rows,
        [`target: ≥ 200 msg/s, p99 ≤ 50 ms (2 cores). ${CONCURRENCY} requests in flight; PostgreSQL queue and key–value store for both.`],
      );
    } finally {
      for (const s of servers) {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
      for (const close of closers.reverse()) await close().catch(() => {});
      await sql.end({ timeout: 5 });
      await echoSql.end({ timeout: 5 });
      if (!context.keep) {
        await dropDatabase(context.server, "bench_fediverse_inbox");
        await dropDatabase(context.server, "bench_fediverse_echo");
      }
    }
  },
};
