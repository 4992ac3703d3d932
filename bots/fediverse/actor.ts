/**
 * The bot as an ActivityPub actor: a `Service` (what Mastodon and others show
 * as a bot), with WebFinger, keys, inbox and shared inbox, an outbox of its
 * public posts (each also served at its id), its followers, and NodeInfo
 * for the server.
 */
import type { Federation } from "@fedify/fedify";
import { Create, Endpoints, Image, Note, Service, type Recipient } from "@fedify/vocab";
import type { Follower } from "../../src/store/fediverse-state.ts";
import type { Store } from "../../src/store/index.ts";
import { NOTE_ACTIVITY_PATH, NOTE_PATH, publicCreate, publicNote } from "./announce.ts";
import { ICON_PATH } from "./icon.ts";
import type { BotKeys } from "./keys.ts";

export const ACTOR_PATH = "/users/{identifier}";
export const INBOX_PATH = "/users/{identifier}/inbox";
export const SHARED_INBOX_PATH = "/inbox";
export const OUTBOX_PATH = "/users/{identifier}/outbox";
export const FOLLOWERS_PATH = "/users/{identifier}/followers";

export const BOT_NAME = "Reconnexion";

export const BOT_SUMMARY =
  "<p>🇫🇷 Je retrouve pour vous, ici et sur Bluesky, les comptes que vous suiviez sur X, et je peux les suivre à votre place. " +
  "Écrivez-moi en message privé : <code>aide</code>.</p>" +
  "<p>🇬🇧 I find the accounts you followed on X here and on Bluesky, and can follow them for you. " +
  "Send me a direct message: <code>help</code>.</p>" +
  "<p>Bot — compte automatisé. / Bot — automated account.</p>";

const FOLLOWERS_PAGE = 100;
const OUTBOX_PAGE = 20;

export function setupActor(federation: Federation<void>, options: { username: string; keys: BotKeys; store: Store; version: string }): void {
  const { username, keys, store } = options;
  federation
    .setActorDispatcher(ACTOR_PATH, async (ctx, identifier) => {
      if (identifier !== username) return null;
      const pairs = await ctx.getActorKeyPairs(identifier);
      return new Service({
        id: ctx.getActorUri(identifier),
        preferredUsername: identifier,
        name: BOT_NAME,
        summary: BOT_SUMMARY,
        // For people: the service's front page (the actor URI answers browsers with 406).
        url: new URL("/", ctx.canonicalOrigin),
        icon: new Image({ url: new URL(ICON_PATH, ctx.canonicalOrigin), mediaType: "image/png" }),
        inbox: ctx.getInboxUri(identifier),
        endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
        outbox: ctx.getOutboxUri(identifier),
        followers: ctx.getFollowersUri(identifier),
        manuallyApprovesFollowers: false,
        discoverable: true,
        indexable: false,
        publicKey: pairs[0]?.cryptographicKey ?? null,
        assertionMethods: pairs.map((p) => p.multikey),
      });
    })
    .setKeyPairsDispatcher(async (_ctx, identifier) => (identifier === username ? keys.keyPairs() : []))
    .mapHandle((_ctx, handle) => (handle.toLowerCase() === username.toLowerCase() ? username : null));

  federation
    .setFollowersDispatcher(FOLLOWERS_PATH, async (_ctx, identifier, cursor) => {
      if (identifier !== username) return null;
      // No cursor: every follower, which is what Fedify asks for when it
      // sends to "followers" (an empty answer here sent public posts to
      // nobody). Served over HTTP, the collection is paged (first cursor).
      if (cursor === null) return { items: (await store.fediverse.followers(0, null)).map(recipientOf) };
      const offset = Math.max(0, Number.parseInt(cursor, 10) || 0);
      const page = await store.fediverse.followers(offset, FOLLOWERS_PAGE + 1);
      return {
        items: page.slice(0, FOLLOWERS_PAGE).map(recipientOf),
        nextCursor: page.length > FOLLOWERS_PAGE ? String(offset + FOLLOWERS_PAGE) : null,
      };
    })
    .setCounter((_ctx, identifier) => (identifier === username ? store.fediverse.followerCount() : null))
    .setFirstCursor((_ctx, identifier) => (identifier === username ? "0" : null));

  // Public posts only: direct messages are in no outbox, and served nowhere.
  federation
    .setOutboxDispatcher(OUTBOX_PATH, async (ctx, identifier, cursor) => {
      if (identifier !== username || cursor === null) return identifier === username ? { items: [] } : null;
      const offset = Math.max(0, Number.parseInt(cursor, 10) || 0);
      const page = await store.fediverse.publicNotes(offset, OUTBOX_PAGE + 1);
      return {
        items: page.slice(0, OUTBOX_PAGE).map((n) => publicCreate(ctx, username, n)),
        nextCursor: page.length > OUTBOX_PAGE ? String(offset + OUTBOX_PAGE) : null,
      };
    })
    .setCounter((_ctx, identifier) => (identifier === username ? store.fediverse.publicNoteCount() : null))
    .setFirstCursor((_ctx, identifier) => (identifier === username ? "0" : null));
  federation.setObjectDispatcher(Note, NOTE_PATH, async (ctx, values) => {
    const kept = await store.fediverse.publicNote(values.id);
    return kept ? publicNote(ctx, username, kept) : null;
  });
  federation.setObjectDispatcher(Create, NOTE_ACTIVITY_PATH, async (ctx, values) => {
    const kept = await store.fediverse.publicNote(values.id);
    return kept ? publicCreate(ctx, username, kept) : null;
  });

  federation.setNodeInfoDispatcher("/nodeinfo/2.1", async () => ({
    software: { name: "reconnexion", version: options.version },
    protocols: ["activitypub"],
    usage: { users: { total: 1, activeHalfyear: 1, activeMonth: 1 }, localPosts: await store.fediverse.publicNoteCount(), localComments: 0 },
    openRegistrations: false,
    metadata: { nodeName: BOT_NAME },
  }));
}

function recipientOf(f: Follower): Recipient {
  return { id: new URL(f.actorUri), inboxId: new URL(f.inbox), endpoints: f.sharedInbox ? { sharedInbox: new URL(f.sharedInbox) } : null };
}
