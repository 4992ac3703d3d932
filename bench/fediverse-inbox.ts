/**
 * Inbound DMs handled end to end by the fediverse bot: a signed Create(Note)
 * POSTed to its inbox → signature checked → queued in PostgreSQL → the
 * worker runs the conversation engine → the reply is queued for delivery.
 * Per message: from the POST to "reply queued". Next to it, in the same
 * run and on the same PostgreSQL, a bare Fedify actor whose inbox listener
 * only queues an echo (same queues and key–value store, no engine).
 *
 * Senders are users of a local Fedify server run by a child process (this
 * module, started with `--sender`), which also signs the requests (before
 * the clock starts; each carries its own Date header, valid for an hour),
 * sends them and times them: the load generator does not share the bot's
 * process, so the figure measures the bot (both still share the machine's
 * cores). One warm-up message per sender fills the caches. Outbound delivery
 * is not running: the figure stops at "reply queued", which the bot's process
 * reports to the child over IPC as it happens.
 */
import { fork, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import type { Server } from "node:http";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { Create, Mention, Note } from "@fedify/vocab";
import { createFederation, generateCryptoKeyPair, signRequest } from "@fedify/fedify";
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
/** Messages per second for the steady-rate runs: well below capacity, and the target. */
const STEADY_RATES = [40, 200];

interface Target {
  inbox: string;
  actorId: string;
  acct: string;
}

interface Result {
  label: string;
  messages: number;
  seconds: number;
  latencies: number[];
  /** CPU time of the bot's process (main thread and helpers) per message, ms. */
  cpuMs: number;
  /**
   * CPU time per message of the whole machine but the load generator (the
   * bot or echo, PostgreSQL, the rest of the system), both cores; null off
   * Linux. In production the senders' signing is their servers' work.
   */
  serverCpuMs: number | null;
  /** Reply notes queued per message (each one signed by Fedify). */
  notesPerMessage: number;
  /** SQL statements sent to PostgreSQL per message (queues, key–value store, store). */
  statementsPerMessage: number;
}

/** Parent → sender child. */
type ToSender =
  | { type: "run"; target: Target; count: number; text: string; rate?: number }
  | { type: "handled"; noteId: string }
  | { type: "stop" };
/** Sender child → parent. */
type FromSender =
  | { type: "ready"; users: { actorId: string; acct: string }[] }
  | { type: "sending"; noteIds: string[] }
  | { type: "done"; seconds: number; latencies: number[]; cpuMs: number }
  | { type: "error"; message: string };

async function listen(app: express.Express, port: number): Promise<Server> {
  return new Promise((resolve) => {
    const s = app.listen(port, "127.0.0.1", () => resolve(s));
  });
}

/** The load generator, in its own process. */
class Sender {
  private readonly child: ChildProcess;
  private waiting: ((m: FromSender) => void) | undefined;
  /** The sending users, as the bot will see them. */
  users: { actorId: string; acct: string }[] = [];
  /** Note ids of the run under way, per target (the parent forwards their "handled"). */
  readonly pending = new Set<string>();

  private constructor(child: ChildProcess) {
    this.child = child;
    child.on("message", (m: FromSender) => {
      if (m.type === "sending") for (const id of m.noteIds) this.pending.add(id);
      else this.waiting?.(m);
    });
  }

  static async start(): Promise<Sender> {
    const child = fork(fileURLToPath(import.meta.url), ["--sender"], { stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
    const sender = new Sender(child);
    const ready = await sender.next();
    if (ready.type !== "ready") throw new Error(`sender: ${ready.type === "error" ? ready.message : ready.type}`);
    sender.users = ready.users;
    return sender;
  }

  private next(): Promise<FromSender> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`sender exited (${code})`));
      this.child.once("exit", onExit);
      this.waiting = (m) => {
        this.child.off("exit", onExit);
        this.waiting = undefined;
        resolve(m);
      };
    });
  }

  handled(noteId: string): void {
    if (this.pending.delete(noteId)) this.child.send({ type: "handled", noteId } satisfies ToSender);
  }

  /** `rate`: messages per second sent on a clock (open loop); else CONCURRENCY in flight, each sent as one is handled. */
  async run(target: Target, count: number, text: string, rate?: number): Promise<{ seconds: number; latencies: number[]; cpuMs: number }> {
    const done = this.next();
    this.child.send({ type: "run", target, count, text, ...(rate ? { rate } : {}) } satisfies ToSender);
    const m = await done;
    if (m.type !== "done") throw new Error(`sender: ${m.type === "error" ? m.message : m.type}`);
    return m;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    if (this.child.exitCode === null) this.child.send({ type: "stop" } satisfies ToSender);
    await exited;
  }
}

