/**
 * Text as Bluesky measures it: in graphemes. Splitting long answers into
 * pieces that fit a post (300) or a chat message (1,000), at line breaks,
 * else at spaces, else anywhere.
 */
const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

export const POST_LIMIT = 300;
export const CHAT_LIMIT = 1000;

export { graphemeCount } from "../../src/conversation/privacy.ts";

function graphemes(text: string): string[] {
  return Array.from(segmenter.segment(text), (s) => s.segment);
}

/** Pieces of at most `limit` graphemes, in order; nothing dropped but the whitespace at the cuts. */
export function splitGraphemes(text: string, limit: number): string[] {
  const pieces: string[] = [];
  let rest = graphemes(text.trim());
  while (rest.length > limit) {
    const window = rest.slice(0, limit + 1);
    let cut = window.lastIndexOf("\n");
    if (cut < limit / 3) cut = window.lastIndexOf(" ");
    if (cut < limit / 3) cut = limit;
    pieces.push(rest.slice(0, cut).join("").trim());
    rest = graphemes(rest.slice(cut).join("").trim());
  }
  const last = rest.join("").trim();
  if (last) pieces.push(last);
  return pieces.filter((p) => p !== "");
}
