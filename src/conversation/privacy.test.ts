/**
 * No public reply of any command carries private data: matched handles and
 * ids, codes, counts of the person's graph, the person's own other accounts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pino } from "pino";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { Reconnector } from "../reconnect/reconnector.ts";
import { say, tell } from "./context.ts";
import { LOCALES } from "./i18n/index.ts";
import type { Outcome, Sender } from "./incoming.ts";
import { graphemeCount, REPLY_LIMITS, route, splitText } from "./privacy.ts";
import { blueskySender, fediverseSender, makeWorld, testConfig, unique, type World } from "./testing.ts";

let db: TestDatabase;
let w: World;
let reconnect: Reconnector;
let nextX = 3_000_000;

beforeAll(async () => {
  db = await createTestDatabase();
  const config = testConfig();
  // The real job queue, enqueuing only: `reconnect` answers with private one-time links.
  reconnect = Reconnector.enqueueOnly({
    store: db.store,
    sql: db.sql,
    databaseUrl: db.url,
    config,
    log: pino({ level: "silent" }),
  });
  await reconnect.start();
  w = makeWorld(db, { config, reconnect });
});
afterAll(async () => {
  await reconnect.stop();
  await db.drop();
});

const BLUESKY_MATCHES = 13;
const FEDIVERSE_MATCHES = 11;

/** A person with 13 matches on Bluesky and 11 on Mastodon; returns every private value. */
async function richPerson() {
  const name = unique("rich");
  const bsky = blueskySender(name);
  const fedi = fediverseSender(name);
  const x = String(nextX++);
  const personId = await w.person([
    { platform: "x", stableId: x, handle: `${name}_x` },
    { platform: "bluesky", stableId: bsky.stableId, handle: bsky.handle! },
    { platform: "fediverse", stableId: fedi.stableId, handle: fedi.handle! },
  ]);
  const secrets = new Set<string>([bsky.handle!, fedi.handle!, `${name}_x`, bsky.stableId, fedi.stableId]);
  const targets: string[] = [];
  for (let i = 0; i < Math.max(BLUESKY_MATCHES, FEDIVERSE_MATCHES); i++) {
    const t = unique("tgt");
    const tx = String(nextX++);
    const ids: Parameters<World["person"]>[0] = [{ platform: "x", stableId: tx, handle: `${t}_x` }];
    if (i < BLUESKY_MATCHES) ids.push({ platform: "bluesky", stableId: `did:plc:${t}`, handle: `${t}.test` });
    if (i < FEDIVERSE_MATCHES) ids.push({ platform: "fediverse", stableId: `https://t.example/users/${t}`, handle: `${t}@t.example` });
    await w.person(ids);
    await w.follow(x, tx);
    for (const s of [`${t}_x`, `${t}.test`, `did:plc:${t}`, `${t}@t.example`, `https://t.example/users/${t}`]) secrets.add(s);
    targets.push(t);
  }
  await w.store.matches.refreshForFollowers([personId]);
  return { personId, bsky, fedi, secrets, targets };
}

const SCRIPT = {
  en: (t: string) => [
    "help", "?", "status", "list", "list mastodon", "list bluesky 2", "list banana", `ignore @${t}.test`, `unignore @${t}.test`,
    `ignore @${t}@t.example`, "ignore", `link @${unique("new")}@z.example`, `link @${unique("nb")}.test`, "link", "notify off",
    "notify on", "notify", "language en", "language", "reconnect", "reconnect 2", "reconnect bluesky", `reconnect @${t}.test`,
    "reconnect banana", "auto on", "auto off", "auto", "list failed", "stop", "blah blah", "forget", "unlink x",
  ],
  fr: (t: string) => [
    "aide", "bonjour", "statut", "liste", "liste mastodon", "liste bluesky 2", "liste banane", `ignorer @${t}.test`,
    `désignorer @${t}.test`, `ignorer @${t}@t.example`, "ignorer", `lier @${unique("new")}@z.example`, `lier @${unique("nb")}.test`,
    "lier", "notifications non", "notifications oui", "notifications", "langue fr", "langue",
    "reconnecter", "reconnecter 2", "reconnecter bluesky", `reconnecter @${t}.test`, "reconnecter banane", "auto oui", "auto non",
    "liste échecs", "stop", "bla bla", "oublier", "délier x",
  ],
};

