/**
 * Create(Note) bodies shaped like the ones real servers send to a mentioned
 * or DM'd account: Mastodon, Pleroma/Akkoma, Misskey/Sharkey, GoToSocial,
 * Friendica. Each differs in its @context, to/cc forms, tag arrays,
 * content/contentMap and source fields.
 */
import type { FediUser } from "./fediverse.ts";

export type Shape = "mastodon" | "pleroma" | "misskey" | "gotosocial" | "friendica";
export type Audience = "direct" | "public" | "unlisted" | "followers";
export const SHAPES: Shape[] = ["mastodon", "pleroma", "misskey", "gotosocial", "friendica"];

const AS = "https://www.w3.org/ns/activitystreams";
const PUBLIC = `${AS}#Public`;

export interface BotRef {
  actorId: string;
  /** `reconnexion@host` */
  acct: string;
}

function addressing(audience: Audience, user: FediUser, bot: BotRef, publicForm: string): { to: string[]; cc: string[] } {
  switch (audience) {
    case "direct":
      return { to: [bot.actorId], cc: [] };
    case "public":
      return { to: [publicForm], cc: [user.followers, bot.actorId] };
    case "unlisted":
      return { to: [user.followers], cc: [publicForm, bot.actorId] };
    case "followers":
      return { to: [user.followers], cc: [bot.actorId] };
  }
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/** A Create(Note) from `user` to the bot saying `text` after the mention. */
export function createNote(
  shape: Shape,
  user: FediUser,
  bot: BotRef,
  text: string,
  options: { audience?: Audience; noteId?: string; activityId?: string } = {},
): Record<string, unknown> {
  const audience = options.audience ?? "direct";
  const id = options.noteId ?? user.noteId();
  const activityId = options.activityId ?? `${id}/activity`;
  const published = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const [botUser] = bot.acct.split("@");
  switch (shape) {
    case "mastodon": {
      const { to, cc } = addressing(audience, user, bot, PUBLIC);
      const content = `<p><span class="h-card" translate="no"><a href="${bot.actorId}" class="u-url mention">@<span>${botUser}</span></a></span> ${esc(text)}</p>`;
      return {
        "@context": [AS, { ostatus: "http://ostatus.org#", atomUri: "ostatus:atomUri", inReplyToAtomUri: "ostatus:inReplyToAtomUri", conversation: "ostatus:conversation", sensitive: "as:sensitive", toot: "http://joinmastodon.org/ns#", votersCount: "toot:votersCount" }],
        id: activityId, type: "Create", actor: user.actorId, published, to, cc,
        object: {
          id, type: "Note", summary: null, inReplyTo: null, published, url: id.replace("/users/", "/@").replace("/statuses/", "/"),
          attributedTo: user.actorId, to, cc, sensitive: false, atomUri: id, inReplyToAtomUri: null,
          conversation: `tag:${new URL(id).host},2026:objectId=1:objectType=Conversation`,
          content, contentMap: { en: content }, attachment: [],
          tag: [{ type: "Mention", href: bot.actorId, name: `@${bot.acct}` }],
          replies: { id: `${id}/replies`, type: "Collection", first: { type: "CollectionPage", next: `${id}/replies?only_other_accounts=true&page=true`, partOf: `${id}/replies`, items: [] } },
        },
      };
    }
    case "pleroma": {
      const { to, cc } = addressing(audience, user, bot, PUBLIC);
      const content = `<span class="h-card"><a class="u-url mention" data-user="9x" href="${bot.actorId}" rel="ugc">@<span>${botUser}</span></a></span> ${esc(text)}`;
      return {
        "@context": [AS, `${user.server.origin}/schemas/litepub-0.1.jsonld`, { "@language": "und" }],
        id: activityId, type: "Create", actor: user.actorId, to, cc, directMessage: audience === "direct", context: `${user.server.origin}/contexts/1`,
        published,
        object: {
          id, type: "Note", actor: user.actorId, attributedTo: user.actorId, to, cc, content, context: `${user.server.origin}/contexts/1`,
          conversation: `${user.server.origin}/contexts/1`, published, sensitive: null, summary: "",
          source: { content: `@${bot.acct} ${text}`, mediaType: "text/plain" },
          tag: [{ href: bot.actorId, name: `@${bot.acct}`, type: "Mention" }], attachment: [],
        },
      };
    }
    case "misskey": {
      // Misskey writes Public as "https://www.w3.org/ns/activitystreams#Public", one tag as a list, source in MFM.
      const { to, cc } = addressing(audience, user, bot, PUBLIC);
      const content = `<p><a href="${bot.actorId}" class="u-url mention">@${bot.acct}</a> ${esc(text)}</p>`;
      return {
        "@context": [AS, "https://w3id.org/security/v1", { Key: "sec:Key", manuallyApprovesFollowers: "as:manuallyApprovesFollowers", sensitive: "as:sensitive", Hashtag: "as:Hashtag", quoteUrl: "as:quoteUrl", toot: "http://joinmastodon.org/ns#", Emoji: "toot:Emoji", misskey: "https://misskey-hub.net/ns#", _misskey_content: "misskey:_misskey_content", _misskey_quote: "misskey:_misskey_quote", isCat: "misskey:isCat" }],
        id: activityId, actor: user.actorId, type: "Create", published,
        object: {
          id, type: "Note", attributedTo: user.actorId, content, _misskey_content: `@${bot.acct} ${text}`,
          source: { content: `@${bot.acct} ${text}`, mediaType: "text/x.misskeymarkdown" },
          published, to, cc, inReplyTo: null, attachment: [], sensitive: false,
          tag: [{ type: "Mention", href: bot.actorId, name: `@${bot.acct}` }],
        },
        to, cc,
      };
    }
    case "gotosocial": {
      // GoToSocial: a single recipient as a plain string, "as:Public" for public, contentMap.
      const { to, cc } = addressing(audience, user, bot, "as:Public");
      const content = `<p><span class="h-card"><a href="${bot.actorId}" class="u-url mention" rel="nofollow noreferrer noopener" target="_blank">@<span>${botUser}</span></a></span> ${esc(text)}</p>`;
      const one = (list: string[]) => (list.length === 1 ? list[0] : list);
      return {
        "@context": AS,
        actor: user.actorId, id: activityId, object: {
          attachment: [], attributedTo: user.actorId, cc: one(cc), content, contentMap: { en: content }, id, published,
          tag: { href: bot.actorId, name: `@${bot.acct}`, type: "Mention" }, to: one(to), type: "Note", url: id,
          interactionPolicy: { canLike: { always: [PUBLIC], approvalRequired: [] } },
        },
        published, to: one(to), cc: one(cc), type: "Create",
      };
    }
    case "friendica": {
      // Friendica: contentMap only for the HTML, BBCode source, diaspora fields.
      const { to, cc } = addressing(audience, user, bot, PUBLIC);
      const content = `<span class="h-card"><a href="${bot.actorId}" class="u-url mention">@<span>${botUser}</span></a></span> ${esc(text)}`;
      return {
        "@context": [AS, "https://w3id.org/security/v1", { vcard: "http://www.w3.org/2006/vcard/ns#", dfrn: "http://purl.org/macgirvin/dfrn/1.0/", diaspora: "https://diasporafoundation.org/ns/", litepub: "http://litepub.social/ns#", toot: "http://joinmastodon.org/ns#", featured: { "@id": "toot:featured", "@type": "@id" }, schema: "http://schema.org#", manuallyApprovesFollowers: "as:manuallyApprovesFollowers", sensitive: "as:sensitive", Hashtag: "as:Hashtag", quoteUrl: "as:quoteUrl", conversation: "ostatus:conversation", directMessage: "litepub:directMessage", discoverable: "toot:discoverable", PropertyValue: "schema:PropertyValue", value: "schema:value" }],
        id: activityId, type: "Create", actor: user.actorId, published, instrument: { type: "Application", name: "Friendica" },
        to, cc,
        object: {
          id, type: "Note", summary: "", inReplyTo: null, diaspora: { guid: "0a1b2c" }, published, url: id, attributedTo: user.actorId,
          sensitive: false, context: `${id}#context`, contentMap: { en: content },
          source: { content: `@[url=${bot.actorId}]${botUser}[/url] ${text}`, mediaType: "text/bbcode" },
          attachment: [], tag: [{ type: "Mention", href: bot.actorId, name: `@${bot.acct}` }], to, cc,
        },
      };
    }
  }
}

/** Pleroma's litepub context, served by the harness as Pleroma serves its own. */
export const LITEPUB_CONTEXT = {
  "@context": [
    AS,
    "https://w3id.org/security/v1",
    {
      Emoji: "toot:Emoji", Hashtag: "as:Hashtag", PropertyValue: "schema:PropertyValue", atomUri: "ostatus:atomUri",
      conversation: { "@id": "ostatus:conversation", "@type": "@id" }, directMessage: "litepub:directMessage",
      discoverable: "toot:discoverable", litepub: "http://litepub.social/ns#", manuallyApprovesFollowers: "as:manuallyApprovesFollowers",
      ostatus: "http://ostatus.org#", schema: "http://schema.org#", sensitive: "as:sensitive", toot: "http://joinmastodon.org/ns#",
      value: "schema:value", vcard: "http://www.w3.org/2006/vcard/ns#", "@language": "und",
    },
  ],
};
