/**
 * Every command, in English and in French, through the engine on a real store.
 */
import { LOCALES } from "./i18n/index.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { allText, blueskySender, fediverseSender, makeWorld, privateText, publicText, unique, type World } from "./testing.ts";
import { senderKey } from "../store/conversation-state.ts";
import type { Sender } from "./incoming.ts";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { importArchive } from "../import/archive.ts";
import { localeFor } from "../reconnect/locale.ts";
import { writeArchiveFolder } from "../../test/harness/x-archive.ts";

let db: TestDatabase;
let w: World;
let nextX = 1_000_000;

beforeAll(async () => {
  db = await createTestDatabase();
  w = makeWorld(db);
});
afterAll(() => db.drop());

interface Registered {
  personId: number;
  bsky: Sender;
  fedi: Sender;
  targets: { bob: string; carol: string; carolFedi: string; dave: string };
}

/** A person on X, Bluesky and Mastodon who followed bob (Bluesky), carol (both) and dave (Mastodon) on X. */
async function registered(): Promise<Registered> {
  const name = unique("p");
  const bsky = blueskySender(name);
  const fedi = fediverseSender(name);
  const x = String(nextX++);
  const personId = await w.person([
    { platform: "x", stableId: x, handle: `${name}_x` },
    { platform: "bluesky", stableId: bsky.stableId, handle: bsky.handle! },
    { platform: "fediverse", stableId: fedi.stableId, handle: fedi.handle! },
  ]);
  const t = { bob: unique("bob"), carol: unique("carol"), dave: unique("dave") };
  const bx = String(nextX++);
  const cx = String(nextX++);
  const dx = String(nextX++);
  await w.person([{ platform: "x", stableId: bx, handle: `${t.bob}_x` }, { platform: "bluesky", stableId: `did:plc:${t.bob}`, handle: `${t.bob}.test` }]);
  await w.person([
    { platform: "x", stableId: cx },
    { platform: "bluesky", stableId: `did:plc:${t.carol}`, handle: `${t.carol}.test` },
    { platform: "fediverse", stableId: `https://c.example/users/${t.carol}`, handle: `${t.carol}@c.example` },
  ]);
  await w.person([{ platform: "x", stableId: dx }, { platform: "fediverse", stableId: `https://d.example/users/${t.dave}`, handle: `${t.dave}@d.example` }]);
  for (const target of [bx, cx, dx]) await w.follow(x, target);
  await w.store.matches.refreshForFollowers([personId]);
  return {
    personId,
    bsky,
    fedi,
    targets: { bob: `${t.bob}.test`, carol: `${t.carol}.test`, carolFedi: `${t.carol}@c.example`, dave: `${t.dave}@d.example` },
  };
}

const LANGS = {
  en: {
    help: "help",
    status: "status",
    list: "list",
    listMastodon: "list mastodon",
    ignore: "ignore",
    unignore: "unignore",
    unlink: "unlink",
    notify: "notify",
    on: "on",
    off: "off",
    language: "language",
    forget: "forget",
    confirm: "confirm",
    marks: { intro: "I'm reconnexion", commands: "Commands:", accounts: "Your accounts:", usage: "Usage:", toFollow: "2 to follow", welcome: "I don't know this" },
  },
  fr: {
    help: "aide",
    status: "statut",
    list: "liste",
    listMastodon: "liste mastodon",
    ignore: "ignorer",
    unignore: "désignorer",
    unlink: "délier",
    notify: "notifications",
    on: "oui",
    off: "non",
    language: "langue",
    forget: "oublier",
    confirm: "confirmer",
    marks: { intro: "Je suis reconnexion", commands: "Commandes :", accounts: "Vos comptes :", usage: "Utilisation :", toFollow: "2 à suivre", welcome: "Je ne connais pas encore" },
  },
} as const;

