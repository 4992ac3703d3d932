/**
 * From what a platform delivers to words: fediverse HTML to text with a real
 * HTML parser, the bot's own mention dropped wherever it stands, invisible
 * characters removed, compatibility forms folded (NFKC), then split into
 * tokens. Tokens keep their case (codes, handles); `fold` gives the case- and
 * accent-free form used to recognise command and keyword words.
 */
import { Parser } from "htmlparser2";

/** How people mention the bot: on the fediverse `@username@domain`, on Bluesky `@handle`. */
export interface BotNames {
  /** Fediverse username (`reconnexion`). */
  username: string;
  /** Fediverse domain, from PUBLIC_URL (`bot.example`). */
  domain: string;
  /** Bluesky handle, when the Bluesky bot runs. */
  blueskyHandle?: string | undefined;
}

export interface ParsedMessage {
  /** The cleaned text, the bot's mentions removed. */
  text: string;
  /**
   * Whitespace-separated words of `text`, case kept, without surrounding
   * quotes or trailing punctuation; after the first word, no punctuation- or
   * emoji-only token (see `tokenize`).
   */
  tokens: string[];
}

// Block-level elements end a line; `br` too.
const BREAKS = new Set(["p", "br", "div", "li", "ul", "ol", "blockquote", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "tr"]);
// Their content is never text a person wrote to us.
const SKIPPED = new Set(["script", "style", "template", "noscript", "iframe", "object", "svg", "math", "head", "title"]);

/**
 * Case and accents folded, for comparing words: `Délier` → `delier`,
 * `ŒUVRE` → `oeuvre`.
 */
export function fold(word: string): string {
  return word
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .toLowerCase()
    .replace(/œ/g, "oe")
    .replace(/æ/g, "ae")
    .replace(/ß/g, "ss");
}

/**
 * Removes what a person cannot see or did not mean: format characters
 * (zero-width spaces and joiners, bidirectional controls, soft hyphens, BOM),
 * invisible marks (the combining grapheme joiner, Khmer's inherent vowels),
 * control characters, and compatibility forms (full-width letters,
 * ligatures). Characters that draw nothing though they are letters or
 * symbols (Hangul fillers, the braille blank), used as invisible spaces,
 * become spaces. Line breaks are kept; other spaces become plain spaces.
 */
export function cleanText(input: string): string {
  return input
    .normalize("NFKC")
    .replace(/[\p{Cf}\u034F\u17B4\u17B5]/gu, "")
    .replace(/[\u115F\u1160\u3164\uFFA0\u2800]/g, " ")
    .replace(/\r\n?|[\u2028\u2029\u0085]/g, "\n")
    .replace(/[\u0000-\u0009\u000B-\u001F\u007F-\u009F]/g, " ")
    .replace(/[^\S\n]+/gu, " ");
}

/**
 * Fediverse HTML (Mastodon, Pleroma, Misskey, GoToSocial…) to plain text.
 * Mention links that point at the bot are dropped whole; scripts and styles
 * are dropped with their content; entities are decoded; paragraphs and `br`
 * become line breaks.
 */
export function htmlToText(html: string, bot: BotNames, mentions: readonly string[] = []): string {
  let out = "";
  let skipDepth = 0;
  // The mention link being read, if any: its text decides whether it is the bot.
  let anchor: { href: string; isMention: boolean; text: string; depth: number } | undefined;
  let depth = 0;
  const emit = (text: string) => {
    if (skipDepth > 0) return;
    if (anchor) anchor.text += text;
    else out += text;
  };
  const parser = new Parser(
    {
      onopentag(name, attribs) {
        depth++;
        if (SKIPPED.has(name)) skipDepth++;
        if (BREAKS.has(name)) emit("\n");
        if (name === "a" && !anchor && skipDepth === 0) {
          const classes = (attribs.class ?? "").split(/\s+/);
          anchor = {
            href: attribs.href ?? "",
            isMention: classes.includes("mention") || classes.includes("u-url") || (attribs.href ?? "").includes("/@"),
            text: "",
            depth,
          };
        }
      },
      ontext(text) {
        emit(text);
      },
      onclosetag(name) {
        if (anchor && name === "a" && depth === anchor.depth) {
          const a = anchor;
          anchor = undefined;
          if (!a.isMention) emit(a.text);
          else if (!isBotMentionLink(a.text, a.href, bot)) emit(wholeMention(a.text, a.href, mentions));
          emit(" ");
        }
        if (SKIPPED.has(name) && skipDepth > 0) skipDepth--;
        if (name === "p" || name === "div" || name === "li") emit("\n");
        depth--;
      },
    },
    { decodeEntities: true, lowerCaseTags: true, recognizeSelfClosing: true },
  );
  parser.write(html);
  parser.end();
  if (anchor) out += anchor.text;
  return out;
}

/**
 * A mention link as the account it names: Mastodon, Pleroma and GoToSocial
 * show `@bob` and link to bob's profile. The note's Mention tags (`mentions`,
 * `@bob@example.com`) say which account that is — its domain may differ from
 * its server's web host; without them, the link's host stands in.
 */
