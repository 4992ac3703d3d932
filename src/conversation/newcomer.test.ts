/**
 * An account the bot does not know sends two messages at once: both make it
 * a person (`archive`, `link @handle`, `link <code>`), one of them first. The
 * other is not told that its own account "belongs to someone else": it
 * carries on as the person its twin made.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import type { IdentityRef, Store } from "../store/index.ts";
import { ConversationEngine } from "./engine.ts";
import type { Sender } from "./incoming.ts";
import { allText, blueskySender, fediverseSender, makeWorld, privateText, unique, type World } from "./testing.ts";

let db: TestDatabase;
let w: World;
let nextX = 4_000_000;

beforeAll(async () => {
  db = await createTestDatabase();
  w = makeWorld(db);
});
afterAll(() => db.drop());

/**
 * An engine that does not see `sender` when it first looks them up, as when
 * a twin message records them between that look-up and the command: the
 * command runs for a stranger whose account the store already holds.
 */
function engineMissing(sender: Sender): ConversationEngine {
  const real = db.store;
  let missed = false;
  const identities = new Proxy(real.identities, {
    get(target, key) {
      if (key === "find") {
        return async (ref: IdentityRef) => {
          if (!missed && ref.platform === sender.platform && ref.stableId === sender.stableId) {
            missed = true;
            return undefined;
          }
          return target.find(ref);
        };
      }
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const store = new Proxy(real, {
    get(target, key) {
      if (key === "identities") return identities;
      const value: unknown = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as Store;
  return new ConversationEngine({ store, config: w.config, limits: { messagesPerWindow: 1000 } });
}

const send = (engine: ConversationEngine, sender: Sender, text: string) =>
  engine.handle({ channel: sender.platform, sender, isPrivate: true, text });

/** The sender as their twin message made them: a person with this one account. */
async function twin(sender: Sender): Promise<number> {
  return w.person([{ platform: sender.platform, stableId: sender.stableId, handle: sender.handle!, verifiedBy: "dm" }]);
}

describe("a newcomer recorded by their own other message a moment before", () => {
  it("archive carries on as that person", async () => {
    const s = blueskySender(unique("ar"));
    const engine = engineMissing(s);
    const personId = await twin(s);
    const out = await send(engine, s, "archive");
    expect(allText(out)).not.toMatch(/belongs to someone else/);
    const url = /https?:\/\/\S+\/archive\/([A-Za-z0-9_-]{32})/.exec(privateText(out));
    expect(url, allText(out)).not.toBeNull();
    const identity = await w.store.identities.find({ platform: "bluesky", stableId: s.stableId });
    expect(await w.store.webLinks.peek(url![1]!, "archive")).toMatchObject({ personId, identityId: identity!.id });
    expect(out.effects).toEqual([]);
  });

  it("link @handle carries on as that person", async () => {
    const s = fediverseSender(unique("lh"));
    const other = blueskySender(unique("lh"));
    const engine = engineMissing(s);
    const personId = await twin(s);
    const out = await send(engine, s, `link @${other.handle}`);
    expect(allText(out)).not.toMatch(/belongs to someone else/);
    expect(out.effects).toEqual([{ type: "link-code-created", personId, platform: "bluesky" }]);
    const code = /\b([2-9A-HJ-NP-Z]{8})\b/.exec(privateText(out))![1]!;
    expect((await w.send(other, `link ${code}`)).effects).toContainEqual({ type: "linked", personId });
  });

  it("link <code> carries on as that person, who is joined to the code's owner", async () => {
    const s = fediverseSender(unique("lc"));
    const owner = await w.person([{ platform: "x", stableId: String(nextX++) }]);
    const { code } = await w.store.linkCodes.create(owner, {});
    const engine = engineMissing(s);
    const personId = await twin(s);
    const out = await send(engine, s, `link ${code}`);
    expect(allText(out)).not.toMatch(/belongs to someone else/);
    expect(out.effects).toContainEqual({ type: "linked", personId: owner, mergedPersonId: personId });
    expect((await w.store.findPerson({ platform: "fediverse", stableId: s.stableId }))?.person.id).toBe(owner);
  });

  it("an account that really is someone else's is still refused", async () => {
    const name = unique("tk");
    // The store knows this acct under another actor URI: a different account.
    await w.person([{ platform: "fediverse", stableId: `https://tk.example/users/${name}-old`, handle: `${name}@tk.example` }]);
    const moved = fediverseSender(name, "tk.example");
    expect(allText(await w.send(moved, "archive"))).toContain("belongs to someone else");
    expect(allText(await w.send(moved, `link @${unique("b")}.test`))).toContain("belongs to someone else");
    expect(await w.store.findPerson({ platform: "fediverse", stableId: moved.stableId })).toBeUndefined();
  });
});

describe("two messages at once from an unknown account", () => {
  it.each([
    ["archive", "archive"],
    ["link @other", "link @other"],
    ["archive", "link @other"],
  ])("%s and %s: neither is told the account is someone else's, and it becomes one person", async (a, b) => {
    const s = blueskySender(unique("race"));
    const text = (t: string) => t.replace("@other", `@${unique("o")}@o.example`);
    const outs = await Promise.all([w.send(s, text(a)), w.send(s, text(b))]);
    for (const out of outs) {
      expect(allText(out)).not.toMatch(/belongs to someone else/);
      expect(privateText(out)).toMatch(/\/archive\/|Your code: /);
    }
    const person = await w.store.findPerson({ platform: "bluesky", stableId: s.stableId });
    expect(person?.identities).toHaveLength(1);
  });
});
