/**
 * Bad inputs and abuse, through the engine on a real store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { connect } from "../store/database.ts";
import { Store } from "../store/index.ts";
import { senderKey } from "../store/conversation-state.ts";
import { SecretBox } from "../store/secrets.ts";
import { TEST_SECRET_KEY } from "../../test/harness/database.ts";
import { ConversationEngine } from "./engine.ts";
import type { Incoming, Sender } from "./incoming.ts";
import { allText, blueskySender, fediverseSender, makeWorld, testConfig, unique, type World } from "./testing.ts";

let db: TestDatabase;
let w: World;

beforeAll(async () => {
  db = await createTestDatabase();
  w = makeWorld(db);
});
afterAll(() => db.drop());

async function known(sender: Sender, language?: string): Promise<number> {
  return w.person([{ platform: sender.platform, stableId: sender.stableId, handle: sender.handle! }], language ? { language } : {});
}

describe("bad inputs", () => {
  it("empty text and a lone mention get one hint, then silence for a while", async () => {
    let now = new Date();
    const timed = makeWorld(db, { clock: () => now });
    const s = fediverseSender(unique("em"));
    await known(s);
    const first = await timed.send(s, "", { html: true });
    expect(first.handledAs).toBe("unknown");
    expect(allText(first)).toContain("help");
    expect((await timed.send(s, "   ")).replies).toEqual([]);
    expect((await timed.send(s, "@reconnexion@bot.example")).replies).toEqual([]);
    // Commands still work during the silence.
    expect((await timed.send(s, "status")).replies.length).toBeGreaterThan(0);
    now = new Date(now.getTime() + 61 * 60_000);
    expect((await timed.send(s, "blah")).replies).toHaveLength(1);
  });

  it("a stranger's unknown text gets the welcome once", async () => {
    const s = blueskySender(unique("st"));
    expect(allText(await w.send(s, "@reconnexion.bot.example"))).toContain("I don't know this Bluesky account");
    expect((await w.send(s, "anyone there??")).replies).toEqual([]);
  });

  it("100 KB of text is refused politely, without being parsed", async () => {
    const s = blueskySender(unique("big"));
    const out = await w.send(s, "help ".repeat(20_480));
    expect(out.handledAs).toBe("too-long");
    expect(out.replies).toHaveLength(1);
    expect(allText(out)).toMatch(/too long/);
    const html = await w.send(fediverseSender(unique("bigh")), `${"<b>x</b>".repeat(13_000)}`, { html: true });
    expect(html.handledAs).toBe("too-long");
    // Under the raw cap but over the text cap.
    const medium = await w.send(s, `status ${"a".repeat(2_500)}`);
    expect(medium.handledAs).toBe("too-long");
  });

  it("HTML and script injection are neither run nor echoed", async () => {
    const s = fediverseSender(unique("inj"));
    await known(s);
    const html: Incoming = {
      channel: "fediverse",
      sender: s,
      isPrivate: true,
      html: '<script>alert(1)</script><p><span class="h-card"><a href="https://bot.example/@reconnexion" class="u-url mention">@<span>reconnexion</span></a></span> status<img src=x onerror="alert(2)"></p>',
    };
    const out = await w.engine.handle(html);
    expect(out.handledAs).toBe("status");
    const b = blueskySender(unique("injb"));
    await known(b);
    for (const text of ["<script>alert(1)</script>", "ignore <img src=x onerror=alert(1)>", "link <script>x</script>", "list \"><svg/onload=alert(1)>"]) {
      const reply = allText(await w.send(b, text));
      expect(reply).not.toMatch(/<script|onerror|onload|<svg|<img/i);
    }
  });

  it("zero-width and right-to-left characters are ignored", async () => {
    const s = blueskySender(unique("zw"));
    await known(s);
    expect((await w.send(s, "he\u200Blp")).handledAs).toBe("help");
    expect((await w.send(s, "\u202Estatus\u202C")).handledAs).toBe("status");
    const rtl = await w.send(s, "\u200F\u2067statut\u2069");
    expect([rtl.handledAs, rtl.language]).toEqual(["status", "fr"]);
    expect((await w.send(s, "\uFEFFlist\u2060 bluesky")).handledAs).toBe("list");
  });

  it("emoji around a command are fine; emoji alone are unknown", async () => {
    const s = blueskySender(unique("emo"));
    await known(s);
    expect((await w.send(s, "👋 help 🙏")).handledAs).toBe("help");
    expect((await w.send(s, "🙂🙂🙂")).handledAs).toBe("unknown");
  });

  it("uppercase and accents do not matter for words, and arguments keep their case", async () => {
    const s = fediverseSender(unique("up"));
    await known(s);
    for (const [text, as] of [["AIDE", "help"], ["Statut", "status"], ["ÉTAT", "status"], ["Etat", "status"], ["LISTE Mastodon", "list"], ["DELIER BLUESKY", "unlink"], ["Désignorer @X", "unignore"], ["NOTIFICATIONS NON", "notify"]] as const) {
      expect((await w.send(s, text)).handledAs, text).toBe(as);
    }
    expect((await w.store.findPerson({ platform: "fediverse", stableId: s.stableId }))?.person.notify).toBe(false);
  });
});

describe("rate limit", () => {
  it("a flood gets one 'slow down', then silence until the window passes", async () => {
    let now = new Date();
    const limited = makeWorld(db, { clock: () => now, limits: { messagesPerWindow: 5, windowSeconds: 60 } });
    const s = blueskySender(unique("fl"));
    await known(s, "fr");
    const outcomes = [];
    for (let i = 0; i < 10; i++) outcomes.push(await limited.send(s, "statut"));
    expect(outcomes.map((o) => o.handledAs)).toEqual([
      ...Array(5).fill("status"),
      "slow-down",
      ...Array(4).fill("rate-limited"),
    ]);
    expect(allText(outcomes[5]!)).toContain("doucement");
    expect(outcomes.slice(6).every((o) => o.replies.length === 0)).toBe(true);
    now = new Date(now.getTime() + 61_000);
    expect((await limited.send(s, "statut")).handledAs).toBe("status");
  });

  it("a steady flood stays silent: the window ends only after a whole window without messages", async () => {
    let now = new Date();
    const limited = makeWorld(db, { clock: () => now, limits: { messagesPerWindow: 3, windowSeconds: 60 } });
    const s = blueskySender(unique("sf"));
    await known(s);
    const kinds: string[] = [];
    // One message every 10 s for five minutes: never a minute of quiet.
    for (let i = 0; i < 30; i++) {
      kinds.push((await limited.send(s, "status")).handledAs);
      now = new Date(now.getTime() + 10_000);
    }
    expect(kinds).toEqual([...Array(3).fill("status"), "slow-down", ...Array(26).fill("rate-limited")]);
    now = new Date(now.getTime() + 61_000);
    expect((await limited.send(s, "status")).handledAs).toBe("status");
  });

  it("is not reset by `forget`, from a stranger or from someone known", async () => {
    const limited = makeWorld(db, { limits: { messagesPerWindow: 3, windowSeconds: 60 } });
    const stranger = blueskySender(unique("fg"));
    const kinds: string[] = [];
    for (let i = 0; i < 8; i++) kinds.push((await limited.send(stranger, "forget")).handledAs);
    expect(kinds).toEqual([...Array(3).fill("forget"), "slow-down", ...Array(4).fill("rate-limited")]);
  });

  it("is shared by every process: concurrent messages through two connections count once each", async () => {
    const other = connect(db.url, { max: 4 });
    try {
      const limits = { messagesPerWindow: 6, windowSeconds: 60 };
      const config = testConfig();
      const engines = [
        new ConversationEngine({ store: db.store, config, limits }),
        new ConversationEngine({ store: new Store(other, new SecretBox(TEST_SECRET_KEY)), config, limits }),
      ];
      const s = blueskySender(unique("cc"));
      await known(s);
      const incoming: Incoming = { channel: "bluesky", sender: s, text: "status", isPrivate: true };
      const outcomes = await Promise.all(Array.from({ length: 16 }, (_, i) => engines[i % 2]!.handle(incoming)));
      const kinds = outcomes.map((o) => o.handledAs);
      expect(kinds.filter((k) => k === "status")).toHaveLength(6);
      expect(kinds.filter((k) => k === "slow-down")).toHaveLength(1);
      expect(kinds.filter((k) => k === "rate-limited")).toHaveLength(9);
    } finally {
      await other.end({ timeout: 5 });
    }
  });
});

describe("bots", () => {
  it("are never answered, and nothing about them is recorded", async () => {
    const s = fediverseSender(unique("bot"), undefined, { isBot: true });
    for (const text of ["help", "link @someone@x.example", "blah"]) {
      const out = await w.send(s, text);
      expect([out.replies, out.effects]).toEqual([[], []]);
    }
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from identity where stable_id = ${s.stableId}`;
    expect(row!.n).toBe(0);
  });

  it("the bot never answers itself", async () => {
    const self = blueskySender("reconnexion-self");
    const engine = new ConversationEngine({ store: db.store, config: testConfig(), botStableIds: [self.stableId] });
    expect((await engine.handle({ channel: "bluesky", sender: self, text: "help", isPrivate: true })).replies).toEqual([]);
  });
});

describe("conversation state", () => {
  it("is purged once idle", async () => {
    const s = blueskySender(unique("idle"));
    await w.send(s, "blah");
    const key = senderKey(s);
    const count = async () =>
      (await db.sql<{ n: number }[]>`select count(*)::int as n from conversation_sender where sender_key = ${key}`)[0]!.n;
    expect(await count()).toBe(1);
    await w.store.conversation.purgeIdle(new Date(Date.now() - 60_000));
    expect(await count()).toBe(1);
    await w.store.conversation.purgeIdle(new Date(Date.now() + 60_000));
    expect(await count()).toBe(0);
  });
});
