/**
 * `reconnexion chat --as <platform>:<id>`: a conversation with the engine in
 * a terminal, on the real store. Each input line is a private message from
 * that account (start it with `/public ` for a public mention); each reply is
 * printed labelled `[private]` or `[public]`, and `(no reply)` when the bot
 * stays silent. Works interactively and from a pipe; ends at end of input
 * (or `/quit`).
 */
import { createInterface } from "node:readline";
import type { Config } from "../config.ts";
import { isDid, normalizeBlueskyHandle, normalizeFediverseAcct } from "../store/handles.ts";
import type { Store } from "../store/index.ts";
import type { EngineContext } from "./context.ts";
import { ConversationEngine } from "./engine.ts";
import type { Incoming, Reply, Sender } from "./incoming.ts";

/** A `--as` value that names no usable account; the message says what to give instead. */
export class ChatUsageError extends Error {
  override name = "ChatUsageError";
}

const PLATFORM_WORDS: Record<string, Sender["platform"]> = {
  bluesky: "bluesky",
  bsky: "bluesky",
  fediverse: "fediverse",
  mastodon: "fediverse",
  fedi: "fediverse",
};

/**
 * The sender `--as` designates: `bluesky:<did or handle>` or
 * `fediverse:<user@host or actor URI>`. A handle must be known to the store
 * (its DID cannot be resolved offline); an acct the store does not know gets
 * the conventional actor URI `https://host/users/user`.
 */
export async function resolveChatSender(store: Store, as: string): Promise<Sender> {
  const colon = as.indexOf(":");
  const platform = colon > 0 ? PLATFORM_WORDS[as.slice(0, colon).toLowerCase()] : undefined;
  const value = colon > 0 ? as.slice(colon + 1).trim() : "";
  if (!platform || !value) {
    throw new ChatUsageError(
      `--as must be bluesky:<did or handle> or fediverse:<user@host or actor URI>, e.g. bluesky:alice.bsky.social (got "${as}").`,
    );
  }
  if (platform === "bluesky") {
    if (isDid(value)) {
      const known = await store.identities.find({ platform, stableId: value });
      return { platform, stableId: value, handle: known?.handle ?? null, isBot: false };
    }
    const handle = normalizeBlueskyHandle(value);
    if (!handle) throw new ChatUsageError(`"${value}" is neither a DID nor a Bluesky handle.`);
    const known = await store.identities.find({ platform, handle });
    if (!known?.stableId) {
      throw new ChatUsageError(
        `No Bluesky account @${handle} is known here, and its DID cannot be looked up offline: use --as bluesky:<did>.`,
      );
    }
    return { platform, stableId: known.stableId, handle, isBot: false };
  }
  if (/^https?:\/\//i.test(value)) {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new ChatUsageError(`"${value}" is not a valid actor URI.`);
    }
    const known = await store.identities.find({ platform, stableId: url.href });
    const name = /\/(?:users\/|@)([A-Za-z0-9_.-]+)\/?$/.exec(url.pathname)?.[1];
    return { platform, stableId: url.href, handle: known?.handle ?? (name ? `${name}@${url.host.toLowerCase()}` : null), isBot: false };
  }
  const acct = normalizeFediverseAcct(value);
  if (!acct) throw new ChatUsageError(`"${value}" is neither user@host nor an actor URI.`);
  const known = await store.identities.find({ platform, handle: acct });
  const [user, host] = acct.split("@") as [string, string];
  return { platform, stableId: known?.stableId ?? `https://${host}/users/${user}`, handle: acct, isBot: false };
}

/** One reply as the terminal shows it: labelled, continuation lines indented. */
export function formatReply(reply: Reply): string {
  const [first, ...rest] = reply.text.split("\n");
  return [`[${reply.visibility}] ${first}`, ...rest.map((line) => (line ? `  ${line}` : ""))].join("\n");
}

/** Runs the chat until the input ends. */
export async function runChat(options: {
  store: Store;
  config: Config;
  as: string;
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Overrides for tests (clock, limits). */
  engine?: Partial<EngineContext>;
}): Promise<void> {
  const { store, config, input, output } = options;
  const sender = await resolveChatSender(store, options.as);
  const engine = new ConversationEngine({ ...options.engine, store, config });
  const interactive = Boolean((input as { isTTY?: boolean }).isTTY);
  const write = (text: string) => output.write(text.endsWith("\n") ? text : `${text}\n`);
  const lines = createInterface({ input, crlfDelay: Infinity, terminal: false });
  if (interactive) {
    write(
      `Talking to reconnexion as ${sender.platform}:${sender.handle ?? sender.stableId}. ` +
        "Each line is a private message; start one with /public for a public mention. Ctrl-D ends.",
    );
    output.write("> ");
  }
  let n = 0;
  for await (const line of lines) {
    if (line.trim() === "/quit") break;
    const isPublic = /^\/public(\s|$)/.test(line);
    const text = isPublic ? line.replace(/^\/public\s?/, "") : line;
    if (!interactive) write(`> ${line}`);
    const incoming: Incoming = { channel: "terminal", sender, text, isPrivate: !isPublic, replyTo: ++n };
    const outcome = await engine.handle(incoming);
    if (outcome.replies.length === 0) write("(no reply)");
    for (const reply of outcome.replies) write(formatReply(reply));
    if (interactive) output.write("> ");
  }
  lines.close();
}
