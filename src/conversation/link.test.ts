/**
 * Identity linking through the engine on a real store: codes are single use,
 * short-lived, bound to the account they were made for, rate-limited, never
 * accepted in public; nobody can attach an account they do not control.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { someoneWaitsForLock } from "../../test/harness/wait.ts";
import type { ReconnectService } from "../reconnect/service.ts";
import type { Outcome } from "./incoming.ts";
import { allText, blueskySender, fediverseSender, makeWorld, privateText, publicText, unique, type World } from "./testing.ts";

let db: TestDatabase;
let w: World;
let nextX = 2_000_000;

beforeAll(async () => {
  db = await createTestDatabase();
  w = makeWorld(db);
});
afterAll(() => db.drop());

function codeIn(outcome: Outcome): string {
  const code = /\b([2-9A-HJ-NP-Z]{8})\b/.exec(privateText(outcome))?.[1];
  if (!code) throw new Error(`no code in: ${allText(outcome)}`);
  return code;
}

describe("link <code> and lock order", () => {
  it("waits for a forget of the code's owner instead of deadlocking with it", async () => {
    const bsky = blueskySender(unique("lo"));
    const fedi = fediverseSender(unique("lo"));
    const owner = await w.person([{ platform: "x", stableId: String(nextX++) }, { platform: "bluesky", stableId: bsky.stableId, handle: bsky.handle! }]);
    const code = codeIn(await w.send(bsky, `link @${fedi.handle}`));
    // A forget of the owner, as its cascade locks: the person, then its codes.
    const forget = await db.sql.reserve();
    try {
      await forget`begin`;
      await forget`select 1 from person where id = ${owner} for update`;
      const linking = w.send(fedi, `link ${code}`);
      linking.catch(() => undefined);
      await someoneWaitsForLock(db.sql);
      await forget`select 1 from link_code where person_id = ${owner} for update`;
      await forget`rollback`;
      expect((await linking).effects).toContainEqual({ type: "linked", personId: owner });
    } finally {
      await forget`rollback`.catch(() => undefined);
      forget.release();
    }
  });
});

describe("forget while a link lands", () => {
  it("erases, and revokes tokens for, the person the sender was joined to while it revoked — not only the one it first saw", async () => {
    const mine = blueskySender(unique("fg"));
    const other = fediverseSender(unique("fg"));
    const pa = await w.person([{ platform: "x", stableId: String(nextX++) }, { platform: "bluesky", stableId: mine.stableId, handle: mine.handle! }]);
    const pb = await w.person([{ platform: "x", stableId: String(nextX++) }, { platform: "fediverse", stableId: other.stableId, handle: other.handle! }]);
    const code = codeIn(await w.send(other, `link @${mine.handle}`));
    const revokedFor: Array<{ personId: number; identities: number }> = [];
    // Only a seam for the interleaving: while `forget confirm` revokes
    // tokens at their servers (a network wait), the person's `link <code>`
    // joins them to their other account.
    const seam = {
      async revokeAuthorizations(personId: number, identityIds: readonly number[]) {
        revokedFor.push({ personId, identities: identityIds.length });
        if (revokedFor.length === 1) expect((await w.send(mine, `link ${code}`)).effects).toContainEqual({ type: "linked", personId: pb, mergedPersonId: pa });
      },
    } as unknown as ReconnectService;
    const racing = makeWorld(db, { reconnect: seam });
    await racing.send(mine, "forget");
    const done = await racing.send(mine, "forget confirm");
    expect(allText(done)).toContain("deleted");
    expect(done.effects).toContainEqual({ type: "forgotten", personId: pb });
    // The joined person's tokens were revoked too (all four accounts), then everything erased.
    expect(revokedFor).toEqual([
      { personId: pa, identities: 2 },
      { personId: pb, identities: 4 },
    ]);
    expect(await w.store.findPerson({ platform: "bluesky", stableId: mine.stableId })).toBeUndefined();
    expect(await w.store.findPerson({ platform: "fediverse", stableId: other.stableId })).toBeUndefined();
    expect(await w.store.people.get(pb)).toBeUndefined();
  });

  it("revokes again for an account the person gained while it revoked, then erases it with the rest", async () => {
    const mine = blueskySender(unique("fg"));
    const gained = fediverseSender(unique("fg"));
    const pa = await w.person([{ platform: "x", stableId: String(nextX++) }, { platform: "bluesky", stableId: mine.stableId, handle: mine.handle! }]);
    const revokedFor: number[] = [];
    const seam = {
      async revokeAuthorizations(_personId: number, identityIds: readonly number[]) {
        revokedFor.push(identityIds.length);
        if (revokedFor.length === 1) await w.store.identities.attach(pa, { platform: "fediverse", stableId: gained.stableId, handle: gained.handle!, verifiedBy: "dm" });
      },
    } as unknown as ReconnectService;
    const racing = makeWorld(db, { reconnect: seam });
    await racing.send(mine, "forget");
    expect(allText(await racing.send(mine, "forget confirm"))).toContain("deleted");
    expect(revokedFor).toEqual([2, 3]);
    expect(await w.store.findPerson({ platform: "fediverse", stableId: gained.stableId })).toBeUndefined();
    expect(await w.store.people.get(pa)).toBeUndefined();
  });
});

describe("link @handle, then link <code> from the other account", () => {
  it("attaches an account the store did not know", async () => {
    const name = unique("al");
    const bsky = blueskySender(name);
    const fedi = fediverseSender(name);
    const x = String(nextX++);
    const personId = await w.person([{ platform: "x", stableId: x }, { platform: "bluesky", stableId: bsky.stableId, handle: bsky.handle! }]);
    // Someone who followed this person on X is already registered.
    const fanX = String(nextX++);
    const fan = await w.person([{ platform: "x", stableId: fanX }]);
    await w.follow(fanX, x);

    const asked = await w.send(bsky, `link @${fedi.handle}`);
    expect(asked.replies.every((r) => r.visibility === "private")).toBe(true);
    const code = codeIn(asked);
    expect(privateText(asked)).toContain(`@${fedi.handle}`);

    // Before linking, the Mastodon account is a stranger.
    expect(allText(await w.send(fedi, "status"))).toContain("I don't know this");
    const done = await w.send(fedi, `link ${code.toLowerCase().slice(0, 4)}-${code.toLowerCase().slice(4)}`);
    expect(done.effects).toContainEqual({ type: "linked", personId });
    const identities = await w.store.identities.listForPerson(personId);
    expect(identities.find((i) => i.platform === "fediverse")).toMatchObject({ stableId: fedi.stableId, verifiedBy: "dm" });
    // The arrival on Mastodon shows in the fan's matches.
    expect((await w.store.matches.counts(fan)).fediverse.pending).toBe(1);
    expect(allText(await w.send(fedi, "status"))).toContain("Your accounts:");
    // Used once.
    expect(allText(await w.send(fediverseSender(unique("late")), `link ${code}`))).toContain("doesn't work");
  });

  it("joins two known people without losing settings, matches or choices", async () => {
    const a = blueskySender(unique("ja"));
    const b = fediverseSender(unique("jb"));
    const xa = String(nextX++);
    const t = String(nextX++);
    const pa = await w.person([{ platform: "x", stableId: xa }, { platform: "bluesky", stableId: a.stableId, handle: a.handle! }]);
    const pb = await w.person([{ platform: "fediverse", stableId: b.stableId, handle: b.handle! }], { language: "fr" });
    const target = await w.person([{ platform: "x", stableId: t }, { platform: "bluesky", stableId: `did:plc:${unique("t")}` }]);
    await w.follow(xa, t);
    await w.store.matches.refreshForFollowers([pa]);
    await w.store.matches.setState(pa, "bluesky", target, "followed");
    await w.store.people.updateSettings(pb, { notify: false });

    const code = codeIn(await w.send(a, `lier @${b.handle}`));
    const done = await w.send(b, `LIER ${code}`);
    expect(done.effects).toContainEqual({ type: "linked", personId: pa, mergedPersonId: pb });
    expect(done.language).toBe("fr"); // the saved language of the account written from
    expect(privateText(done)).toContain("vos comptes sont réunis");
    const view = await w.store.personView(pa);
    expect(view?.identities.map((i) => i.platform).sort()).toEqual(["bluesky", "fediverse", "x"]);
    expect(view?.person).toMatchObject({ language: "fr", notify: false });
    expect((await w.store.matches.counts(pa)).bluesky.followed).toBe(1);
    expect(await w.store.people.get(pb)).toBeUndefined();
    expect(allText(await w.send(b, "lier @" + a.handle))).toContain("déjà l’un de vos comptes liés");
  });

  it("lets a newcomer start from the unknown account", async () => {
    const known = blueskySender(unique("kn"));
    const fresh = fediverseSender(unique("nw"));
    const pk = await w.person([{ platform: "bluesky", stableId: known.stableId, handle: known.handle! }]);
    const asked = await w.send(fresh, `link @${known.handle}`);
    const code = codeIn(asked);
    const newcomer = await w.store.findPerson({ platform: "fediverse", stableId: fresh.stableId });
    expect(newcomer?.identities[0]?.verifiedBy).toBe("dm");
    const done = await w.send(known, `link ${code}`);
    expect(done.effects).toContainEqual({ type: "linked", personId: newcomer!.person.id, mergedPersonId: pk });
    expect((await w.store.findPerson({ platform: "bluesky", stableId: known.stableId }))?.person.id).toBe(newcomer!.person.id);
  });
});

describe("what linking refuses", () => {
  it("a newcomer naming another account on the network they write from: no code that could never work, nobody recorded", async () => {
    const fresh = blueskySender(unique("sp"));
    const out = await w.send(fresh, `link @${unique("other")}.test`);
    expect(allText(out)).toContain("one account per network");
    expect(out.replies.map((r) => r.visibility)).toEqual(["private"]);
    expect(allText(out)).not.toMatch(/Your code/);
    expect(await w.store.findPerson({ platform: "bluesky", stableId: fresh.stableId })).toBeUndefined();
    const fr = await w.send(fediverseSender(unique("spf")), `lier @${unique("autre")}@mastodon.example`);
    expect(allText(fr)).toContain("un seul compte par réseau");
  });

  it("a code whose maker has an account on the redeemer's network: the redeemer, unknown here, is told it is the maker's to unlink", async () => {
    const maker = blueskySender(unique("mk"));
    const makersMastodon = fediverseSender(unique("mm"));
    await w.person([
      { platform: "bluesky", stableId: maker.stableId, handle: maker.handle! },
      { platform: "fediverse", stableId: makersMastodon.stableId, handle: makersMastodon.handle! },
    ]);
    const fresh = fediverseSender(unique("mr"));
    // Asked before the maker had that Mastodon account would be the usual way; here the CLI's kind of code.
    const pk = (await w.store.findPerson({ platform: "bluesky", stableId: maker.stableId }))!.person.id;
    const { code } = await w.store.linkCodes.create(pk, { platform: "fediverse", handle: fresh.handle });
    const refused = await w.send(fresh, `link ${code}`);
    expect(allText(refused)).toContain(`made by an account that already has a Mastodon (fediverse) account linked (@${makersMastodon.handle})`);
    expect(refused.replies.map((r) => r.visibility)).toEqual(["private"]);
  });

  it("a code redeemed by anyone but the account it was made for, which keeps it usable", async () => {
    const owner = blueskySender(unique("ow"));
    const mine = fediverseSender(unique("mi"));
    const mallory = fediverseSender(unique("mal"));
    const po = await w.person([{ platform: "bluesky", stableId: owner.stableId, handle: owner.handle! }]);
    const code = codeIn(await w.send(owner, `link @${mine.handle}`));
    const stolen = await w.send(mallory, `link ${code}`);
    expect(allText(stolen)).toContain("doesn't work");
    expect(await w.store.findPerson({ platform: "fediverse", stableId: mallory.stableId })).toBeUndefined();
    // Same handle on another platform does not count either.
    const lookalike = blueskySender("x", { stableId: `did:plc:${unique("lk")}`, handle: mine.handle!.replace("@", ".") });
    expect(allText(await w.send(lookalike, `link ${code}`))).toContain("doesn't work");
    const done = await w.send(mine, `link ${code}`);
    expect(done.effects).toContainEqual({ type: "linked", personId: po });
  });

  it("claiming an account by making a code for it: only that account can use the code", async () => {
    const mallory = blueskySender(unique("mly"));
    const victim = fediverseSender(unique("vic"));
    const pv = await w.person([{ platform: "fediverse", stableId: victim.stableId, handle: victim.handle! }]);
    const code = codeIn(await w.send(mallory, `link @${victim.handle}`));
    // Mallory cannot redeem it herself, from any account.
    expect(allText(await w.send(mallory, `link ${code}`))).toContain("doesn't work");
    expect(allText(await w.send(fediverseSender(unique("mly2")), `link ${code}`))).toContain("doesn't work");
    expect((await w.store.personView(pv))?.identities.length).toBe(1);
  });

  it("an X account by name", async () => {
    const s = blueskySender(unique("xr"));
    await w.person([{ platform: "bluesky", stableId: s.stableId, handle: s.handle! }]);
    for (const text of ["link @elonmusk", "link https://x.com/jack", "lier @jack", "link x.com/jack", "link twitter.com/jack_d", "link elonmusk", "link x", "link twitter"]) {
      const out = await w.send(s, text);
      expect(allText(out)).toMatch(/X account can't be linked|Un compte X ne peut pas/);
      expect(out.effects).toEqual([]);
    }
  });

  it("a mistyped code: a wrong code, counted as one — not an X account", async () => {
    const guesser = fediverseSender(unique("typo"));
    const p = await w.person([{ platform: "bluesky", stableId: `did:plc:${unique("typob")}` }]);
    const typos = ["ABCDEFG", "ABCDEFGO", "ABCDEFG1", "2dx6k3w", "ABCD-EFGHJ"];
    expect(typos.length).toBe(w.engine.limits.codeFailuresPerHour);
    for (const typo of typos) {
      const out = await w.send(guesser, `link ${typo}`);
      expect(allText(out), typo).toContain("doesn't work");
      expect(allText(out), typo).not.toMatch(/X account/);
    }
    const real = await w.store.linkCodes.create(p, { platform: "fediverse", handle: guesser.handle });
    expect(allText(await w.send(guesser, `link ${real.code}`))).toContain("Too many wrong codes");
    // Asking to be forgotten does not buy more guesses.
    await w.send(guesser, "forget");
    expect(allText(await w.send(guesser, `link ${real.code}`))).toContain("Too many wrong codes");
    // In public, a mistyped code gets the same warning as a real one, and shows nowhere.
    const out = await w.send(fediverseSender(unique("typo2")), "link ABCDEFG", { isPrivate: false });
    expect(publicText(out)).toContain("Never post a code in public");
    expect(publicText(out)).not.toContain("ABCDEFG");
  });

  it("a platform's name is answered with the usage, not about X", async () => {
    const s = blueskySender(unique("kw"));
    await w.person([{ platform: "bluesky", stableId: s.stableId, handle: s.handle! }]);
    for (const text of ["link mastodon", "link bluesky", "lier Mastodon.", "link bsky"]) {
      const out = await w.send(s, text);
      expect(allText(out), text).toMatch(/Usage: link <code> \| @handle|Utilisation : lier/);
      expect(allText(out), text).not.toMatch(/X account|compte X/);
      expect(out.effects, text).toEqual([]);
    }
  });

  it("an expired or reused code", async () => {
    const s = fediverseSender(unique("ex"));
    const p = await w.person([{ platform: "bluesky", stableId: `did:plc:${unique("exb")}` }]);
    const expired = await w.store.linkCodes.create(p, { ttlSeconds: -1, platform: "fediverse", handle: s.handle });
    expect(allText(await w.send(s, `link ${expired.code}`))).toContain("doesn't work");
    const fresh = await w.store.linkCodes.create(p, { platform: "fediverse", handle: s.handle });
    expect((await w.send(s, `link ${fresh.code}`)).effects).toContainEqual({ type: "linked", personId: p });
    expect(allText(await w.send(s, `link ${fresh.code}`))).toContain("doesn't work");
    const again = await w.store.linkCodes.create(p, {});
    expect(allText(await w.send(s, `link ${again.code}`))).toContain("already joined");
    const other = fediverseSender(unique("ex2"));
    expect(allText(await w.send(other, `link ${fresh.code}`))).toContain("doesn't work");
  });

  it("a code posted in public, which is burned", async () => {
    const s = fediverseSender(unique("pub"));
    const p = await w.person([{ platform: "bluesky", stableId: `did:plc:${unique("pubb")}` }]);
    const { code } = await w.store.linkCodes.create(p, { platform: "fediverse", handle: s.handle });
    const out = await w.send(s, `link ${code}`, { isPrivate: false });
    expect(out.replies.map((r) => r.visibility)).toEqual(["public"]);
    expect(publicText(out)).toContain("Never post a code in public");
    expect(publicText(out)).not.toContain(code);
    expect(allText(await w.send(s, `link ${code}`))).toContain("doesn't work");
  });

  it("too many codes, and too many wrong codes", async () => {
    const s = blueskySender(unique("rl"));
    await w.person([{ platform: "bluesky", stableId: s.stableId, handle: s.handle! }]);
    for (let i = 0; i < w.engine.limits.codesPerHour; i++) {
      codeIn(await w.send(s, `link @${unique("a")}@many.example`));
    }
    expect(allText(await w.send(s, "link @one-more@many.example"))).toContain("many codes");

    const guesser = fediverseSender(unique("gs"));
    const p = await w.person([{ platform: "bluesky", stableId: `did:plc:${unique("gsb")}` }]);
    for (let i = 0; i < w.engine.limits.codeFailuresPerHour; i++) {
      expect(allText(await w.send(guesser, "link 22223333"))).toContain("doesn't work");
    }
    const real = await w.store.linkCodes.create(p, { platform: "fediverse", handle: guesser.handle });
    expect(allText(await w.send(guesser, `link ${real.code}`))).toContain("Too many wrong codes");
  });

  it("an account that already belongs to someone else", async () => {
    const name = unique("tk");
    // The store knows this acct under another actor URI.
    await w.person([{ platform: "fediverse", stableId: `https://tk.example/users/${name}-old`, handle: `${name}@tk.example` }]);
    const moved = fediverseSender(name, "tk.example");
    const p = await w.person([{ platform: "bluesky", stableId: `did:plc:${unique("tkb")}` }]);
    const { code } = await w.store.linkCodes.create(p, {});
    expect(allText(await w.send(moved, `link ${code}`))).toContain("belongs to someone else");
    expect((await w.store.personView(p))?.identities.length).toBe(1);
  });

  it("a second account on the same platform, or the account written from", async () => {
    const s = blueskySender(unique("sp"));
    await w.person([{ platform: "bluesky", stableId: s.stableId, handle: s.handle! }]);
    expect(allText(await w.send(s, `link @${unique("alt")}.test`))).toContain("already have a Bluesky account");
    expect(allText(await w.send(s, `link @${s.handle}`))).toContain("writing from");
    expect(allText(await w.send(s, "link"))).toContain("Usage: link <code> | @handle");
  });

  it("a code that would leave one person two accounts on one platform, which stays usable once that is sorted out", async () => {
    // A newcomer on Mastodon asks to link a Bluesky account whose person already has another Mastodon account.
    const known = blueskySender(unique("kb"));
    const theirMastodon = fediverseSender(unique("km"));
    const pk = await w.person([
      { platform: "bluesky", stableId: known.stableId, handle: known.handle! },
      { platform: "fediverse", stableId: theirMastodon.stableId, handle: theirMastodon.handle! },
    ]);
    const fresh = fediverseSender(unique("k2"));
    const code = codeIn(await w.send(fresh, `link @${known.handle}`));
    const refused = await w.send(known, `link ${code}`);
    expect(allText(refused)).toContain(`account linked (@${theirMastodon.handle})`);
    expect(refused.effects).not.toContainEqual(expect.objectContaining({ type: "linked" }));
    expect((await w.store.identities.listForPerson(pk)).filter((i) => i.platform === "fediverse")).toHaveLength(1);
    // Unlinked first, the same code joins them.
    await w.send(known, "unlink mastodon");
    expect((await w.send(known, `link ${code}`)).effects).toContainEqual(expect.objectContaining({ type: "linked" }));
    const joined = await w.store.findPerson({ platform: "bluesky", stableId: known.stableId });
    expect(joined!.identities.filter((i) => i.platform === "fediverse").map((i) => i.stableId)).toEqual([fresh.stableId]);
  });
});

describe("a code copied as the bot quoted it", () => {
  it("with its backticks, or in quotes, links the account", async () => {
    for (const quote of [(t: string) => t, (t: string) => `\`${t}\``, (t: string) => `« ${t} »`, (t: string) => `"${t}".`]) {
      const b = blueskySender(unique("bt"));
      const f = fediverseSender(unique("bt"));
      const p = await w.person([{ platform: "x", stableId: String(nextX++) }, { platform: "bluesky", stableId: b.stableId, handle: b.handle! }]);
      const asked = privateText(await w.send(b, `link @${f.handle}`));
      const quoted = /`(link [2-9A-HJ-NP-Z]{8})`/.exec(asked)?.[1];
      expect(quoted, asked).toBeDefined();
      const out = await w.send(f, quote(quoted!));
      expect(out.handledAs, quote(quoted!)).toBe("link");
      expect(out.effects).toContainEqual({ type: "linked", personId: p });
    }
  });
});

describe("codes from the registration platform", () => {
  it("work from any account of whoever received them", async () => {
    const p = await w.person([{ platform: "x", stableId: String(nextX++) }]);
    const { code } = await w.store.linkCodes.create(p, {});
    const s = blueskySender(unique("reg"));
    const out = await w.send(s, `lier ${code}`);
    expect(out.effects).toContainEqual({ type: "linked", personId: p });
    expect(out.language).toBe("fr");
    expect((await w.store.findPerson({ platform: "bluesky", stableId: s.stableId }))?.person.id).toBe(p);
  });
});