describe.each(["en", "fr"] as const)("public replies in %s", (lang) => {
  it.each(["bluesky", "fediverse"] as const)("from %s carry nothing private", async (platform) => {
    const p = await richPerson();
    const sender: Sender = platform === "bluesky" ? p.bsky : p.fedi;
    await w.store.people.updateSettings(p.personId, { language: lang });
    const outcomes: { text: string; outcome: Outcome }[] = [];
    // A code made in private, then posted in public.
    const { code } = await w.store.linkCodes.create(p.personId, {});
    p.secrets.add(code);
    for (const text of [...SCRIPT[lang](p.targets[0]!), `${lang === "fr" ? "lier" : "link"} ${code}`]) {
      outcomes.push({ text, outcome: await w.send(sender, text, { isPrivate: false, html: platform === "fediverse" }) });
    }
    const forgetWord = lang === "fr" ? "oublier confirmer" : "forget confirm";
    outcomes.push({ text: forgetWord, outcome: await w.send(sender, forgetWord, { isPrivate: false }) });
    expect(await w.store.people.get(p.personId)).toBeUndefined();

    let privateAnswers = 0;
    for (const { text, outcome } of outcomes) {
      for (const reply of outcome.replies) {
        if (reply.visibility === "private") {
          // Codes handed out privately are secrets too.
          for (const c of reply.text.match(/\b[2-9A-HJ-NP-Z]{8}\b/g) ?? []) p.secrets.add(c);
          privateAnswers++;
          continue;
        }
        expect(reply.text.length, text).toBeLessThanOrEqual(platform === "bluesky" ? 300 : 500);
        expect(reply.text, text).not.toMatch(new RegExp(`\\b(${BLUESKY_MATCHES}|${FEDIVERSE_MATCHES}|${BLUESKY_MATCHES + FEDIVERSE_MATCHES})\\b`));
      }
      // A private answer asked in public: a short public reply says it went by DM.
      if (outcome.replies.some((r) => r.visibility === "private")) {
        expect(outcome.replies.some((r) => r.visibility === "public" && r.kind === "notice"), text).toBe(true);
      }
    }
    expect(privateAnswers).toBeGreaterThan(8);
    const publicReplies = outcomes.flatMap(({ text, outcome }) =>
      outcome.replies.filter((r) => r.visibility === "public").map((r) => ({ text, reply: r.text.toLowerCase() })),
    );
    expect(publicReplies.length).toBeGreaterThan(SCRIPT.en("x").length);
    for (const { text, reply } of publicReplies) {
      expect(reply, `"${text}" shows a private link`).not.toMatch(/\/(connect|export)\//);
      for (const secret of p.secrets) expect(reply, `"${text}" leaks ${secret}`).not.toContain(secret.toLowerCase());
    }
  });
});

describe("routing", () => {
  const en = LOCALES.en!;

  it("sends a piece marked public privately when it shows a declared secret", () => {
    const replies = route([say("your code is ABCDEFGH"), say("hello")], {
      isPrivate: false,
      platform: "bluesky",
      locale: en,
      secrets: new Set(["ABCDEFGH"]),
    });
    expect(replies.map((r) => [r.visibility, r.kind, r.text])).toEqual([
      ["public", "answer", "hello"],
      ["public", "notice", en.m.sentPrivately("bluesky")],
      ["private", "answer", "your code is ABCDEFGH"],
    ]);
  });

  it("keeps everything private in a private conversation", () => {
    const replies = route([say("a"), tell("b")], { isPrivate: true, platform: "fediverse", locale: en, secrets: new Set(), replyTo: 7 });
    expect(replies).toEqual([{ visibility: "private", kind: "answer", text: "a\n\nb", replyTo: 7 }]);
  });

  it("splits long answers at line breaks to fit each platform", () => {
    const text = Array.from({ length: 40 }, (_, i) => `${i}. @someone-with-a-long-handle-${i}.bsky.social — to follow`).join("\n");
    const pieces = splitText(text, REPLY_LIMITS.bluesky.private);
    expect(pieces.length).toBeGreaterThan(1);
    expect(pieces.every((p) => p.length <= 1000)).toBe(true);
    expect(pieces.join("\n")).toBe(text);
    expect(splitText("x".repeat(650), 300).map((p) => p.length)).toEqual([300, 300, 50]);
    expect(splitText("👩‍👩‍👧".repeat(5), 2)).toEqual(["👩‍👩‍👧👩‍👩‍👧", "👩‍👩‍👧👩‍👩‍👧", "👩‍👩‍👧"]);
    expect(splitText("e\u0301".repeat(5), 2)).toEqual(["e\u0301e\u0301", "e\u0301e\u0301", "e\u0301"]);
  });

  it("breaks an over-long line between words, at a sentence's or clause's end when there is one near the limit", () => {
    expect(splitText("aaaa bbbb cccc dddd", 12)).toEqual(["aaaa bbbb", "cccc dddd"]);
    expect(splitText("One two. Three four five", 16)).toEqual(["One two.", "Three four five"]);
    expect(splitText("Some words here, more words after", 24)).toEqual(["Some words here,", "more words after"]);
    // A boundary far before the limit is not worth a short piece.
    expect(splitText("Hi. aaaa bbbb cccc dddd eeee", 20)).toEqual(["Hi. aaaa bbbb cccc", "dddd eeee"]);
    // A word longer than the limit is cut: nothing else fits.
    expect(splitText(`ab ${"x".repeat(25)} cd`, 10)).toEqual(["ab", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx cd"]);
  });

  it("keeps links, list numbers and French punctuation with their words", () => {
    const url = "https://bot.example/archive/AbCdEfGhIjKlMnOpQrStUvWxYz012345";
    for (const limit of [60, 70, 80]) {
      const text = `Upload it here: ${url} within a day.`;
      const pieces = splitText(text, limit);
      expect(pieces.filter((p) => p.includes(url)), `${limit}`).toHaveLength(1);
      expect(pieces.join(" ")).toBe(text);
    }
    // No piece starts with the ! or : French sets apart, or ends with a bare « or list number.
    expect(splitText("Bonjour à vous tous !", 19)).toEqual(["Bonjour à vous", "tous !"]);
    expect(splitText("Bonjour à vous\u00a0!", 15)).toEqual(["Bonjour à", "vous\u00a0!"]);
    expect(splitText("Dites « bonjour » svp", 11)).toEqual(["Dites", "« bonjour »", "svp"]);
    expect(splitText("12. aaaaaaaaaa", 10)).toEqual(["12.", "aaaaaaaaaa"]);
    expect(splitText("12. aaaa bbbbbb", 10)).toEqual(["12. aaaa", "bbbbbb"]);
  });

  it("breaks between words by graphemes: emoji and combining accents count as one and are never split", () => {
    const text = `${"é\u0301".repeat(3)} 👩‍👩‍👧👩‍👩‍👧 ${"e\u0301".repeat(4)}`;
    const pieces = splitText(text, 6);
    expect(pieces).toEqual([`${"é\u0301".repeat(3)} 👩‍👩‍👧👩‍👩‍👧`, "e\u0301".repeat(4)]);
    expect(pieces.every((p) => graphemeCount(p) <= 6)).toBe(true);
  });

  it("cuts no word of the replies that need more than one public Bluesky post", () => {
    for (const locale of Object.values(LOCALES)) {
      for (const platform of ["bluesky", "fediverse"] as const) {
        const text = locale.m.welcome(platform);
        const pieces = splitText(text, REPLY_LIMITS.bluesky.public);
        expect(pieces.length, text).toBeGreaterThan(1);
        expect(pieces.every((p) => graphemeCount(p) <= REPLY_LIMITS.bluesky.public)).toBe(true);
        expect(pieces.join(" ")).toBe(text);
        for (const p of pieces.slice(0, -1)) expect(p, locale.code).toMatch(/[.,:;!?)`]$/);
      }
    }
  });

  it("counts graphemes as a segmenter does, on the short path for plain text too", () => {
    const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });
    const samples = [
      "", "Vous suiviez 1 234 comptes sur X ; 56 sont ici.", "« Déjà suivis » — l’état…", "tab\there",
      "e\u0301te\u0301", "a\u200db", "👋 salut", "🇫🇷", "日本語", "ﾊﾟ", "x\r\ny", "مرحبا\u200f", "1\ufe0f\u20e3",
    ];
    for (const text of samples) expect(graphemeCount(text), JSON.stringify(text)).toBe([...segmenter.segment(text)].length);
  });
});
