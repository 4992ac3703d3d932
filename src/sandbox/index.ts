/**
 * `reconnexion sandbox`: the whole service against a fediverse and a Bluesky
 * that run on this machine, and a prompt to write to the bots as one of the
 * sandbox's people. Each line goes out the way a real client sends it — a
 * signed direct message to the bot's inbox, a Bluesky chat message through
 * the PDS's proxy, or (`/public`) a public mention — and the bots' answers
 * are printed as they reach the account. Usable from a pipe: each line waits
 * for its answers before the next one is sent.
 */
import { createInterface } from "node:readline";
import { RichText } from "@atproto/api";
import { botNamesFrom } from "../conversation/context.ts";
import { formatReply, ReplyCollector } from "./replies.ts";
import { isRegistered, sandboxFollows, startSandboxWorld, type SandboxAccount, type SandboxWorld } from "./world.ts";

export interface SandboxOptions {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** A PostgreSQL server to create the sandbox's databases on; unset, the embedded one in `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  env: Record<string, string | undefined>;
  /** How long a line waits for its first answer (default 20 s) and then for quiet (default 1.5 s). */
  answerTimeoutMs?: number;
  quietMs?: number;
}

const HELP = [
  "Lines you type are direct messages to the bot from the current account.",
  "  /as <account>    write from another account (see the list above)",
  "  /public <text>   mention the bot in a public post instead",
  "  /who             the accounts again",
  "  /quit            stop (end of input does too)",
].join("\n");

export async function runSandbox(options: SandboxOptions): Promise<void> {
  const print = (line: string) => options.output.write(`${line}\n`);
  // The local networks' libraries warn about their own internals; not the sandbox user's concern.
  process.noDeprecation = true;
  const world = await startSandboxWorld({
    databaseUrl: options.databaseUrl,
    dataDir: options.dataDir,
    env: options.env,
    progress: (line) => print(`· ${line}`),
  });
  try {
    print(describe(world));
    print(HELP);
    await converse(world, options, print);
  } finally {
    print("· stopping the sandbox");
    await world.close();
  }
}

async function converse(world: SandboxWorld, options: SandboxOptions, print: (line: string) => void): Promise<void> {
  const replies = new ReplyCollector(world, botNamesFrom(world.config));
  const answerTimeoutMs = options.answerTimeoutMs ?? 20_000;
  const quietMs = options.quietMs ?? 1_500;
  let speaker = world.accounts.get("alice")!;
  const interactive = (options.input as { isTTY?: boolean }).isTTY === true;
  const rl = createInterface({ input: options.input, output: options.output, terminal: interactive });
  // Ctrl-C, a kill or a closed output end the conversation; the finally clause then takes the sandbox down.
  const end = () => rl.close();
  rl.on("SIGINT", end);
  process.once("SIGINT", end);
  process.once("SIGTERM", end);
  options.output.on("error", end);
  const prompt = () => {
    rl.setPrompt(`${speaker.label}> `);
    if (interactive) rl.prompt();
  };
  // At a terminal, what arrives between lines (a reconnection's summary) shows up as it comes.
  let busy = false;
  const between = interactive
    ? setInterval(() => {
        if (busy) return;
        busy = true;
        replies
          .collect()
          .then((found) => {
            if (found.length === 0) return;
            options.output.write("\r\x1b[K");
            for (const a of found) print(formatReply(a));
            rl.prompt(true);
          })
          .catch(() => {})
          .finally(() => (busy = false));
      }, 1_000)
    : undefined;
  prompt();
  for await (const raw of rl) {
    const line = raw.trim();
    if (!interactive) print(`${speaker.label}> ${line}`);
    if (line === "/quit") break;
    if (line === "") {
      prompt();
      continue;
    }
    if (line === "/who") print(describe(world));
    else if (line === "/help") print(HELP);
    else if (line.startsWith("/as")) {
      const label = line.slice(3).trim().replace(/^@/, "").toLowerCase();
      const next = world.accounts.get(label);
      if (next) speaker = next;
      else print(`  no account "${label}"; the accounts: ${[...world.accounts.keys()].join(", ")}`);
    } else if (line === "/public") {
      print("  /public <text>: the text of the public mention is missing");
    } else if (line.startsWith("/") && !line.startsWith("/public ")) {
      print(`  unknown "${line.split(/\s/)[0]}"; /help lists what the sandbox understands`);
    } else {
      const isPublic = line.startsWith("/public ");
      while (busy) await new Promise((resolve) => setTimeout(resolve, 50));
      busy = true;
      try {
        await send(world, speaker, isPublic ? line.slice("/public ".length) : line, isPublic);
        const answers = await waitForAnswers(replies, answerTimeoutMs, quietMs);
        if (answers.length === 0) print("  (no answer)");
        for (const a of answers) print(formatReply(a));
      } catch (error) {
        // One line that could not go out does not end the sandbox.
        print(`  (not sent: ${error instanceof Error ? error.message : String(error)})`);
      } finally {
        busy = false;
      }
    }
    prompt();
  }
  clearInterval(between);
  rl.close();
  process.off("SIGINT", end);
  process.off("SIGTERM", end);
  // Whatever came after the last line (a reconnection's summary, say).
  for (const a of await replies.collect()) print(formatReply(a));
}

