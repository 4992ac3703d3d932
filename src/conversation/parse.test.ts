import { describe, expect, it } from "vitest";
import { cleanText, commandWord, fold, parseMessage } from "./parse.ts";
import { TEST_BOT } from "./testing.ts";

const fedi = (html: string) => parseMessage({ html }, TEST_BOT, "fediverse");
const bsky = (text: string) => parseMessage({ text }, TEST_BOT, "bluesky");

describe("parsing fediverse HTML", () => {
  it("drops Mastodon's h-card mention of the bot", () => {
    const html =
      '<p><span class="h-card" translate="no"><a href="https://bot.example/@reconnexion" class="u-url mention">@<span>reconnexion</span></a></span> aide</p>';
    expect(fedi(html)).toEqual({ text: "aide", tokens: ["aide"] });
  });

  it("drops Pleroma's and GoToSocial's forms, wherever the mention stands", () => {
    const pleroma =
      '<span class="h-card"><a class="u-url mention" data-user="9x" href="https://bot.example/users/reconnexion" rel="ugc">@<span>reconnexion</span></a></span> list bluesky 2';
    expect(fedi(pleroma).tokens).toEqual(["list", "bluesky", "2"]);
    const gts =
      '<p>status please <span class="h-card"><a href="https://bot.example/@reconnexion" class="u-url mention" rel="nofollow noreferrer noopener" target="_blank">@<span>reconnexion</span></a></span></p>';
    expect(fedi(gts).tokens).toEqual(["status", "please"]);
  });

  it("drops Misskey's full-acct mention and keeps other people's mentions", () => {
    const misskey =
      '<p><a href="https://bot.example/@reconnexion" class="u-url mention">@reconnexion@bot.example</a> ignore <a href="https://m.example/@Bob" class="u-url mention">@Bob@m.example</a></p>';
    expect(fedi(misskey).tokens).toEqual(["ignore", "@Bob@m.example"]);
  });

  it("keeps a mention of someone else who happens to share the bot's name, as that account", () => {
    const html =
      '<p><a href="https://other.example/@reconnexion" class="u-url mention">@<span>reconnexion</span></a> hi</p>';
    expect(fedi(html).tokens).toEqual(["@reconnexion@other.example", "hi"]);
  });

  it("gives a mention shown by its short name (Mastodon, Pleroma, GoToSocial) as the whole account", () => {
    const bob = '<span class="h-card"><a href="https://m.example/@bob" class="u-url mention">@<span>bob</span></a></span>';
    const mention = `<p><span class="h-card"><a href="https://bot.example/@reconnexion" class="u-url mention">@<span>reconnexion</span></a></span> ignore ${bob}</p>`;
    // The note's Mention tags name the account: its domain may differ from its server's web host.
    const split = '<span class="h-card"><a href="https://social.example.com/@bob" class="u-url mention">@<span>bob</span></a></span>';
    expect(parseMessage({ html: `<p>link ${split}</p>`, mentions: ["@bob@example.com", "@reconnexion@bot.example"] }, TEST_BOT, "fediverse").tokens).toEqual(["link", "@bob@example.com"]);
    // Without tags, the link's host.
    expect(fedi(mention).tokens).toEqual(["ignore", "@bob@m.example"]);
    // Two accounts of that name among the tags: the one on the link's host.
    expect(parseMessage({ html: mention, mentions: ["@bob@m.example", "@bob@other.example"] }, TEST_BOT, "fediverse").tokens).toEqual(["ignore", "@bob@m.example"]);
    // A plain link is left as it is.
    expect(fedi('<p>see <a href="https://example.org/page">example.org/page</a></p>').tokens).toEqual(["see", "example.org/page"]);
  });

  it("decodes entities, keeps line breaks, drops scripts and styles", () => {
    const html = '<p>link&#32;ABCD&amp;<br>second</p><script>alert("x")</script><style>p{}</style><p>third &lt;b&gt;</p>';
    const parsed = fedi(html);
    expect(parsed.text).toBe("link ABCD&\nsecond\nthird <b>");
    expect(parsed.text).not.toContain("alert");
  });

  it("survives broken HTML", () => {
    expect(fedi("<p><a href='x'>status").tokens).toEqual(["status"]);
    expect(fedi("<<<>>>").tokens).toEqual(["<<<>>>"]);
  });
});

describe("parsing Bluesky text", () => {
  it("drops the bot's handle wherever it stands, with trailing punctuation", () => {
    expect(bsky("@reconnexion.bot.example status").tokens).toEqual(["status"]);
    expect(bsky("Hey @Reconnexion.Bot.Example: liste").tokens).toEqual(["Hey", "liste"]);
    // In brackets or quotes, as people write an aside or copy a handle.
    expect(bsky("(@reconnexion.bot.example) help").tokens).toEqual(["help"]);
    expect(bsky("« @reconnexion.bot.example » status").tokens).toEqual(["status"]);
    expect(bsky("[@reconnexion.bot.example], aide").tokens).toEqual(["aide"]);
  });

  it("only a mention leaves nothing", () => {
    expect(bsky("@reconnexion.bot.example").tokens).toEqual([]);
    expect(bsky("   ").tokens).toEqual([]);
  });
});