async function drive(label: string, target: Target, sender: Sender, text: string, count: number, notes: NoteCounter, rate?: number): Promise<Result> {
  // Warm-up: one message per sender (key fetch, acct lookup, caches).
  await sender.run(target, SENDERS, text);
  notes.sent = 0;
  notes.statements = 0;
  const cpu = process.cpuUsage();
  const machine = await machineBusyMs();
  const { seconds, latencies, cpuMs: senderMs } = await sender.run(target, count, text, rate);
  const used = process.cpuUsage(cpu);
  const machineAfter = await machineBusyMs();
  return {
    label, messages: count, seconds, latencies, notesPerMessage: notes.sent / count, statementsPerMessage: notes.statements / count,
    cpuMs: (used.user + used.system) / 1000 / count,
    serverCpuMs: machine === null || machineAfter === null ? null : (machineAfter - machine - senderMs) / count,
  };
}

/** Busy CPU time of all cores since boot (ms), from /proc/stat; null where there is none. */
async function machineBusyMs(): Promise<number | null> {
  const stat = await readFile("/proc/stat", "utf8").catch(() => null);
  const fields = stat?.split("\n")[0]?.trim().split(/\s+/).slice(1).map(Number);
  if (!fields || fields.length < 5) return null;
  // user nice system idle iowait irq softirq steal guest guest_nice: time
  // this machine spent working (guest time is counted in user already).
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = fields;
  const busy = user + nice + system + irq + softirq;
  return (busy * 1000) / 100; // USER_HZ is 100 on Linux

}

/** Reply notes queued since the last reset. */
interface NoteCounter {
  sent: number;
  /** SQL statements sent. */
  statements: number;
}

