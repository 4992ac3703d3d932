/**
 * Reading incoming notes as each server shapes them, parsed by Fedify as the
 * inbox parses them: who can see them (the bot's `isPrivate`), whether they
 * are for the bot, and their text.
 */
import { Create, Note, Person } from "@fedify/vocab";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFediServer, type FediServer } from "../../test/harness/fediverse.ts";
import { createNote, SHAPES, type Audience, type BotRef, type Shape } from "../../test/harness/fediverse-shapes.ts";
import { audienceOf, contentOf } from "./message.ts";

let server: FediServer;
const bot: BotRef = { actorId: "http://127.0.0.1:9/users/reconnexion", acct: "reconnexion@127.0.0.1:9" };

beforeAll(async () => {
  // Serves Pleroma's litepub context, which its notes name.
  server = await startFediServer({ users: SHAPES.map((s) => ({ name: `u_${s}` })) });
});
afterAll(() => server?.close());

/** A note as `shape` sends it (changed by `edit`: the activity, its object), read by Fedify. */
async function parse(shape: Shape, audience: Audience, edit?: (activity: Record<string, unknown>, object: Record<string, unknown>) => void) {
  const user = server.user(`u_${shape}`);
  const body = createNote(shape, user, bot, "status", { audience });
  edit?.(body, body.object as Record<string, unknown>);
  const ctx = server.federation.createContext(new URL(server.origin), undefined);
  const create = await Create.fromJsonLd(body, { documentLoader: ctx.documentLoader, contextLoader: ctx.contextLoader });
  const note = await create.getObject({ documentLoader: ctx.documentLoader, contextLoader: ctx.contextLoader });
  if (!(note instanceof Note)) throw new Error(`${shape}: no Note`);
  const author = new Person({ id: new URL(user.actorId), followers: new URL(user.followers) });
  return { note, create, author };
}

const expected: Record<Audience, { isPublic: boolean; isDirect: boolean }> = {
  direct: { isPublic: false, isDirect: true },
  public: { isPublic: true, isDirect: false },
  unlisted: { isPublic: true, isDirect: false },
  followers: { isPublic: false, isDirect: false },
};

describe("audienceOf", () => {
  const cases = SHAPES.flatMap((shape) => (Object.keys(expected) as Audience[]).map((audience) => [shape, audience] as const));
  it.each(cases)("reads a %s %s note", async (shape, audience) => {
    const { note, create, author } = await parse(shape, audience);
    expect(await audienceOf(note, create, { actorId: new URL(bot.actorId), profileUrls: [] }, author)).toEqual({ ...expected[audience], addressesBot: true });
  });

  it("knows that a public note mentioning someone else, not addressed to the bot, is not for it", async () => {
    const { note, create, author } = await parse("gotosocial", "public", (activity, object) => {
      object.tag = { type: "Mention", href: "http://127.0.0.1:9/users/someone", name: "@someone@127.0.0.1:9" };
      activity.cc = object.cc = server.user("u_gotosocial").followers;
    });
    expect(await audienceOf(note, create, { actorId: new URL(bot.actorId), profileUrls: [] }, author)).toEqual({ isPublic: true, isDirect: false, addressesBot: false });
  });
});

describe("contentOf", () => {
  it.each(SHAPES)("takes a %s note's HTML (content, or contentMap alone)", async (shape) => {
    const { note } = await parse(shape, "direct");
    const { html, text } = contentOf(note);
    expect(text).toBeUndefined();
    expect(html).toMatch(/reconnexion.*status/s);
  });

  // No server imitated here sends this (Misskey and its forks render `content`
  // whenever a note has text; Pleroma and Friendica always do), but `source`
  // is what is left if a server ever omits it.
  it("falls back to the source when a note has neither content nor contentMap", async () => {
    const { note } = await parse("misskey", "direct", (_activity, object) => {
      delete object.content;
      delete object._misskey_content;
    });
    expect(contentOf(note)).toEqual({ text: `@${bot.acct} status` });
  });
});
