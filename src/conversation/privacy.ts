/**
 * Turning a command's answer into replies that respect who may read them.
 * In a private conversation everything is private. In public, private pieces
 * go by DM and the public reply only says so; and as a second guard, a
 * piece marked public that contains a value a command declared secret
 * (a code, a match's handle…) is sent privately instead.
 */
import type { TargetPlatform } from "../store/index.ts";
import type { Part } from "./context.ts";
import type { Locale } from "./i18n/index.ts";
import type { Reply, Visibility } from "./incoming.ts";

/**
 * The longest reply each platform takes, in characters (graphemes): a Bluesky
 * post holds 300, a Bluesky chat message 1,000; Mastodon shows 500 in a
 * public post, and a direct note this bot sends may be longer.
 */
export const REPLY_LIMITS: Record<TargetPlatform, Record<Visibility, number>> = {
  bluesky: { public: 300, private: 1000 },
  fediverse: { public: 500, private: 5000 },
};

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });
const graphemes = (text: string) => [...segmenter.segment(text)].map((s) => s.segment);
// One code unit per grapheme: Latin letters (precomposed accents included),
// common punctuation; no combining marks, joiners, selectors or surrogates.
// Most replies are this, and segmenting them was a visible cost per message.
const ONE_UNIT_GRAPHEMES = /^[\t\x20-\x7e\u00a0-\u02ff\u2010-\u2027\u2030-\u205e\u20ac]*$/;

/** Length as Bluesky and Mastodon count it: in graphemes. */
export function graphemeCount(text: string): number {
  if (ONE_UNIT_GRAPHEMES.test(text)) return text.length;
  let n = 0;
  for (const _ of segmenter.segment(text)) n++;
  return n;
}

/**
 * Splits a text into pieces of at most `limit` graphemes, at line breaks
 * when it can. A line too long for one piece is broken between words (see
 * `breakAt`); only a single word longer than `limit` (no URL the bot sends
 * is) is cut inside.
 */
export function splitText(text: string, limit: number): string[] {
  const pieces: string[] = [];
  let current = "";
  let size = 0; // graphemes in `current`, line breaks included
  const flush = () => {
    const piece = current.trim();
    if (piece !== "") pieces.push(piece);
    current = "";
    size = 0;
  };
  for (const line of text.split("\n")) {
    const length = graphemeCount(line);
    const separator = size > 0 ? 1 : 0;
    if (size + separator + length > limit) flush();
    if (length > limit) {
      let rest = graphemes(line);
      while (rest.length > limit) {
        const at = breakAt(rest, limit);
        current = rest.slice(0, at ?? limit).join("");
        flush();
        rest = rest.slice(at ?? limit);
        while (rest.length > 0 && SPACE.test(rest[0]!)) rest = rest.slice(1);
      }
      current = rest.join("");
      size = rest.length;
      continue;
    }
    if (size > 0) {
      current += "\n";
      size++;
    }
    current += line;
    size += length;
  }
  flush();
  return pieces;
}

// Where a line may break: a space, but not a no-break one (French sets
// `!`, `?`, `:`, `;` apart with one).
const SPACE = /^[^\S\u00a0\u2007\u202f]+$/u;
// What a piece should not start with: punctuation closing what came before
// (French sets `!`, `?`, `:`, `;` and `»` apart with a space).
const CLOSING = /^[.,;:!?…»)\]}”’]/u;
// What a piece should not end with: punctuation opening what comes after.
const OPENING = /[«(\[{“‘]$/u;
// A list marker alone (`12.`, `•`, `—`): it stays with its item.
const MARKER = /^(?:\d{1,4}[.)]|[-–—•*·])$/u;
// The end of a sentence, or of a clause, before closing quotes or brackets.
const SENTENCE_END = /[.!?…][)\]"'”’»`]*$/u;
const CLAUSE_END = /[,;:][)\]"'”’»`]*$/u;

/**
 * Where to break a line (graphemes) longer than `limit`: the index of a
 * space, the piece being what comes before it. The latest end of a sentence
 * in the second half of the piece, else of a clause, else the latest space
 * that leaves no punctuation stranded and no list marker alone, else the
 * latest space; undefined when the first `limit` graphemes hold none (one
 * long word). Breaking at spaces keeps links, which hold none, whole.
 */
function breakAt(chars: readonly string[], limit: number): number | undefined {
  let sentence: number | undefined;
  let clause: number | undefined;
  let clean: number | undefined;
  let any: number | undefined;
  for (let i = Math.min(limit, chars.length - 1); i > 0; i--) {
    if (!SPACE.test(chars[i]!) || SPACE.test(chars[i - 1]!)) continue;
    any ??= i;
    // The piece's last few graphemes say how it ends; a marker alone is short.
    const end = chars.slice(Math.max(0, i - 6), i).join("");
    const alone = i <= 8 && MARKER.test(chars.slice(0, i).join("").trim());
    let next = i + 1;
    while (next < chars.length && SPACE.test(chars[next]!)) next++;
    const stranded = CLOSING.test(chars[next] ?? "") || OPENING.test(end) || alone;
    if (stranded) continue;
    clean ??= i;
    if (i * 2 < limit) break;
    if (SENTENCE_END.test(end)) sentence = i;
    else if (clause === undefined && CLAUSE_END.test(end)) clause = i;
    if (sentence !== undefined) break;
  }
  return sentence ?? clause ?? clean ?? any;
}

/** Whether `text` shows any of the secret values (compared case-insensitively). */
export function revealsSecret(text: string, secrets: ReadonlySet<string>): boolean {
  const lower = text.toLowerCase();
  for (const secret of secrets) if (secret.length >= 3 && lower.includes(secret.toLowerCase())) return true;
  return false;
}

/** The replies for a command's answer. */
export function route(
  parts: readonly Part[],
  options: { isPrivate: boolean; platform: TargetPlatform; locale: Locale; secrets: ReadonlySet<string>; replyTo?: unknown },
): Reply[] {
  const publicParts: string[] = [];
  const privateParts: string[] = [];
  for (const part of parts) {
    const isPublic = !options.isPrivate && !part.private && !revealsSecret(part.text, options.secrets);
    (isPublic ? publicParts : privateParts).push(part.text);
  }
  const replies: Reply[] = [];
  const add = (visibility: Visibility, kind: Reply["kind"], text: string) => {
    for (const piece of splitText(text, REPLY_LIMITS[options.platform][visibility])) {
      replies.push({ visibility, kind, text: piece, ...(options.replyTo !== undefined ? { replyTo: options.replyTo } : {}) });
    }
  };
  if (publicParts.length) add("public", "answer", publicParts.join("\n\n"));
  if (privateParts.length && !options.isPrivate) add("public", "notice", options.locale.m.sentPrivately(options.platform));
  if (privateParts.length) add("private", "answer", privateParts.join("\n\n"));
  return replies;
}
