import type { ChatBskyConvoDefs } from "@atproto/api";
import { describe, expect, it } from "vitest";
import { convoKindOf, mentionsBot } from "./chat.ts";

const member = (did: string) => ({ did, handle: `${did.slice(8)}.test` });
const convo = (members: number, kind?: { $type: string }): ChatBskyConvoDefs.ConvoView => ({
  id: "c1",
  rev: "1",
  members: Array.from({ length: members }, (_, i) => member(`did:plc:m${i}`)),
  muted: false,
  unreadCount: 0,
  ...(kind ? { kind } : {}),
});

describe("convoKindOf", () => {
  it("is direct only for a direct conversation of two", () => {
    expect(convoKindOf(convo(2, { $type: "chat.bsky.convo.defs#directConvo" }))).toBe("direct");
    expect(convoKindOf(convo(2))).toBe("direct");
  });

  it("is a group for a group, whatever members are listed, for more than two, and for a kind it does not know", () => {
    // A group's view lists only a few members: two listed does not make it direct.
    expect(convoKindOf(convo(2, { $type: "chat.bsky.convo.defs#groupConvo" }))).toBe("group");
    expect(convoKindOf(convo(3))).toBe("group");
    expect(convoKindOf(convo(2, { $type: "chat.bsky.convo.defs#somethingNew" }))).toBe("group");
  });
});

describe("mentionsBot", () => {
  const bot = { did: "did:plc:bot", handle: "reconnexion.example" };
  const facet = (did: string) => [{ index: { byteStart: 0, byteEnd: 5 }, features: [{ $type: "app.bsky.richtext.facet#mention", did }] }];

  it("sees a mention facet with the bot's DID, or the bot's handle in the text", () => {
    expect(mentionsBot({ text: "@bot list", facets: facet(bot.did) }, bot)).toBe(true);
    expect(mentionsBot({ text: "hey @Reconnexion.Example list" }, bot)).toBe(true);
    expect(mentionsBot({ text: "@reconnexion.example" }, bot)).toBe(true);
  });

  it("does not take another account, a longer handle or an address for a mention", () => {
    expect(mentionsBot({ text: "@other list", facets: facet("did:plc:other") }, bot)).toBe(false);
    expect(mentionsBot({ text: "@reconnexion.example.org list" }, bot)).toBe(false);
    expect(mentionsBot({ text: "me@reconnexion.example" }, bot)).toBe(false);
    expect(mentionsBot({ text: "reconnexion.example list" }, bot)).toBe(false);
  });
});
