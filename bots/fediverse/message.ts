/**
 * Reading an incoming Create(Note): is it for the bot, who can see it, and
 * what does it say. Real servers differ: to/cc as one value or a list,
 * `as:Public` / `Public` / the full IRI, mentions as one tag or a list,
 * `content` or only `contentMap`, Misskey's and Pleroma's `source`.
 * Fedify's JSON-LD processing already folds those forms together; this
 * module decides on what remains.
 */
import { type Actor, Mention, type Note, PUBLIC_COLLECTION } from "@fedify/vocab";

export interface Audience {
  /** Public or unlisted (Public in to or cc). */
  isPublic: boolean;
  /** Nobody but the addressed actors can see it (a DM). */
  isDirect: boolean;
  /** The bot is addressed or mentioned. */
  addressesBot: boolean;
}

const PUBLIC_FORMS = new Set([PUBLIC_COLLECTION.href, "as:Public", "Public"]);

/** Who a note (and the activity that carries it) is addressed to. */
export async function audienceOf(
  note: Note,
  activity: { toIds: URL[]; ccIds: URL[] },
  bot: { actorId: URL; profileUrls: readonly string[] },
  author: Actor,
): Promise<Audience> {
  const addresses = [...activity.toIds, ...activity.ccIds, ...note.toIds, ...note.ccIds, ...note.audienceIds].map((u) => u.href);
  const isPublic = addresses.some((a) => PUBLIC_FORMS.has(a));
  const botIds = new Set([bot.actorId.href, ...bot.profileUrls]);
  let mentioned = false;
  for await (const tag of note.getTags({ suppressError: true } as never)) {
    if (tag instanceof Mention && tag.href && botIds.has(tag.href.href)) mentioned = true;
  }
  const addressesBot = mentioned || addresses.some((a) => botIds.has(a));
  // Followers-only: addressed to the author's followers collection.
  const followers = author.followersId?.href;
  const toCollection = addresses.some((a) => a === followers || /\/followers\/?$/.test(a));
  return { isPublic, isDirect: !isPublic && !toCollection, addressesBot };
}

/** The whole names (`@bob@example.com`) of the accounts the note's Mention tags name. */
export async function mentionsOf(note: Note): Promise<string[]> {
  const names: string[] = [];
  for await (const tag of note.getTags({ suppressError: true } as never)) {
    const name = tag instanceof Mention && tag.name != null ? String(tag.name).trim() : "";
    if (/^@?[^@\s]+@[^@\s]+$/.test(name)) names.push(name.startsWith("@") ? name : `@${name}`);
  }
  return names;
}

/** The note's text: HTML `content` (any language of `contentMap`), else its source. */
export function contentOf(note: Note): { html?: string; text?: string } {
  const content = note.content ?? note.contents[0];
  if (content != null && String(content).trim() !== "") return { html: String(content) };
  const source = note.source;
  if (source?.content != null) return { text: String(source.content) };
  return { text: note.summary != null ? String(note.summary) : "" };
}