describe.each(Object.entries(LANGS))("in %s", (lang, words) => {
  it("help says who the bot is, what it knows and every command", async () => {
    const r = await registered();
    const out = await w.send(r.bsky, words.help);
    expect(out.language).toBe(lang);
    expect(out.replies.every((x) => x.visibility === "private")).toBe(true);
    const text = allText(out);
    expect(text).toContain(words.marks.intro);
    expect(text).toContain(words.marks.commands);
    for (const w_ of [words.status, words.list, words.ignore, words.unlink, words.notify, words.language, words.forget, "stop"]) {
      expect(text).toContain(`• ${w_}`);
    }
    expect(text).toMatch(/\b2\b/); // two matches on each platform
  });

  it("help greets an unknown person and says how to become known", async () => {
    const out = await w.send(blueskySender(unique("stranger")), words.help);
    expect(allText(out)).toContain(words.marks.welcome);
    expect(allText(out)).toContain(lang === "fr" ? "lier <code>" : "link <code>");
  });

  it("status shows accounts, matches per platform and settings", async () => {
    const r = await registered();
    const out = await w.send(r.fedi, words.status);
    const text = privateText(out);
    expect(text).toContain(words.marks.accounts);
    expect(text).toContain(`@${r.bsky.handle}`);
    expect(text).toContain(`@${r.fedi.handle}`);
    expect(text).toContain(words.marks.toFollow);
  });

  it("archive gives a private one-time upload link; a stranger becomes a person with this account", async () => {
    const stranger = blueskySender(unique("uploader"));
    // The same word in both languages; the answer follows the saved or default language.
    const out = await w.send(stranger, "archive");
    expect(out.replies.every((x) => x.visibility === "private")).toBe(true);
    const url = /https?:\/\/\S+\/archive\/[A-Za-z0-9_-]{32}/.exec(allText(out))?.[0];
    expect(url).toBeDefined();
    expect(url!.startsWith(w.config.publicUrl.origin)).toBe(true);
    const identity = await w.store.identities.find({ platform: "bluesky", stableId: stranger.stableId });
    expect(identity?.verifiedBy).toBe("dm");
    const grant = await w.store.webLinks.peek(url!.split("/").pop()!, "archive");
    expect(grant).toMatchObject({ personId: identity!.personId, identityId: identity!.id });
    // A known person's link is for their own account, and asking twice makes no second person.
    if (lang === "fr") await w.send(stranger, "langue fr");
    const again = await w.send(stranger, "archive");
    expect(again.language).toBe(lang);
    expect(allText(again)).toMatch(/\/archive\//);
    expect((await w.store.identities.find({ platform: "bluesky", stableId: stranger.stableId }))?.personId).toBe(identity!.personId);
  });

  it("archive asked in public answers in private only", async () => {
    const r = await registered();
    const out = await w.send(r.fedi, "archive", { isPrivate: false, html: true });
    expect(publicText(out)).not.toMatch(/\/archive\//);
    expect(privateText(out)).toMatch(/\/archive\/[A-Za-z0-9_-]{32}/);
  });

  it("status from an unknown sender gets the welcome", async () => {
    const out = await w.send(fediverseSender(unique("nobody")), words.status);
    expect(allText(out)).toContain(words.marks.welcome);
  });

  it("list shows the matches on the platform written from, or the one named", async () => {
    const r = await registered();
    const bsky = privateText(await w.send(r.bsky, words.list));
    expect(bsky).toContain(`@${r.targets.bob}`);
    expect(bsky).toContain(`https://bsky.app/profile/${r.targets.carol}`);
    expect(bsky).not.toContain(r.targets.dave);
    const fedi = privateText(await w.send(r.bsky, words.listMastodon));
    expect(fedi).toContain(`@${r.targets.dave}`);
    expect(fedi).toContain(`@${r.targets.carolFedi}`);
    expect(fedi).not.toContain(r.targets.bob);
  });

  it("list tells a follow request a locked account has not accepted yet from a follow", async () => {
    const r = await registered();
    const dave = (await w.store.identities.find({ platform: "fediverse", handle: r.targets.dave }))!.personId;
    const { job } = await w.store.transaction((s) => s.reconnectJobs.open(r.personId, "fediverse", "all", [dave], null));
    await w.store.transaction((s) => s.reconnectJobs.record(job, [{ personId: dave, outcome: "requested" }]));
    const text = privateText(await w.send(r.bsky, words.listMastodon));
    expect(text).toContain(lang === "fr" ? "demande en attente" : "request pending");
  });

  it("list answers its usage to a bad argument", async () => {
    const r = await registered();
    const text = allText(await w.send(r.bsky, `${words.list} banana`));
    expect(text).toContain(`${words.marks.usage} ${words.list} [${lang === "fr" ? "échecs" : "failed"}] [bluesky|mastodon] [page]`);
  });

  it("ignore drops a match and unignore brings it back", async () => {
    const r = await registered();
    const ignored = await w.send(r.bsky, `${words.ignore} @${r.targets.bob}`);
    expect(privateText(ignored)).toContain(`@${r.targets.bob}`);
    expect(privateText(await w.send(r.bsky, words.list))).not.toContain(r.targets.bob);
    const back = await w.send(r.bsky, `${words.unignore} @${r.targets.bob}`);
    expect(privateText(back)).toContain(`@${r.targets.bob}`);
    expect(privateText(await w.send(r.bsky, words.list))).toContain(r.targets.bob);
    const again = await w.send(r.bsky, `${words.unignore} @${r.targets.bob}`);
    expect(allText(again)).toContain(lang === "fr" ? "n’était pas ignoré" : "was not ignored");
  });

  it("ignore refuses someone who is not a match, and answers its usage without a handle", async () => {
    const r = await registered();
    expect(allText(await w.send(r.bsky, `${words.ignore} @nobody-${lang}.test`))).toContain(`@nobody-${lang}.test`);
    expect(allText(await w.send(r.bsky, words.ignore))).toContain(words.marks.usage);
  });

  it("unlink detaches an account, never the last one the bots can write to; X goes with its follows", async () => {
    const r = await registered();
    expect(allText(await w.send(r.bsky, words.unlink))).toContain(words.marks.usage);
    const out = await w.send(r.bsky, `${words.unlink} mastodon`);
    expect(out.effects).toContainEqual({ type: "unlinked", personId: r.personId, platform: "fediverse" });
    const ids = await w.store.identities.listForPerson(r.personId);
    expect(ids.map((i) => i.platform).sort()).toEqual(["bluesky", "x"]);
    expect(allText(await w.send(r.bsky, `${words.unlink} mastodon`))).toMatch(lang === "fr" ? /aucun compte/ : /no Mastodon/);
    // Only X would be left: nobody could reach the person, nor could they ask to be forgotten.
    const lastReachable = await w.send(r.bsky, `${words.unlink} bluesky`);
    expect(allText(lastReachable)).toContain(words.forget);
    expect(lastReachable.effects).toEqual([]);
    expect((await w.store.identities.listForPerson(r.personId)).map((i) => i.platform).sort()).toEqual(["bluesky", "x"]);
    // X leaves with what it followed.
    const x = ids.find((i) => i.platform === "x")!.stableId!;
    expect((await w.store.db`select 1 from x_follow where follower = ${x}::bigint`).length).toBeGreaterThan(0);
    await w.send(r.bsky, `${words.unlink} x`);
    expect(await w.store.db`select 1 from x_follow where follower = ${x}::bigint`).toHaveLength(0);
    const last = await w.send(r.bsky, `${words.unlink} bluesky`);
    expect(allText(last)).toContain(words.forget);
    expect((await w.store.identities.listForPerson(r.personId)).length).toBe(1);
  });

  it("unlink stops the reconnection under way from that account; unlinking X, every one (their targets came from its follows)", async () => {
    const r = await registered();
    const bsky = await w.store.reconnectJobs.selectTargets(r.personId, "bluesky");
    const fedi = await w.store.reconnectJobs.selectTargets(r.personId, "fediverse");
    const open = (platform: "bluesky" | "fediverse", targets: number[]) =>
      w.store.transaction((s) => s.reconnectJobs.open(r.personId, platform, "all", targets, null));
    const { job: bskyJob } = await open("bluesky", bsky);
    const { job: fediJob } = await open("fediverse", fedi);
    const out = await w.send(r.bsky, `${words.unlink} mastodon`);
    expect(allText(out)).toMatch(lang === "fr" ? /reconnexion en cours .* arrêtée/ : /reconnection under way .* stopped/);
    expect(await w.store.reconnectJobs.get(fediJob.id)).toMatchObject({ state: "cancelled" });
    expect(await w.store.reconnectJobs.get(bskyJob.id)).toMatchObject({ state: "queued" });
    await w.send(r.bsky, `${words.unlink} x`);
    expect(await w.store.reconnectJobs.get(bskyJob.id)).toMatchObject({ state: "cancelled" });
    // Nothing under way: nothing said about it.
    const quiet = await registered();
    expect(allText(await w.send(quiet.bsky, `${words.unlink} mastodon`))).not.toMatch(/under way|en cours/);
  });

  it("ignore also takes the account out of reconnections under way, unless its follow is already in flight", async () => {
    const r = await registered();
    const bob = (await w.store.identities.find({ platform: "bluesky", handle: r.targets.bob }))!.personId;
    const carol = (await w.store.identities.find({ platform: "bluesky", handle: r.targets.carol }))!.personId;
    const { job } = await w.store.transaction((s) => s.reconnectJobs.open(r.personId, "bluesky", "all", [bob, carol], null));
    await w.store.reconnectJobs.markInFlight(job.id, [{ personId: carol, marker: "3kcarol" }]);
    await w.send(r.bsky, `${words.ignore} @${r.targets.bob}`);
    await w.send(r.bsky, `${words.ignore} @${r.targets.carol}`);
    // bob is no longer to follow; carol's follow may have landed, so the run still settles it.
    expect((await w.store.reconnectJobs.todo(job.id)).map((t) => t.personId)).toEqual([carol]);
    // Ignored, it stays so whatever the run records.
    await w.store.transaction((s) => s.reconnectJobs.record(job, [{ personId: carol, outcome: "followed" }]));
    expect((await w.store.conversation.matchStates(r.personId, carol)).find((s) => s.platform === "bluesky")?.state).toBe("ignored");
  });

  it("notify turns notifications off and on", async () => {
    const r = await registered();
    await w.send(r.bsky, `${words.notify} ${words.off}`);
    expect((await w.store.people.get(r.personId))?.notify).toBe(false);
    await w.send(r.bsky, `${words.notify} ${words.on}`);
    expect((await w.store.people.get(r.personId))?.notify).toBe(true);
    expect(allText(await w.send(r.bsky, `${words.notify} ${lang === "fr" ? "peut-être" : "maybe"}`))).toContain(words.marks.usage);
  });

  it("language saves the reply language, which then beats detection", async () => {
    const r = await registered();
    const other = lang === "fr" ? "en" : "fr";
    const out = await w.send(r.bsky, `${words.language} ${other}`);
    expect(out.language).toBe(other);
    expect((await w.store.people.get(r.personId))?.language).toBe(other);
    expect((await w.send(r.bsky, words.status)).language).toBe(other);
    const unknown = await w.send(r.bsky, `${words.language} klingon`);
    expect(allText(unknown)).toContain("en, fr");
  });

  it("stop means the bot never writes first again", async () => {
    const r = await registered();
    await w.store.people.updateSettings(r.personId, { autoReconnect: true });
    const out = await w.send(r.fedi, "STOP");
    expect(out.handledAs).toBe("stop");
    expect(await w.store.people.get(r.personId)).toMatchObject({ notify: false, autoReconnect: false, announceMe: false });
    expect(allText(out)).not.toContain("reconnection under way");
  });

  it("stop also cancels reconnections under way: no more follows, progress or summary", async () => {
    const r = await registered();
    const target = await w.person([{ platform: "bluesky", stableId: `did:plc:${unique("t")}`, handle: `${unique("t")}.test` }]);
    const other = await w.person([{ platform: "bluesky", stableId: `did:plc:${unique("u")}`, handle: `${unique("u")}.test` }]);
    const { job } = await w.store.transaction((s) => s.reconnectJobs.open(r.personId, "bluesky", "all", [target, other], null));
    // One target written already (in flight), one not started.
    await w.store.reconnectJobs.markInFlight(job.id, [{ personId: target, marker: "3kabc" }]);
    const out = await w.send(r.bsky, "stop");
    expect(allText(out)).toContain("Your reconnection under way is stopped too");
    const cancelled = await w.store.reconnectJobs.get(job.id);
    expect(cancelled).toMatchObject({ state: "cancelled", reason: "stopped" });
    // Nothing moves it again, and it reports nothing.
    expect(await w.store.reconnectJobs.setState(job.id, "running")).toBe(false);
    expect(await w.store.reconnectJobs.claimSummary(job.id)).toBe(false);
    expect(await w.store.reconnectJobs.claimProgress(job.id, 0)).toBe(false);
    // The target not started is gone (a running worker stops before writing it); the one in flight keeps its marker.
    expect(await w.store.reconnectJobs.markInFlight(job.id, [{ personId: other, marker: "3kdef" }])).toBe(0);
    expect((await w.store.reconnectJobs.todo(job.id)).map((t) => t.marker)).toEqual(["3kabc"]);
    // A new request opens a new job.
    const again = await w.store.transaction((s) => s.reconnectJobs.open(r.personId, "bluesky", "all", [other], null));
    expect(again.created).toBe(true);
  });

  it("forget asks to confirm, then deletes everything", async () => {
    const r = await registered();
    const ask = await w.send(r.bsky, words.forget);
    expect(allText(ask)).toContain(`${words.forget} ${words.confirm}`);
    expect(await w.store.people.get(r.personId)).toBeDefined();
    const done = await w.send(r.bsky, `${words.forget} ${words.confirm}`);
    expect(done.effects).toContainEqual({ type: "forgotten", personId: r.personId });
    expect(await w.store.people.get(r.personId)).toBeUndefined();
    expect(await w.store.findPerson({ platform: "bluesky", stableId: r.bsky.stableId })).toBeUndefined();
    const [left] = await db.sql<{ n: number }[]>`select count(*)::int as n from match where person_id = ${r.personId}`;
    expect(left!.n).toBe(0);
    // Of the conversation state kept for their accounts, only the abuse
    // counters survive (else `forget` would reset a flood's or a code
    // guesser's count), until they run out: no pending request.
    const keys = [senderKey(r.bsky), senderKey(r.fedi)];
    const [state] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from conversation_sender
      where (sender_key = ${keys[0]!} or sender_key = ${keys[1]!}) and forget_asked_at is not null`;
    expect(state!.n).toBe(0);
    // Now a stranger: the welcome, and nothing to forget.
    expect(allText(await w.send(r.bsky, words.status))).toContain(words.marks.welcome);
  });
});

describe("archive", () => {
  it("status shows the archive a person uploaded, and `unlink x` takes it away with what it found", async () => {
    const target = unique("found");
    const tx = String(nextX++);
    await w.person([{ platform: "x", stableId: tx }, { platform: "bluesky", stableId: `did:plc:${target}`, handle: `${target}.test` }]);
    const sender = blueskySender(unique("uploader"));
    await w.send(sender, "archive");
    const personId = (await w.store.identities.find({ platform: "bluesky", stableId: sender.stableId }))!.personId;
    const folder = await writeArchiveFolder(await mkdtemp(path.join(tmpdir(), "upload-")), { accountId: String(nextX++), username: "my_old_x", followings: [tx, String(nextX++)] });
    await importArchive(db.sql, folder, { personId, selfService: true });
    await rm(folder, { recursive: true, force: true });

    const status = privateText(await w.send(sender, "status"));
    expect(status).toContain("The X archive you uploaded (@my_old_x): 2 accounts followed");
    expect(status).toContain("Bluesky: 1");
    await w.store.people.updateSettings(personId, { language: "fr" });
    expect(privateText(await w.send(sender, "statut"))).toContain("L’archive X que vous avez déposée (@my_old_x) : 2 comptes suivis");

    const out = await w.send(sender, "délier x");
    expect(out.effects).toContainEqual({ type: "unlinked", personId, platform: "x" });
    expect(privateText(out)).toBe("L’archive X que vous aviez déposée est effacée, avec les comptes qu’elle avait trouvés et dont vous n’aviez rien fait.");
    expect(await w.store.uploadedArchives.get(personId)).toBeUndefined();
    expect((await w.store.matches.counts(personId)).bluesky.total).toBe(0);
    expect(privateText(await w.send(sender, "statut"))).not.toContain("archive X");
    expect(allText(await w.send(sender, "délier x"))).toContain("aucun compte X");
  });

  it("gives at most 5 upload links an hour", async () => {
    const sender = fediverseSender(unique("manylinks"));
    for (let i = 0; i < 5; i++) expect(privateText(await w.send(sender, "archive"))).toMatch(/\/archive\//);
    const sixth = await w.send(sender, "archive");
    expect(allText(sixth)).not.toMatch(/\/archive\//);
    expect(allText(sixth)).toContain("several upload links");
  });
});

describe("forget", () => {
  it("needs the confirmation from the same account, in time", async () => {
    let now = new Date();
    const timed = makeWorld(db, { clock: () => now });
    const r = await registered();
    expect(allText(await timed.send(r.bsky, "forget confirm"))).toContain("Nothing to confirm");
    await timed.send(r.bsky, "forget");
    expect(allText(await timed.send(r.fedi, "forget confirm"))).toContain("Nothing to confirm");
    now = new Date(now.getTime() + 11 * 60_000);
    expect(allText(await timed.send(r.bsky, "forget confirm"))).toContain("Nothing to confirm");
    expect(await w.store.people.get(r.personId)).toBeDefined();
    expect(allText(await timed.send(r.bsky, "forget please"))).toContain("Usage:");
  });

  it("tells a stranger there is nothing to delete", async () => {
    expect(allText(await w.send(blueskySender(unique("s")), "oublier"))).toContain("rien à effacer");
  });
});

describe("a message given up", () => {
  it("is said to be in the person's chosen language, else the message's, else the default", async () => {
    const r = await registered();
    const asked = (text: string, sender = r.bsky) => w.engine.couldNotAnswer({ channel: sender.platform, sender, text, isPrivate: true });
    expect(await asked("aide")).toBe(LOCALES.fr!.m.couldNotAnswer);
    expect(await asked("help")).toBe(LOCALES.en!.m.couldNotAnswer);
    await w.send(r.bsky, "language fr");
    expect(await asked("help")).toBe(LOCALES.fr!.m.couldNotAnswer);
    // A stranger writing words of no language: the default.
    expect(await asked("🙂", blueskySender(unique("gu")))).toBe(LOCALES.en!.m.couldNotAnswer);
  });
});

describe("language choice", () => {
  it("follows the message when nothing is saved, else the language last written in, else the default", async () => {
    const r = await registered();
    expect((await w.send(r.bsky, "aide")).language).toBe("fr");
    expect((await w.send(r.bsky, "list failed")).language).toBe("en");
    // `stop` is a word of both languages: the one last written in (two words' evidence) answers.
    const fr = makeWorld(db, { config: (await import("./testing.ts")).testConfig({ DEFAULT_LANGUAGE: "fr" }) });
    expect((await fr.send(r.bsky, "stop")).language).toBe("en");
    // Someone who has written nothing telling yet gets the default.
    const stranger = await registered();
    expect((await w.send(stranger.bsky, "stop")).language).toBe(w.config.defaultLanguage);
    expect((await fr.send(stranger.bsky, "stop")).language).toBe("fr");
  });

  it("writes first (reports, digests) in the language the person last wrote in, unless they chose one", async () => {
    const r = await registered();
    const unprompted = async () => (await localeFor(w.store, r.personId, { defaultLanguage: "en" })).code;
    expect(await unprompted()).toBe("en");
    await w.send(r.bsky, "liste échecs");
    expect(await unprompted()).toBe("fr");
    // One word is not enough to change it (`hello`, `ignore` are said in French too).
    await w.send(r.bsky, "help");
    expect(await unprompted()).toBe("fr");
    await w.send(r.bsky, "list failed");
    expect(await unprompted()).toBe("en");
    await w.send(r.bsky, "langue fr");
    await w.send(r.bsky, "list failed");
    expect(await unprompted()).toBe("fr");
  });

  it("a saved language wins over the message", async () => {
    const r = await registered();
    await w.store.people.updateSettings(r.personId, { language: "fr" });
    const out = await w.send(r.bsky, "help");
    expect(out.language).toBe("fr");
    expect(allText(out)).toContain("Commandes :");
  });
});

describe("known senders", () => {
  it("get their handle refreshed and an acct-only identity its actor URI", async () => {
    const name = unique("acct");
    const personId = await w.person([{ platform: "fediverse", handle: `${name}@old.example` }]);
    const sender = fediverseSender(name, "old.example");
    const out = await w.send(sender, "status");
    expect(out.effects).toContainEqual({ type: "identity-recorded", personId });
    const [identity] = await w.store.identities.listForPerson(personId);
    expect(identity).toMatchObject({ stableId: sender.stableId, verifiedBy: "platform" });

    const b = blueskySender(unique("renamed"));
    const pid = await w.person([{ platform: "bluesky", stableId: b.stableId, handle: "old-name.test" }]);
    await w.send({ ...b, handle: "New-Name.test" }, "status");
    const [renamed] = await w.store.identities.listForPerson(pid);
    expect(renamed?.handle).toBe("new-name.test");
  });

  it("unknown senders are not recorded by merely writing", async () => {
    const s = blueskySender(unique("ghost"));
    await w.send(s, "status");
    await w.send(s, "help");
    expect(await w.store.identities.find({ platform: "bluesky", stableId: s.stableId })).toBeUndefined();
  });
});

describe("commands as people copy and punctuate them", () => {
  it("a command copied with the backticks the bot quotes it in, or in quotes, is that command", async () => {
    const r = await registered();
    expect((await w.send(r.bsky, "`status`")).handledAs).toBe("status");
    expect((await w.send(r.bsky, "« statut »")).handledAs).toBe("status");
    expect((await w.send(r.bsky, "“help”")).handledAs).toBe("help");
    const forget = await w.send(r.bsky, "`forget`");
    expect(forget.handledAs).toBe("forget");
    expect(allText(forget)).toContain("forget confirm");
    expect((await w.send(r.fedi, "`notify off`", { html: true })).handledAs).toBe("notify");
    expect((await w.store.people.get(r.personId))?.notify).toBe(false);
  });

  it("settings take their word with trailing punctuation, or French punctuation after a space", async () => {
    const r = await registered();
    expect(allText(await w.send(r.bsky, "notifications non !"))).toMatch(/désactivées/);
    expect((await w.store.people.get(r.personId))?.notify).toBe(false);
    expect((await w.send(r.bsky, "notify on."))).toMatchObject({ handledAs: "notify" });
    expect((await w.store.people.get(r.personId))?.notify).toBe(true);
    const en = await w.send(r.bsky, "langue en.");
    expect(allText(en)).toMatch(/English/);
    expect((await w.store.people.get(r.personId))?.language).toBe("en");
    expect((await w.send(r.bsky, "language fr."))?.language).toBe("fr");
    expect((await w.store.people.get(r.personId))?.language).toBe("fr");
    expect((await w.send(r.bsky, "langue English !"))?.language).toBe("en");
    expect((await w.send(r.bsky, "language `français`"))?.language).toBe("fr");
    // Two words are still one too many.
    expect(allText(await w.send(r.bsky, "langue en fr"))).toContain("en, fr");
  });

  it("list takes its arguments with trailing punctuation, or punctuation set apart", async () => {
    const r = await registered();
    expect(allText(await w.send(r.bsky, "list bluesky 1."))).not.toContain("Usage:");
    expect(allText(await w.send(r.bsky, "liste mastodon !"))).not.toContain("Utilisation :");
  });
});
