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

/** Splits a text into pieces of at most `limit` graphemes, at line breaks when it can. */
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
      const chars = graphemes(line);
      for (let i = 0; i < chars.length; i += limit) {
        current = chars.slice(i, i + limit).join("");
        size = Math.min(limit, chars.length - i);
        if (i + limit < chars.length) flush();
      }
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
