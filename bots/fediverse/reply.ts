/**
 * A reply as the fediverse gets it: plain text from the conversation engine
 * → numbered pieces short enough for Mastodon to show whole (500
 * characters, mention and number included) → HTML with the sender's mention
 * first, paragraphs, line breaks and links.
 */
import { splitText } from "../../src/conversation/privacy.ts";

/** Mastodon's own post limit: a note no longer than this is never folded. */
export const NOTE_LIMIT = 500;

export interface Recipient {
  /** Actor URI. */
  id: string;
  /** Profile page, for the mention link (falls back to the actor URI). */
  url?: string | null;
  /** `user@domain`, or null when unknown. */
  acct: string | null;
  /** preferredUsername, for the mention when the acct is unknown. */
  username?: string | null;
}

export function mentionName(recipient: Recipient): string {
  if (recipient.acct) return `@${recipient.acct}`;
  const host = new URL(recipient.id).host;
  return `@${recipient.username ?? "user"}@${host}`;
}

const escapeHtml = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

/** One line of text → HTML, links made clickable. */
function lineToHtml(line: string): string {
  let out = "";
  let last = 0;
  for (const match of line.matchAll(URL_PATTERN)) {
    const url = match[0];
    out += escapeHtml(line.slice(last, match.index));
    out += `<a href="${escapeHtml(url)}" rel="nofollow noopener noreferrer" target="_blank">${escapeHtml(url)}</a>`;
    last = match.index + url.length;
  }
  return out + escapeHtml(line.slice(last));
}

/** A mention as Mastodon writes it: a link to the profile showing `@user`. */
export function mentionHtml(recipient: Recipient): string {
  const user = mentionName(recipient).slice(1).split("@")[0]!;
  return `<span class="h-card" translate="no"><a href="${escapeHtml(recipient.url ?? recipient.id)}" class="u-url mention">@<span>${escapeHtml(user)}</span></a></span>`;
}

/** Text → paragraphs (blank lines) and line breaks, prefixed by the mention. */
export function toHtml(text: string, recipient: Recipient): string {
  const paragraphs = text.split(/\n{2,}/).map((p) => p.split("\n").map(lineToHtml).join("<br>"));
  paragraphs[0] = `${mentionHtml(recipient)} ${paragraphs[0] ?? ""}`;
  return paragraphs.map((p) => `<p>${p}</p>`).join("");
}

/** Public text → one paragraph, each `@acct` of `named` a mention link (whole accts only: not `@bob@x.org` in `@bob@x.org.uk`). */
export function announcementHtml(text: string, named: readonly Recipient[]): string {
  let html = escapeHtml(text);
  for (const person of named) {
    if (!person.acct) continue;
    const acct = escapeHtml(`@${person.acct}`).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    html = html.replace(new RegExp(`${acct}(?![\\w.@-]*[\\w@-])`, "g"), () => mentionHtml(person));
  }
  return `<p>${html}</p>`;
}

/**
 * Splits replies into notes that fit `NOTE_LIMIT` with the mention; several
 * pieces are numbered "(1/3)". Returns the plain text of each note (mention
 * not included).
 */
export function splitForNotes(texts: readonly string[], recipient: Recipient, limit = NOTE_LIMIT): string[] {
  const mention = [...mentionName(recipient)].length + 1;
  const whole = texts.flatMap((t) => splitText(t, limit - mention));
  if (whole.length <= 1) return whole;
  // Room for "\n(12/12)", sized for the count: the room taken can make more
  // pieces (lines that fitted no longer do), so again until the digits hold.
  let count = whole.length + 1;
  for (;;) {
    const marker = ` (${count}/${count})`.length + 1;
    const pieces = texts.flatMap((t) => splitText(t, limit - mention - marker));
    if (String(pieces.length).length <= String(count).length) return pieces.map((p, i) => `${p}\n(${i + 1}/${pieces.length})`);
    count = pieces.length;
  }
}
