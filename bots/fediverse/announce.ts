/**
 * The bot's public posts (src/announce/public.ts): a Note addressed to
 * everyone (Public) and copied to the bot's followers, mentioning the
 * people it names (who agreed to it), queued through Fedify to the
 * followers' shared inboxes and to the people named.
 */
import type { Context } from "@fedify/fedify";
import { Create, isActor, Mention, Note, PUBLIC_COLLECTION, type Actor } from "@fedify/vocab";
import { Temporal } from "@js-temporal/polyfill";
import { randomUUID } from "node:crypto";
import { announcementHtml, mentionName, type Recipient } from "./reply.ts";

export async function publishNote(
  ctx: Context<void>,
  options: { username: string; text: string; named: readonly { actorUri: string; acct: string }[] },
): Promise<URL> {
  const botId = ctx.getActorUri(options.username);
  const followers = ctx.getFollowersUri(options.username);
  const named: Recipient[] = options.named.map((n) => ({ id: n.actorUri, acct: n.acct }));
  const id = new URL(`/fediverse/notes/${randomUUID()}`, ctx.canonicalOrigin);
  const published = Temporal.Now.instant() as never;
  const note = new Note({
    id,
    attribution: botId,
    to: PUBLIC_COLLECTION,
    ccs: [followers, ...named.map((n) => new URL(n.id))],
    content: announcementHtml(options.text, named),
    mediaType: "text/html",
    tags: named.map((n) => new Mention({ href: new URL(n.id), name: mentionName(n) })),
    published,
    sensitive: false,
  });
  const create = new Create({
    id: new URL(`${id.href}/activity`),
    actor: botId,
    to: PUBLIC_COLLECTION,
    ccs: note.ccIds,
    object: note,
    published,
  });
  await ctx.sendActivity({ identifier: options.username }, "followers", create, { preferSharedInbox: true });
  // The people named, who may not follow the bot, see themselves welcomed:
  // best effort, the post is out already.
  try {
    const actors: Actor[] = [];
    for (const n of named) {
      const actor = await ctx.lookupObject(n.id).catch(() => null);
      if (actor && isActor(actor)) actors.push(actor);
    }
    if (actors.length > 0) await ctx.sendActivity({ identifier: options.username }, actors, create, { preferSharedInbox: true });
  } catch {
    // The followers have it; a named person who does not follow the bot misses the mention.
  }
  return id;
}