/** Sends `text` to the bot from `account`, as its platform's clients do. */
async function send(world: SandboxWorld, account: SandboxAccount, text: string, isPublic: boolean): Promise<void> {
  if (account.platform === "fediverse") {
    const { createNote } = await import("../../test/harness/fediverse-shapes.ts");
    const actorId = world.service.actorUri.href;
    const bot = { actorId, acct: `${world.config.fediverseBotUsername}@${world.config.publicUrl.host}` };
    const response = await account.user.post(`${actorId}/inbox`, createNote("mastodon", account.user, bot, text, { audience: isPublic ? "public" : "direct" }));
    if (!response.ok) throw new Error(`the bot's inbox answered ${response.status}`);
    return;
  }
  const bot = world.blueskyBot;
  if (isPublic) {
    const rt = new RichText({ text: `@${bot.handle} ${text}` });
    await rt.detectFacets(account.user.agent);
    await account.user.agent.com.atproto.repo.createRecord({
      repo: account.user.did,
      collection: "app.bsky.feed.post",
      record: { $type: "app.bsky.feed.post", text: rt.text, ...(rt.facets ? { facets: rt.facets } : {}), createdAt: new Date().toISOString() },
    });
    return;
  }
  const { CHAT_DID } = await import("../../test/harness/chat-service.ts");
  const chat = account.user.agent.withProxy("bsky_chat", CHAT_DID);
  const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [bot.did] })).data.convo;
  await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text } });
}

/** The answers to one line: waits for the first, then until none came for `quietMs`. */
async function waitForAnswers(replies: ReplyCollector, timeoutMs: number, quietMs: number) {
  const answers: Awaited<ReturnType<ReplyCollector["collect"]>> = [];
  const started = Date.now();
  let last = started;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const found = await replies.collect();
    const now = Date.now();
    if (found.length > 0) {
      answers.push(...found);
      last = now;
    }
    if (answers.length === 0 ? now - started > timeoutMs : now - last > quietMs) return answers;
  }
}

/** Who is in the sandbox: the bots, the accounts, who followed whom on X. */
function describe(world: SandboxWorld): string {
  const { config } = world;
  const lines = [
    "",
    "The sandbox is up. Everything runs on this machine.",
    `  service          ${config.publicUrl.href}`,
    `  fediverse bot    @${config.fediverseBotUsername}@${config.publicUrl.host}`,
    `  Bluesky bot      @${world.blueskyBot.handle} (local PDS ${world.bluesky.pdsUrl})`,
    "",
    `  Mastodon         ${world.mastodon.origin} (the fediverse accounts' instance)`,
    "",
    "Accounts (X follows are in the store; the passwords log in on the local instance and PDS, e.g. to authorize a reconnection):",
  ];
  for (const a of world.accounts.values()) {
    const where = a.platform === "fediverse" ? `fediverse  @${a.user.acct}  password ${a.password}` : `Bluesky    @${a.user.handle}  password ${a.user.password}`;
    const known = isRegistered(a.person) ? `X @${a.person}_x` : "not registered";
    lines.push(`  ${a.label.padEnd(14)} ${where}  (${known})`);
  }
  lines.push("", "On X:");
  for (const [from, tos] of sandboxFollows()) lines.push(`  ${from} followed ${tos.join(", ")}`);
  lines.push("");
  return lines.join("\n");
}