function wholeMention(text: string, href: string, mentions: readonly string[]): string {
  const short = /^@([^@\s]+)$/.exec(cleanText(text).trim());
  if (!short) return text;
  let host: string | undefined;
  try {
    host = new URL(href).host;
  } catch {
    host = undefined;
  }
  const prefix = `@${fold(short[1]!)}@`;
  const named = mentions.filter((n) => fold(n).startsWith(prefix));
  if (named.length === 1) return named[0]!;
  const onHost = host === undefined ? undefined : named.find((n) => fold(n) === `${prefix}${fold(host)}`);
  return onHost ?? (host === undefined ? text : `@${short[1]}@${host}`);
}

/** A mention link whose text and address designate the bot. */
function isBotMentionLink(text: string, href: string, bot: BotNames): boolean {
  const name = fold(cleanText(text).trim());
  const user = fold(bot.username);
  const domain = fold(bot.domain);
  if (name === `@${user}@${domain}`) return true;
  if (name !== `@${user}`) return false;
  // The short form `@reconnexion` is the bot only if the link goes to the bot's server.
  if (!href) return true;
  try {
    return fold(new URL(href).host) === domain || fold(new URL(href).hostname) === domain;
  } catch {
    return false;
  }
}

/** The mention forms that mean the bot in plain text (folded). */
function botMentionForms(bot: BotNames, platform: "bluesky" | "fediverse"): Set<string> {
  const forms = new Set([`@${fold(bot.username)}@${fold(bot.domain)}`]);
  if (platform === "fediverse") forms.add(`@${fold(bot.username)}`);
  if (bot.blueskyHandle) forms.add(`@${fold(bot.blueskyHandle.replace(/^@/, ""))}`);
  return forms;
}

/** A word as a mention of the bot would read: folded, without brackets or quotes around it and punctuation after it. */
function bareMention(word: string): string {
  return fold(word)
    .replace(/^[(\[{<"'«“‘]+/u, "")
    .replace(/[)\]}>"'»”’.,:;!?]+$/u, "");
}

/**
 * Turns a message into cleaned text and tokens, without the bot's mentions.
 * @param message `html` (fediverse) or `text` (Bluesky, terminal)
 */
export function parseMessage(
  message: { html?: string | undefined; text?: string | undefined; mentions?: readonly string[] | undefined },
  bot: BotNames,
  platform: "bluesky" | "fediverse",
): ParsedMessage {
  const raw = message.html !== undefined ? htmlToText(message.html, bot, message.mentions) : (message.text ?? "");
  const forms = botMentionForms(bot, platform);
  const lines = cleanText(raw)
    .split("\n")
    .map((line) =>
      line
        .split(" ")
        .filter((word) => word !== "" && !forms.has(bareMention(word)))
        .join(" "),
    )
    .filter((line) => line !== "");
  const text = lines.join("\n");
  return { text, tokens: tokenize(text) };
}

// The quotes a command comes copied with: the bot quotes every command in
// backticks, which Mastodon and Bluesky show as they are; people also quote
// with straight, curly and French quotes.
const QUOTES = "`\"'«»“”‘’„‹›";
const LEADING = new RegExp(`^[${QUOTES}¡¿]+`, "u");
// Quotes and sentence punctuation closing a word, in any order (`code`. « oui ! »).
const TRAILING = new RegExp(`[${QUOTES}.,:;!?¡¿…]+$`, "u");
const WORDLIKE = /[\p{L}\p{N}]/u;

/**
 * A word without the quotes around it and the punctuation after it
 * (a backtick-quoted `link` → link, ABCDEFGH followed by a backtick and a
 * dot → ABCDEFGH, «oui» → oui). Quotes and apostrophes inside a word stay
 * (c'est). Only punctuation: "".
 */
export function cleanToken(token: string): string {
  return token.replace(LEADING, "").replace(TRAILING, "");
}

/**
 * The words of a cleaned text. Each loses its surrounding quotes and
 * trailing punctuation. After a word, what has no letter or digit left (the
 * `!` French sets apart, an emoji) is dropped: it is no argument. Before
 * the first word it stays for the engine to skip — a lone `?` is `help`.
 */
function tokenize(text: string): string[] {
  const tokens: string[] = [];
  let afterWord = false;
  for (const raw of text.split(/\s+/)) {
    if (raw === "") continue;
    const token = cleanToken(raw);
    if (WORDLIKE.test(token)) {
      tokens.push(token);
      // Mentions of other people come before the command and are skipped with it.
      if (!token.startsWith("@")) afterWord = true;
    } else if (!afterWord) {
      if (token !== "") tokens.push(token);
      else if (raw.includes("?")) tokens.push("?");
    }
  }
  return tokens;
}

/** A command word as compared against the registry: folded, quotes and trailing punctuation dropped. */
export function commandWord(token: string): string {
  const folded = fold(token);
  const trimmed = cleanToken(folded);
  return trimmed === "" ? folded.replace(/[^?]/g, "").slice(0, 1) : trimmed;
}
