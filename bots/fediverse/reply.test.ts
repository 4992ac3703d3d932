import { describe, expect, it } from "vitest";
import { announcementHtml, NOTE_LIMIT, splitForNotes, toHtml } from "./reply.ts";

const alice = { id: "https://social.example/users/alice", url: "https://social.example/@alice", acct: "alice@example.org" };

describe("replies as notes", () => {
  it("puts the mention first, paragraphs, line breaks and links in HTML", () => {
    const html = toHtml("Hello <you> & all\nsee https://x.example/a?b=1&c=2.\n\nbye", alice);
    expect(html).toBe(
      '<p><span class="h-card" translate="no"><a href="https://social.example/@alice" class="u-url mention">@<span>alice</span></a></span> ' +
        'Hello &lt;you&gt; &amp; all<br>see <a href="https://x.example/a?b=1&amp;c=2" rel="nofollow noopener noreferrer" target="_blank">https://x.example/a?b=1&amp;c=2</a>.</p><p>bye</p>',
    );
  });

  it("keeps a short answer whole and unnumbered", () => {
    expect(splitForNotes(["short"], alice)).toEqual(["short"]);
  });

  it("splits a long answer into numbered notes Mastodon shows whole", () => {
    const lines = Array.from({ length: 60 }, (_, i) => `line ${i} ${"é".repeat(20)}`);
    const pieces = splitForNotes([lines.join("\n")], alice);
    expect(pieces.length).toBeGreaterThan(2);
    pieces.forEach((p, i) => {
      expect(p.endsWith(`(${i + 1}/${pieces.length})`)).toBe(true);
      expect([...`@${alice.acct} ${p}`].length).toBeLessThanOrEqual(NOTE_LIMIT);
    });
    expect(pieces.map((p) => p.replace(/\n\(\d+\/\d+\)$/, "")).join("\n")).toBe(lines.join("\n"));
  });

  it("keeps numbered notes within the limit when numbering them makes more of them", () => {
    // Eight lines that each fill a note: with room kept for "(9/9)" each takes two, sixteen in all.
    const room = NOTE_LIMIT - [...`@${alice.acct} `].length;
    const line = (i: number) => `${i} ${"word ".repeat(room)}`.slice(0, room).trim();
    const pieces = splitForNotes([Array.from({ length: 8 }, (_, i) => line(i)).join("\n")], alice);
    expect(pieces.length).toBeGreaterThan(9);
    pieces.forEach((p, i) => {
      expect(p.endsWith(`(${i + 1}/${pieces.length})`)).toBe(true);
      expect([...`@${alice.acct} ${p}`].length).toBeLessThanOrEqual(NOTE_LIMIT);
    });
  });

  it("links the accts an announcement names, whole accts only, and escapes the rest", () => {
    const bob = { id: "https://x.org/users/bob", acct: "bob@x.org" };
    const html = announcementHtml("Welcome @bob@x.org, not @bob@x.org.uk <b>!</b> Bye @bob@x.org.", [bob]);
    const link = '<span class="h-card" translate="no"><a href="https://x.org/users/bob" class="u-url mention">@<span>bob</span></a></span>';
    expect(html).toBe(`<p>Welcome ${link}, not @bob@x.org.uk &lt;b&gt;!&lt;/b&gt; Bye ${link}.</p>`);
  });
});
