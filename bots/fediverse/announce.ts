/**
 * The bot's public posts (src/announce/public.ts): a Note addressed to
 * everyone (Public) and copied to the bot's followers, mentioning the
 * people it names (who agreed to it), queued through Fedify to the
 * followers' shared inboxes and to the people named. Each is kept
 * (fediverse_public_note) and served at its id and in the outbox, as a
 * server that sees it boosted or replied to fetches it from here.
 */
import type { Context } from "@fedify/fedify";
import { Create, Delete, isActor, Mention, Note, PUBLIC_COLLECTION, Tombstone, type Actor } from "@fedify/vocab";
import { Temporal } from "@js-temporal/polyfill";
import { randomUUID } from "node:crypto";
import { ForeignPostError } from "../../src/announce/public.ts";
import type { PublicNote } from "../../src/store/fediverse-state.ts";
import type { Store } from "../../src/store/index.ts";
import { announcementHtml, mentionName, type Recipient } from "./reply.ts";

/** Where the bot's notes live: `/fediverse/notes/<uuid>`, their Create at `…/activity`. */
export const NOTE_PATH = "/fediverse/notes/{id}";
export const NOTE_ACTIVITY_PATH = "/fediverse/notes/{id}/activity";

export async function publishNote(
  ctx: Context<void>,
  options: { username: string; store: Store; text: string; named: readonly { actorUri: string; acct: string }[] },
): Promise<URL> {
  const named: Recipient[] = options.named.map((n) => ({ id: n.actorUri, acct: n.acct }));
  const kept: PublicNote = {
    id: randomUUID(),
    content: announcementHtml(options.text, named),
    mentions: named.map((n) => ({ href: n.id, name: mentionName(n) })),
    published: new Date(),
  };
  await options.store.fediverse.savePublicNote(kept);
  const create = publicCreate(ctx, options.username, kept);
  // Keyed by the note: a Delete of it later never overtakes this on its way.
  const orderingKey = create.objectId!.href;
  await ctx.sendActivity({ identifier: options.username }, "followers", create, { preferSharedInbox: true, orderingKey });
  // The people named, who may not follow the bot, see themselves welcomed:
  // best effort, the post is out already.
  try {
    const actors = await actorsAt(ctx, options.username, named.map((n) => n.id));
    if (actors.length > 0) await ctx.sendActivity({ identifier: options.username }, actors, create, { preferSharedInbox: true, orderingKey });
  } catch {
    // The followers have it; a named person who does not follow the bot misses the mention.
  }
  return create.objectId!;
}

/** A kept public post as the Note it was posted as. */
export function publicNote(ctx: Context<void>, username: string, note: PublicNote): Note {
  const mentioned = note.mentions.map((m) => new URL(m.href));
  return new Note({
    id: ctx.getObjectUri(Note, { id: note.id }),
    attribution: ctx.getActorUri(username),
    to: PUBLIC_COLLECTION,
    ccs: [ctx.getFollowersUri(username), ...mentioned],
    content: note.content,
    mediaType: "text/html",
    tags: note.mentions.map((m) => new Mention({ href: new URL(m.href), name: m.name })),
    published: Temporal.Instant.fromEpochMilliseconds(note.published.getTime()) as never,
    sensitive: false,
  });
}

/** The Create that posted it. */
export function publicCreate(ctx: Context<void>, username: string, note: PublicNote): Create {
  const object = publicNote(ctx, username, note);
  return new Create({
    id: ctx.getObjectUri(Create, { id: note.id }),
    actor: ctx.getActorUri(username),
    to: PUBLIC_COLLECTION,
    ccs: object.ccIds,
    object,
    published: object.published,
  });
}

/**
 * Takes back a public post (it named someone since forgotten): a Delete to
 * the followers and to the people it mentioned (their servers show it in
 * their notifications), as Mastodon sends when a post is deleted; then the
 * kept copy goes. A note that is not one of the bot's is refused.
 */
export async function retractNote(ctx: Context<void>, options: { username: string; store: Store; noteUri: string }): Promise<void> {
  const parsed = ctx.parseUri(new URL(options.noteUri));
  if (parsed?.type !== "object" || parsed.class !== Note || !parsed.values.id) throw new ForeignPostError(options.noteUri);
  const id = parsed.values.id;
  const kept = await options.store.fediverse.publicNote(id, { withdrawn: true });
  const mentioned = (kept?.mentions ?? []).map((m) => new URL(m.href));
  const del = new Delete({
    id: new URL(`/fediverse/deletes/${randomUUID()}`, ctx.canonicalOrigin),
    actor: ctx.getActorUri(options.username),
    to: PUBLIC_COLLECTION,
    ccs: [ctx.getFollowersUri(options.username), ...mentioned],
    object: new Tombstone({ id: new URL(options.noteUri) }),
  });
  const orderingKey = options.noteUri;
  await ctx.sendActivity({ identifier: options.username }, "followers", del, { preferSharedInbox: true, orderingKey });
  const actors = await actorsAt(ctx, options.username, mentioned);
  if (actors.length > 0) await ctx.sendActivity({ identifier: options.username }, actors, del, { preferSharedInbox: true, orderingKey });
  await options.store.fediverse.deletePublicNote(id);
}

/**
 * The actors at these addresses that can be fetched now (the others are
 * left out), fetched signed with the bot's key: some servers serve actors to
 * signed requests only.
 */
async function actorsAt(ctx: Context<void>, username: string, ids: readonly (string | URL)[]): Promise<Actor[]> {
  const actors: Actor[] = [];
  const documentLoader = ids.length > 0 ? await ctx.getDocumentLoader({ identifier: username }) : undefined;
  for (const id of ids) {
    const actor = await ctx.lookupObject(id, { documentLoader }).catch(() => null);
    if (actor && isActor(actor)) actors.push(actor);
  }
  return actors;
}
