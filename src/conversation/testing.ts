/**
 * Test fixtures for the conversation: a small registered world on a real
 * store, senders on each platform, and a `send` that runs one message through
 * the engine. Used by the tests beside this file; not part of the service.
 */
import { loadConfig, type Config } from "../config.ts";
import type { Platform, Store, Verification } from "../store/index.ts";
import type { TestDatabase } from "../../test/harness/database.ts";
import type { ReconnectService } from "../reconnect/service.ts";
import type { Limits } from "./context.ts";
import { ConversationEngine } from "./engine.ts";
import type { Incoming, Outcome, Sender } from "./incoming.ts";

export const TEST_BOT = { username: "reconnexion", domain: "bot.example", blueskyHandle: "reconnexion.bot.example" };

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    PUBLIC_URL: "https://bot.example",
    BLUESKY_HANDLE: TEST_BOT.blueskyHandle,
    DEFAULT_LANGUAGE: "en",
    ...env,
  });
}

export function blueskySender(name: string, extra: Partial<Sender> = {}): Sender {
  return { platform: "bluesky", stableId: `did:plc:${name}`, handle: `${name}.test`, isBot: false, ...extra };
}

export function fediverseSender(name: string, host = `${name}.example`, extra: Partial<Sender> = {}): Sender {
  return { platform: "fediverse", stableId: `https://${host}/users/${name}`, handle: `${name}@${host}`, isBot: false, ...extra };
}

/** Mastodon's HTML for a message that mentions the bot first. */
export function mastodonHtml(text: string): string {
  return `<p><span class="h-card" translate="no"><a href="https://bot.example/@reconnexion" class="u-url mention">@<span>reconnexion</span></a></span> ${text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")}</p>`;
}

export interface World {
  store: Store;
  engine: ConversationEngine;
  config: Config;
  /** Sends `text` (private unless told) from `sender`. */
  send(sender: Sender, text: string, options?: { isPrivate?: boolean; html?: boolean }): Promise<Outcome>;
  /** Creates a person with these identities (verified by the platform unless told). */
  person(identities: { platform: Platform; stableId?: string; handle?: string; verifiedBy?: Verification }[], settings?: { language?: string }): Promise<number>;
  follow(follower: string, followed: string): Promise<void>;
}

let counter = 0;
/** Unique names per call, so tests in one file never share senders. */
export function unique(prefix: string): string {
  counter += 1;
  return `${prefix}${process.pid.toString(36)}${counter}`;
}

export function makeWorld(
  db: TestDatabase,
  options: { config?: Config; limits?: Partial<Limits>; clock?: () => Date; reconnect?: ReconnectService } = {},
): World {
  const config = options.config ?? testConfig();
  const engine = new ConversationEngine({
    store: db.store,
    config,
    limits: { messagesPerWindow: 1000, ...options.limits },
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.reconnect ? { reconnect: options.reconnect } : {}),
  });
  return {
    store: db.store,
    engine,
    config,
    send(sender, text, o = {}) {
      const incoming: Incoming = {
        channel: sender.platform,
        sender,
        isPrivate: o.isPrivate ?? true,
        ...(o.html ? { html: mastodonHtml(text) } : { text }),
      };
      return engine.handle(incoming);
    },
    async person(identities, settings = {}) {
      const p = await db.store.people.create(settings);
      for (const i of identities) await db.store.identities.attach(p.id, { verifiedBy: "platform", ...i });
      return p.id;
    },
    async follow(follower, followed) {
      await db.sql`insert into x_follow values (${follower}, ${followed}) on conflict do nothing`;
    },
  };
}

/** All reply texts of an outcome, joined. */
export function allText(outcome: Outcome): string {
  return outcome.replies.map((r) => r.text).join("\n");
}

/** The text of the private replies of an outcome. */
export function privateText(outcome: Outcome): string {
  return outcome.replies.filter((r) => r.visibility === "private").map((r) => r.text).join("\n");
}

/** The text of the public replies of an outcome. */
export function publicText(outcome: Outcome): string {
  return outcome.replies.filter((r) => r.visibility === "public").map((r) => r.text).join("\n");
}