/** The child: a fediverse server whose users sign and send the DMs, and time them. */
async function senderMain(): Promise<void> {
  const send = (m: FromSender) => process.send!(m);
  const fedi = await startFediServer({ users: Array.from({ length: SENDERS }, (_, i) => ({ name: `sender${i}` })) });
  const users = [...fedi.users.values()];
  const handled = new Map<string, () => void>();
  process.on("message", async (m: ToSender) => {
    if (m.type === "handled") {
      handled.get(m.noteId)?.();
      handled.delete(m.noteId);
    } else if (m.type === "stop") {
      await fedi.close();
      process.exit(0);
    } else {
      try {
        const cpu = process.cpuUsage();
        const result = await run(m.target, m.count, m.text, m.rate);
        const used = process.cpuUsage(cpu);
        send({ type: "done", ...result, cpuMs: (used.user + used.system) / 1000 });
      } catch (error) {
        send({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      }
    }
  });
  send({ type: "ready", users: users.map((u) => ({ actorId: u.actorId, acct: u.acct })) });

  async function run(target: Target, count: number, text: string, rate?: number): Promise<{ seconds: number; latencies: number[] }> {
    const ref = { actorId: target.actorId, acct: target.acct };
    // Signed before timing starts.
    const signed = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const user = users[i % users.length]!;
        const body = createNote("mastodon", user, ref, text);
        return { noteId: (body.object as { id: string }).id, request: await sign(user, target.inbox, body) };
      }),
    );
    send({ type: "sending", noteIds: signed.map((r) => r.noteId) });
    const latencies: number[] = [];
    const deliver = async (r: (typeof signed)[number]) => {
      const done = new Promise<void>((resolve) => handled.set(r.noteId, resolve));
      const t0 = performance.now();
      const res = await fetch(r.request);
      if (res.status >= 300) throw new Error(`inbox answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
      await done;
      latencies.push(performance.now() - t0);
    };
    const start = performance.now();
    if (rate) {
      // Open loop: each message leaves at its time, whether or not the earlier ones are done.
      const all: Promise<void>[] = [];
      for (let i = 0; i < signed.length; i++) {
        const wait = start + (i * 1000) / rate - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        all.push(deliver(signed[i]!));
      }
      await Promise.all(all);
    } else {
      let next = 0;
      const worker = async () => {
        while (next < signed.length) await deliver(signed[next++]!);
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    }
    return { seconds: (performance.now() - start) / 1000, latencies };
  }
}

async function sign(user: FediUser, inbox: string, body: unknown): Promise<Request> {
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
    const botNotes: NoteCounter = { sent: 0, statements: 0 };
    const echoNotes: NoteCounter = { sent: 0, statements: 0 };
    const sql = await freshDatabase(context.server, "bench_fediverse_inbox", { onQuery: () => botNotes.statements++ });
    const echoSql = await freshDatabase(context.server, "bench_fediverse_echo", { onQuery: () => echoNotes.statements++ });
    const servers: Server[] = [];
    const closers: (() => Promise<void>)[] = [];
    try {
      const sender = await Sender.start();
      closers.push(() => sender.stop());

      // The bot, as `npm start` wires it, inbox workers only.
      const port = await freePort();
      const config = botConfig(port);
      const store = new Store(sql, new SecretBox("bench-secret-key-of-at-least-32-characters!"));
      const botTarget: Target = { inbox: "", actorId: "", acct: `reconnexion@127.0.0.1:${port}` };
      const bot = createFediverseBot({
        config, store, sql, log: createLogger("silent"),
        engine: { limits: { messagesPerWindow: 1_000_000_000 } },
        onHandled: ({ noteId, replies }) => {
          botNotes.sent += replies;
          sender.handled(noteId);
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
      const echoTarget: Target = { inbox: `${echoOrigin}/users/echo/inbox`, actorId: `${echoOrigin}/users/echo`, acct: `echo@127.0.0.1:${echoPort}` };
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
        echoNotes.sent++;
        sender.handled(note.id.href);
      });
      const echoApp = express();
      echoApp.use(integrateFederation(echo, () => undefined));
      servers.push(await listen(echoApp, echoPort));
      const echoRunning = echo.startQueue(undefined, { signal: controller.signal, queue: "inbox" });
      closers.push(async () => {
        controller.abort();
        await echoRunning;
      });

      log(`${count} DMs from ${SENDERS} senders, ${CONCURRENCY} in flight; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
      const results: Result[] = [];
      results.push(await drive("bare Fedify echo actor", echoTarget, sender, "help", count, echoNotes));
      log(`echo done`);
      // Strangers asking `help`: the welcome and every command, several notes.
      results.push(await drive("reconnexion bot: stranger, `help`", botTarget, sender, "help", count, botNotes));
      log(`bot (help) done`);
      // Registered people asking `status`: one note.
      for (const user of sender.users) {
        const person = await store.people.create();
        await store.identities.attach(person.id, { platform: "fediverse", stableId: user.actorId, handle: user.acct, verifiedBy: "platform" });
      }
      results.push(await drive("reconnexion bot: registered, `status`", botTarget, sender, "status", count, botNotes));
      log(`bot (status) done`);
      // The same at steady rates (open loop): latency without a queue of 16 ahead.
      for (const rate of STEADY_RATES) {
        results.push(await drive(`reconnexion bot: registered, \`status\`, ${rate}/s`, botTarget, sender, "status", count, botNotes, rate));
        log(`bot (status, ${rate}/s) done`);
      }

      const rows = results.map((r) => {
        const s = summarize(r.latencies);
        return [
          r.label, int(r.messages), r.notesPerMessage.toFixed(1), int(r.messages / r.seconds), int((r.messages * r.notesPerMessage) / r.seconds),
          ms(s.p50), ms(s.p99), ms(s.max), r.cpuMs.toFixed(1), r.serverCpuMs === null ? "-" : r.serverCpuMs.toFixed(1), r.statementsPerMessage.toFixed(1),
        ];
      });
      printTable(
        "Inbound fediverse DMs, signed request in → reply queued",
        ["actor", "messages", "notes/msg", "msg/s", "notes/s", "p50 ms", "p99 ms", "max ms", "CPU ms/msg", "server CPU ms/msg", "SQL/msg"],
        rows,
        [
          `target: ≥ 200 msg/s, p99 ≤ 50 ms (2 cores). ${CONCURRENCY} requests in flight (the last rows: ${STEADY_RATES.join(" and ")} sent a second, on a clock); PostgreSQL queue and key–value store for both.`,
          "Senders sign and send from a child process; CPU ms/msg is the measured process's (bot or echo, PostgreSQL not included);",
          "server CPU ms/msg is every process's on both cores (/proc/stat) but the senders': the bot's or echo's, PostgreSQL's, the system's —",
          "what 2 cores have to share, 2,000 ms a second. SQL/msg: statements sent to PostgreSQL per message (idle queue polls included).",
          `Load average after the run: ${loadavg().map((l) => l.toFixed(2)).join(" ")}.`,
        ],
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

if (import.meta.main && process.argv.includes("--sender")) {
  senderMain().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
