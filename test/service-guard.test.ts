/**
 * The service as it runs in production — `reconnexion start` without
 * ALLOW_PRIVATE_ADDRESSES, so every outbound connection is checked for a
 * public address — still runs a Bluesky bot whose PDS is on a private
 * address, even when the PDS's DID document names it differently from
 * BLUESKY_SERVICE (the bot then talks to the DID document's endpoint).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CLI, ROOT } from "./harness/cli.ts";
import { startBlueskyNetwork, type BlueskyNetwork, type TestUser } from "./harness/bluesky.ts";
import { createTestDatabase, TEST_SECRET_KEY, type TestDatabase } from "./harness/database.ts";
import { freePort } from "./harness/fediverse-bot.ts";
import { until as untilDone } from "./harness/wait.ts";

let net: BlueskyNetwork;
let db: TestDatabase;
let child: ChildProcess | undefined;
let output = "";

/** Waits as `until` does; a wait that fails shows what the service logged. */
async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs?: number, stepMs?: number): Promise<T> {
  return untilDone(what, fn, timeoutMs, stepMs).catch((error: Error) => {
    throw new Error(`${error.message}; the service logged:\n${output}`);
  });
}

beforeAll(async () => {
  [net, db] = await Promise.all([startBlueskyNetwork({ didDocWithSession: true }), createTestDatabase()]);
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise<void>((resolve) => child!.once("exit", () => resolve()));
    child.kill("SIGTERM");
    await exited;
  }
  await Promise.all([net?.close(), db?.drop()]);
});

it("answers on Bluesky with the outbound guard on, the PDS on a private address named two ways", async () => {
  const bot: TestUser = await net.createUser("guardedbot");
  const person = await net.createUser("guardeduser");
  await net.processAll();
  // The DID documents name the PDS http://localhost:…; the operator configures it as 127.0.0.1.
  expect(new URL(net.pdsUrl).hostname).toBe("localhost");
  const service = net.pdsUrl.replace("//localhost:", "//127.0.0.1:");
  const port = await freePort();
  child = spawn(process.execPath, [CLI, "start"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      DATABASE_URL: db.url,
      SECRET_KEY: TEST_SECRET_KEY,
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      BLUESKY_SERVICE: service,
      BLUESKY_HANDLE: bot.handle,
      BLUESKY_APP_PASSWORD: bot.password,
      BLUESKY_PLC_URL: net.network.plc.url,
      BLUESKY_APPVIEW_URL: net.network.bsky.url,
      DEFAULT_LANGUAGE: "en",
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (c: Buffer) => (output += c.toString("utf8")));
  child.stderr!.on("data", (c: Buffer) => (output += c.toString("utf8")));
  await until("the Bluesky bot to log in", () => output.includes("Bluesky bot logged in") || child!.exitCode !== null, 60_000);
  expect(child.exitCode).toBeNull();
  // Its first writes on the PDS: it opens its messages to everyone.
  await until(
    "the bot to open its messages",
    () =>
      bot.agent.com.atproto.repo
        .getRecord({ repo: bot.did, collection: "chat.bsky.actor.declaration", rkey: "self" })
        .then((r) => (r.data.value as { allowIncoming?: string }).allowIncoming === "all", () => false),
    60_000,
    200,
  );

  const chat = person.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
  const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [bot.did] })).data.convo;
  await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text: "help" } });
  const answers = await until(
    "the bot's answer",
    () => {
      const fromBot = net.chat.messagesBetween(bot.did, person.did).filter((m) => m.sender.did === bot.did);
      return fromBot.length ? fromBot : undefined;
    },
    60_000,
    200,
  );
  expect(answers.map((m) => m.text).join("\n")).toMatch(/help|Hi/i);
  expect(output).not.toContain("egress proxy");
  expect(output).not.toContain("ENONPUBLIC");
}, 180_000);