describe("tokens as people copy and punctuate them", () => {
  it("drops the quotes a command was copied with: backticks, straight, curly and French quotes", () => {
    expect(bsky("`link 2DX6K3WV`").tokens).toEqual(["link", "2DX6K3WV"]);
    expect(bsky("`forget`").tokens).toEqual(["forget"]);
    expect(bsky('"status"').tokens).toEqual(["status"]);
    expect(bsky("'help'").tokens).toEqual(["help"]);
    expect(bsky("“aide” ‘statut’").tokens).toEqual(["aide", "statut"]);
    expect(bsky("«lier ABCD-EFGH»").tokens).toEqual(["lier", "ABCD-EFGH"]);
    expect(bsky("« lier ABCD-EFGH »").tokens).toEqual(["lier", "ABCD-EFGH"]);
    expect(fedi("<p>`link 2DX6K3WV`.</p>").tokens).toEqual(["link", "2DX6K3WV"]);
    // Inside a word, an apostrophe stays.
    expect(bsky("c'est aujourd’hui").tokens).toEqual(["c'est", "aujourd’hui"]);
  });

  it("drops trailing punctuation, and punctuation standing alone after a word (French puts a space before ! ? : ;)", () => {
    expect(bsky("notifications non !").tokens).toEqual(["notifications", "non"]);
    expect(bsky("langue en.").tokens).toEqual(["langue", "en"]);
    expect(bsky("liste bluesky 2 ?").tokens).toEqual(["liste", "bluesky", "2"]);
    expect(bsky("reconnect 5, please…").tokens).toEqual(["reconnect", "5", "please"]);
    expect(bsky("auto oui 👍").tokens).toEqual(["auto", "oui"]);
  });

  it("keeps a lone ? that stands for help, and what comes before the command for the engine to skip", () => {
    expect(bsky("?").tokens).toEqual(["?"]);
    expect(bsky("`?`").tokens).toEqual(["?"]);
    expect(bsky("@bob@m.example ?").tokens).toEqual(["@bob@m.example", "?"]);
    expect(bsky("👋 status").tokens).toEqual(["👋", "status"]);
    expect(fedi("<<<>>>").tokens).toEqual(["<<<>>>"]);
  });
});

describe("cleaning text", () => {
  it("removes zero-width and bidirectional characters", () => {
    expect(cleanText("he\u200Blp\u200D \u202Estatus\u202C \u2066x\u2069\uFEFF")).toBe("help status x");
    expect(cleanText("so\u00ADft")).toBe("soft");
  });

  it("reads blank-looking letters and symbols (Hangul fillers, the braille blank) as spaces, and drops invisible marks", () => {
    for (const blank of ["\u3164", "\uFFA0", "\u115F", "\u1160", "\u2800"]) {
      expect(cleanText(`${blank} status${blank}`), blank.codePointAt(0)!.toString(16)).toBe(" status ");
      expect(bsky(`${blank}aide`).tokens).toEqual(["aide"]);
    }
    expect(cleanText("st\u034Fat\u17B4us")).toBe("status");
  });

  it("folds compatibility forms and keeps emoji", () => {
    expect(cleanText("ｈｅｌｐ")).toBe("help");
    expect(cleanText("hi 👋🏽")).toBe("hi 👋🏽");
  });

  it("keeps argument case", () => {
    expect(bsky("LIER AbCd-EfGh").tokens).toEqual(["LIER", "AbCd-EfGh"]);
  });
});

describe("folding words", () => {
  it("ignores case, accents and ligatures", () => {
    expect(fold("DÉLIER")).toBe("delier");
    expect(fold("Désignorer")).toBe("designorer");
    expect(fold("ŒUVRE")).toBe("oeuvre");
  });

  it("drops trailing punctuation from command words but keeps a lone ?", () => {
    expect(commandWord("Aide!")).toBe("aide");
    expect(commandWord("status.")).toBe("status");
    expect(commandWord("¿Ayuda?")).toBe("ayuda");
    expect(commandWord("?")).toBe("?");
    expect(commandWord("??")).toBe("?");
  });

  it("drops the quotes around a command word", () => {
    expect(commandWord("`status`")).toBe("status");
    expect(commandWord("«Aide»")).toBe("aide");
    expect(commandWord("“en”.")).toBe("en");
    expect(commandWord("`?`")).toBe("?");
  });
});
