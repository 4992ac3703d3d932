/**
 * The seam between the bots and the conversation: a bot turns a platform
 * event into an `Incoming`, hands it to the engine, and delivers the
 * `Reply`s it gets back. Nothing here knows a platform's API.
 */
import type { TargetPlatform } from "../store/index.ts";

/** Where a message arrived: a bot, or the operator's terminal (`reconnexion chat`). */
export type Channel = "bluesky" | "fediverse" | "terminal";

/** Who wrote, as the platform they wrote from identifies them. */
export interface Sender {
  /** The platform the sender's account lives on. */
  platform: TargetPlatform;
  /** Bluesky DID, or fediverse actor URI: never changes. */
  stableId: string;
  /** Bluesky handle, or fediverse acct `user@host`, as the platform vouches for it now. */
  handle: string | null;
  /** The instance's API base (fediverse), when the bot knows it. */
  apiBase?: string | null;
  /** The account declares itself automated (Bluesky label, ActivityPub `Service`…): never answered. */
  isBot: boolean;
}

/** One message to the bot. Give `html` (fediverse content) or `text` (Bluesky, terminal). */
export interface Incoming {
  channel: Channel;
  sender: Sender;
  text?: string;
  html?: string;
  /**
   * The accounts the message mentions, whole (`@bob@example.com`: a
   * fediverse note's Mention tags), for mentions its `html` shows by their
   * short name only.
   */
  mentions?: readonly string[];
  /** A DM (fediverse `direct` note, Bluesky chat): nobody else sees the message or the answer. */
  isPrivate: boolean;
  /** The bot's own reference to the message, handed back untouched with each reply. */
  replyTo?: unknown;
}

export type Visibility = "public" | "private";

/** One message the bot must send. */
export interface Reply {
  /** `private` goes by DM only; `public` may be shown to anyone. */
  visibility: Visibility;
  text: string;
  /**
   * `answer`: the content itself. `notice`: a short public reply saying the
   * answer went by DM — a bot that could not deliver the private reply may
   * replace it with its own "how to open DMs" text.
   */
  kind: "answer" | "notice";
  replyTo?: unknown;
}

/** What changed in the store because of a message (for logs, metrics and bots). */
export type Effect =
  | { type: "identity-recorded"; personId: number }
  | { type: "linked"; personId: number; mergedPersonId?: number }
  | { type: "link-code-created"; personId: number; platform: TargetPlatform }
  | { type: "unlinked"; personId: number; platform: string }
  | { type: "settings-changed"; personId: number }
  | { type: "matches-changed"; personId: number }
  | { type: "forgotten"; personId: number };

/** The engine's answer to one `Incoming`. */
export interface Outcome {
  replies: Reply[];
  effects: Effect[];
  /** The locale the replies are written in. */
  language: string;
  /** What the engine made of the message (for logs and metrics). */
  handledAs: string;
}
