/**
 * What the engine and its commands are given: the store, the configuration,
 * a clock and the bot's own names, passed explicitly (no globals), plus the
 * limits that protect the bot. Also the shape of one command's answer.
 */
import type { Config } from "../config.ts";
import type { PersonView, Store } from "../store/index.ts";
import type { Locale } from "./i18n/index.ts";
import type { Effect, Incoming, Sender } from "./incoming.ts";
import type { BotNames } from "./parse.ts";
import type { Registry } from "./registry.ts";
import type { ReconnectService } from "../reconnect/service.ts";

/** Numbers that protect the bot and the people it talks to. */
export interface Limits {
  /** Messages a sender may send per window before one "slow down", then silence. */
  messagesPerWindow: number;
  windowSeconds: number;
  /** After one "I didn't understand", silence for that long. */
  hintSilenceSeconds: number;
  /** Raw input (HTML or text) longer than this is refused without being parsed. */
  maxInputCharacters: number;
  /** Text (after HTML is removed) longer than this is refused. */
  maxTextCharacters: number;
  /** Link codes a person may make per hour. */
  codesPerHour: number;
  /** Wrong codes a sender may try per hour. */
  codeFailuresPerHour: number;
  codeTtlSeconds: number;
  /** How long `forget` waits for its confirmation. */
  forgetConfirmSeconds: number;
}

export const DEFAULT_LIMITS: Limits = {
  messagesPerWindow: 12,
  windowSeconds: 60,
  hintSilenceSeconds: 3600,
  maxInputCharacters: 20_000,
  maxTextCharacters: 2_000,
  codesPerHour: 5,
  codeFailuresPerHour: 5,
  codeTtlSeconds: 15 * 60,
  forgetConfirmSeconds: 10 * 60,
};

/** Everything the engine needs, handed in by whoever runs it (a bot, the terminal chat, a test). */
export interface EngineContext {
  store: Store;
  config: Config;
  /** The time now; tests pass a fake clock. */
  clock?: () => Date;
  /** How people mention the bot; derived from `config` when omitted. */
  bot?: BotNames;
  /** Accounts of the bot itself (never answered): Bluesky DID, actor URI. */
  botStableIds?: readonly string[];
  limits?: Partial<Limits>;
  /** Reconnection jobs and one-time links (src/reconnect); the `reconnect` and `auto` commands need it. */
  reconnect?: ReconnectService;
}

/** The bot's names as configured: fediverse `@username@host(PUBLIC_URL)`, Bluesky handle. */
export function botNamesFrom(config: Config): BotNames {
  return {
    username: config.fediverseBotUsername,
    domain: config.publicUrl.host,
    blueskyHandle: config.bluesky.handle,
  };
}

/** One piece of a command's answer; `private` pieces never go into a public reply. */
export interface Part {
  text: string;
  private: boolean;
}

/** A piece that may be shown in public (nothing about anyone). */
export const say = (text: string): Part => ({ text, private: false });
/** A piece for the sender's eyes only. */
export const tell = (text: string): Part => ({ text, private: true });

/** What a command is given for one message. */
export interface CommandContext {
  store: Store;
  config: Config;
  limits: Limits;
  now: Date;
  incoming: Incoming;
  sender: Sender;
  /** The sender's person and identities; undefined when the store does not know them. */
  person: PersonView | undefined;
  locale: Locale;
  registry: Registry;
  /** Reconnection jobs and one-time links; undefined where the service does not run them. */
  reconnect: ReconnectService | undefined;
  /** The argument tokens after the command word, case kept. */
  args: string[];
  /** Marks a value (code, handle, link) that must never appear in a public reply. */
  secret(value: string): string;
  /** Records a change to report in the outcome. */
  effect(effect: Effect): void;
  /** Sets the language of the rest of the answer (after `language fr`). */
  switchLocale(locale: Locale): void;
}
