/**
 * The Bluesky bot against a real local Bluesky (dev-env: PLC, PDS, AppView on
 * the test PostgreSQL, all on 127.0.0.1) and the chat stand-in reached through
 * the PDS's atproto-proxy.
 */
import { AtpAgent, RichText, type AppBskyFeedPost } from "@atproto/api";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig, type Config } from "../../src/config.ts";
import type { Logger } from "../../src/logger.ts";
import { startBlueskyNetwork, type BlueskyNetwork, type TestUser } from "../../test/harness/bluesky.ts";
import { startFlakyProxy, type FlakyProxy } from "../../test/harness/bluesky-proxy.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { startBlueskyBot, type BlueskyBot, type BlueskyBotOptions } from "./index.ts";
import { PROFILE_DESCRIPTION } from "./messages.ts";
import { Outbox, type ThreadProgress } from "./outbox.ts";
import { accountKey } from "./session.ts";
import { until } from "../../test/harness/wait.ts";
import { senderKey } from "../../src/store/conversation-state.ts";

let net: BlueskyNetwork;
let db: TestDatabase;
let botUser: TestUser;
let bot: BlueskyBot;
let config: Config;
const logs: Array<Record<string, unknown>> = [];

/** A logger writing to the shared `logs`, and to `own` (one bot's lines) when given. */
function testLogger(own?: Array<Record<string, unknown>>): Logger {
  return pino(
    { level: "debug" },
    {
      write: (line: string) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        own?.push(entry);
      },
    },
  ) as unknown as Logger;
}

function start(
  overrides: {
    config?: Config;
    fetch?: typeof globalThis.fetch;
    notificationPageSize?: number;
    logs?: Array<Record<string, unknown>>;
    options?: BlueskyBotOptions;
  } = {},
): BlueskyBot {
  const started = startBlueskyBot({
    config: overrides.config ?? config,
    store: db.store,
    log: testLogger(overrides.logs),
    options: { pollIntervalMs: 100, backoffMs: 200, maxBackoffMs: 1000, engine: { limits: { messagesPerWindow: 1000 } }, ...(overrides.fetch ? { fetch: overrides.fetch } : {}), ...(overrides.notificationPageSize ? { notificationPageSize: overrides.notificationPageSize } : {}), ...overrides.options },
  });
  if (!started) throw new Error("bot did not start");
  return started;
}

beforeAll(async () => {
  [net, db] = await Promise.all([startBlueskyNetwork(), createTestDatabase()]);
  botUser = await net.createUser("reconnexion");
  config = loadConfig({
    BLUESKY_SERVICE: net.pdsUrl,
    BLUESKY_HANDLE: botUser.handle,
    BLUESKY_APP_PASSWORD: botUser.password,
    DEFAULT_LANGUAGE: "en",
    PUBLIC_URL: "https://bot.example",
  });
  bot = start();
  await bot.ready;
  await bot.nextPoll();
});

afterAll(async () => {
  await bot?.stop();
  await Promise.all([net?.close(), db?.drop()]);
});

/** Posts `text` mentioning the bot (`to`, a real facet), optionally as a reply. */
async function mention(user: TestUser, text: string, replyTo?: { uri: string; cid: string; root?: { uri: string; cid: string } }, to: TestUser = botUser) {
  const rt = new RichText({ text: `@${to.handle} ${text}` });
  await rt.detectFacets(user.agent);
  const record: AppBskyFeedPost.Record = {
    $type: "app.bsky.feed.post",
    text: rt.text,
    ...(rt.facets ? { facets: rt.facets } : {}),
    ...(replyTo ? { reply: { root: replyTo.root ?? { uri: replyTo.uri, cid: replyTo.cid }, parent: { uri: replyTo.uri, cid: replyTo.cid } } } : {}),
    createdAt: new Date().toISOString(),
  };
  const res = await user.agent.com.atproto.repo.createRecord({ repo: user.did, collection: "app.bsky.feed.post", record });
  return { uri: res.data.uri, cid: res.data.cid };
}

/** A mention of the bot whose record says it was written at `createdAt` (a clock behind, a late relay). */
async function mentionCreatedAt(user: TestUser, text: string, createdAt: Date, to: TestUser = botUser) {
  const rt = new RichText({ text: `@${to.handle} ${text}` });
  await rt.detectFacets(user.agent);
  const record: AppBskyFeedPost.Record = { $type: "app.bsky.feed.post", text: rt.text, ...(rt.facets ? { facets: rt.facets } : {}), createdAt: createdAt.toISOString() };
  const res = await user.agent.com.atproto.repo.createRecord({ repo: user.did, collection: "app.bsky.feed.post", record });
  return { uri: res.data.uri, cid: res.data.cid };
}

async function post(user: TestUser, text: string, replyTo?: { uri: string; cid: string; root?: { uri: string; cid: string } }) {
  const res = await user.agent.com.atproto.repo.createRecord({
    repo: user.did,
    collection: "app.bsky.feed.post",
    record: {
      $type: "app.bsky.feed.post",
      text,
      ...(replyTo ? { reply: { root: replyTo.root ?? { uri: replyTo.uri, cid: replyTo.cid }, parent: { uri: replyTo.uri, cid: replyTo.cid } } } : {}),
      createdAt: new Date().toISOString(),
    },
  });
  return { uri: res.data.uri, cid: res.data.cid };
}

/** The bot's (or `of`'s) posts, oldest first. */
async function botPosts(of: TestUser = botUser) {
  const res = await of.agent.com.atproto.repo.listRecords({ repo: of.did, collection: "app.bsky.feed.post", limit: 100 });
  return res.data.records.map((r) => ({ uri: r.uri, cid: r.cid, value: r.value as AppBskyFeedPost.Record })).reverse();
}

async function repliesTo(uri: string, of: TestUser = botUser) {
  return (await botPosts(of)).filter((p) => p.value.reply?.parent.uri === uri);
}

/** Every request of a bot goes through `proxy`, whatever URL its session points at. */
function throughProxy(proxy: FlakyProxy): typeof globalThis.fetch {
  const pds = new URL(net.pdsUrl);
  return (input, init) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    if (url.port === pds.port) url.host = new URL(proxy.url).host;
    return globalThis.fetch(input instanceof Request ? new Request(url, input) : url, init);
  };
}

/** `promise`, or a failure naming `what` after `ms` (a bot that never gets there fails fast, not at the test timeout). */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A fetch that records each XRPC call (method, time) in `calls`. */
function recordingFetch(calls: Array<{ method: string; at: number }>): typeof globalThis.fetch {
  return (input, init) => {
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    calls.push({ method: url.pathname.replace(/^\/xrpc\//, ""), at: Date.now() });
    return globalThis.fetch(input, init);
  };
}

/** Lets the AppView index what was written, then waits for the bot to poll it. */
async function settle(b: BlueskyBot = bot) {
  await net.processAll();
  await b.nextPoll();
}

/** A person the store knows, with `n` matches on Bluesky whose handles are returned. */
let nextX = 9_000_000;
async function knownPersonWithMatches(user: TestUser, n = 3) {
  const x = String(nextX++);
  const person = await db.store.people.create({});
  await db.store.identities.attach(person.id, { platform: "x", stableId: x, handle: `${user.handle.split(".")[0]}_x`, verifiedBy: "platform" });
  await db.store.identities.attach(person.id, { platform: "bluesky", stableId: user.did, handle: user.handle, verifiedBy: "platform" });
  const handles: string[] = [];
  for (let i = 0; i < n; i++) {
    const tx = String(nextX++);
    const handle = `match${tx}.test`;
    const target = await db.store.people.create({});
    await db.store.identities.attach(target.id, { platform: "x", stableId: tx, handle: `m${tx}`, verifiedBy: "platform" });
    await db.store.identities.attach(target.id, { platform: "bluesky", stableId: `did:plc:match${tx}`, handle, verifiedBy: "platform" });
    await db.sql`insert into x_follow values (${x}, ${tx}) on conflict do nothing`;
    handles.push(handle);
  }
  await db.store.matches.refreshForFollowers([person.id]);
  return { personId: person.id, handles };
}

describe("login and identity", () => {
  it("logs in once, saves the session, labels its profile as a bot with a bilingual description", async () => {
    const first = await bot.ready;
    expect(first.did).toBe(botUser.did);
    expect(first.via).toBe("login");
    expect(await db.store.bluesky.loadSession(botUser.handle)).toMatchObject({ did: botUser.did });
    const profile = await botUser.agent.com.atproto.repo.getRecord({ repo: botUser.did, collection: "app.bsky.actor.profile", rkey: "self" });
    const value = profile.data.value as { description?: string; labels?: { values: Array<{ val: string }> } };
    expect(value.description).toBe(PROFILE_DESCRIPTION);
    expect(value.labels?.values.map((l) => l.val)).toContain("bot");
    const declaration = await botUser.agent.com.atproto.repo.getRecord({ repo: botUser.did, collection: "chat.bsky.actor.declaration", rkey: "self" });
    expect((declaration.data.value as { allowIncoming: string }).allowIncoming).toBe("all");
  });

  it("stays off without credentials, saying so in one log line", () => {
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (l: string) => void lines.push(l) }) as unknown as Logger;
    const off = startBlueskyBot({ config: loadConfig({ DEFAULT_LANGUAGE: "en" }), store: db.store, log });
    expect(off).toBeUndefined();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("Bluesky bot off: BLUESKY_HANDLE and BLUESKY_APP_PASSWORD are not set");
    // It names what is missing.
    startBlueskyBot({ config: loadConfig({ BLUESKY_HANDLE: "bot.example" }), store: db.store, log });
    expect(lines[1]).toContain("Bluesky bot off: BLUESKY_APP_PASSWORD is not set");
  });
});

describe("mentions", () => {
  it("answers a user with a custom-domain handle in the thread, mentioning them, and records their current handle", async () => {
    const carol = await net.createUser("carol");
    const person = await db.store.people.create({});
    await db.store.identities.attach(person.id, { platform: "bluesky", stableId: carol.did, handle: "carol-old.test", verifiedBy: "platform" });
    await net.setCustomHandle(carol, "carol.example.org");
    await net.processAll();
    const m = await mention(carol, "help");
    await settle();
    const replies = await repliesTo(m.uri);
    expect(replies.length).toBeGreaterThanOrEqual(1);
    const first = replies[0]!.value;
    expect(first.reply).toMatchObject({ root: { uri: m.uri, cid: m.cid }, parent: { uri: m.uri, cid: m.cid } });
    expect(first.text.startsWith("@carol.example.org ")).toBe(true);
    expect(first.facets?.[0]?.features[0]).toMatchObject({ $type: "app.bsky.richtext.facet#mention", did: carol.did });
    for (const r of replies) expect([...new Intl.Segmenter().segment(r.value.text)].length).toBeLessThanOrEqual(300);
    const identity = await db.store.identities.find({ platform: "bluesky", stableId: carol.did });
    expect(identity?.handle).toBe("carol.example.org");
  });

  it("answers a mention in a reply deep in a thread, under that reply, with the thread's root", async () => {
    const [ann, ben] = [await net.createUser("annie"), await net.createUser("benny")];
    const root = await post(ann, "what do you all think?");
    const r1 = await post(ben, "no idea", { ...root });
    const r2 = await post(ann, "hmm", { ...r1, root });
    const r3 = await post(ben, "let's ask", { ...r2, root });
    const m = await mention(ann, "hi", { ...r3, root });
    await settle();
    const replies = await repliesTo(m.uri);
    expect(replies).toHaveLength(1);
    expect(replies[0]!.value.reply).toMatchObject({ root: { uri: root.uri, cid: root.cid }, parent: { uri: m.uri, cid: m.cid } });
  });

  it("keeps a public status free of private data and sends it by DM", async () => {
    const dana = await net.createUser("dana", { allowIncoming: "all" });
    const { handles } = await knownPersonWithMatches(dana, 3);
    const m = await mention(dana, "status");
    await settle();
    const thread = (await repliesTo(m.uri)).map((r) => r.value.text).join("\n");
    expect(thread).not.toBe("");
    for (const h of handles) expect(thread).not.toContain(h);
    expect(thread).not.toMatch(/\b3\b/);
    const dms = net.chat.messagesBetween(botUser.did, dana.did);
    expect(dms.length).toBeGreaterThanOrEqual(1);
    expect(dms.every((d) => d.sender.did === botUser.did)).toBe(true);
    expect(dms.map((d) => d.text).join("\n")).toContain("Bluesky: 3");
  });

  it("tells a user who does not accept DMs how to open them, and nothing more", async () => {
    const eve = await net.createUser("evelyn", { allowIncoming: "following" });
    const { handles } = await knownPersonWithMatches(eve, 2);
    const m = await mention(eve, "status");
    await settle();
    const replies = await repliesTo(m.uri);
    const text = replies.map((r) => r.value.text).join("\n");
    expect(text).toContain(`Follow @${botUser.handle}`);
    for (const h of handles) expect(text).not.toContain(h);
    expect(net.chat.messagesBetween(botUser.did, eve.did)).toHaveLength(0);
    expect(text).not.toContain("I've answered you in a private message");
  });

  it("never answers an account labelled as a bot", async () => {
    const robo = await net.createUser("roboto", { bot: true, allowIncoming: "all" });
    await net.processAll();
    const m = await mention(robo, "help");
    await settle();
    expect(await repliesTo(m.uri)).toHaveLength(0);
  });
});

describe("chat", () => {
  async function chatAs(user: TestUser) {
    const chat = user.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
    const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [botUser.did] })).data.convo;
    return {
      async say(text: string) {
        await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text } });
        await bot.nextPoll();
        return net.chat.messagesBetween(botUser.did, user.did);
      },
    };
  }

  it("answers commands in French and in English in the same conversation", async () => {
    const fab = await net.createUser("fabien");
    await net.processAll();
    const chat = await chatAs(fab);
    let messages = await chat.say("aide");
    const afterFr = messages.filter((m) => m.sender.did === botUser.did);
    expect(afterFr.length).toBeGreaterThanOrEqual(1);
    expect(afterFr.map((m) => m.text).join("\n")).toMatch(/Bonjour|Je |vous/);
    messages = await chat.say("help");
    const answers = messages.filter((m) => m.sender.did === botUser.did);
    expect(answers.length).toBeGreaterThan(afterFr.length);
    expect(answers.slice(afterFr.length).map((m) => m.text).join("\n")).toMatch(/\b(Hi|I'm|you)\b/);
    for (const m of answers) expect([...new Intl.Segmenter().segment(m.text)].length).toBeLessThanOrEqual(1000);
    // Replies follow the message they answer, in order.
    const order = messages.map((m) => (m.sender.did === botUser.did ? "bot" : m.text));
    expect(order[0]).toBe("aide");
    expect(order.indexOf("help")).toBeGreaterThan(1);
  });

  describe("in a group conversation", () => {
    /** `owner` opens a group with the bot and `others`; each member can then write in it. */
    async function groupOf(owner: TestUser, others: TestUser[]) {
      const chat = owner.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
      const convo = (await chat.chat.bsky.group.createGroup({ members: [botUser.did, ...others.map((o) => o.did)], name: "movers" })).data.convo;
      return {
        id: convo.id,
        async say(user: TestUser, text: string, options: { mentionBot?: boolean } = {}) {
          const rt = new RichText({ text: options.mentionBot ? `@${botUser.handle} ${text}` : text });
          await rt.detectFacets(user.agent);
          await user.agent.withProxy("bsky_chat", "did:web:api.bsky.chat").chat.bsky.convo.sendMessage({
            convoId: convo.id,
            message: { text: rt.text, ...(rt.facets ? { facets: rt.facets } : {}) },
          });
          await bot.nextPoll();
        },
        fromBot: () => net.chat.messagesIn(convo.id).filter((m) => m.sender.did === botUser.did).map((m) => m.text),
      };
    }

    it("answers only messages that mention it, in public terms, and sends the private part by direct message", async () => {
      const [gus, hank] = [await net.createUser("gustave", { allowIncoming: "all" }), await net.createUser("hank")];
      const { handles } = await knownPersonWithMatches(gus, 3);
      await net.processAll();
      const group = await groupOf(gus, [hank]);
      // Talk among the members is not for the bot.
      await group.say(gus, "status");
      await group.say(hank, "is this thing on?");
      expect(group.fromBot()).toEqual([]);
      await group.say(gus, "status", { mentionBot: true });
      const inGroup = group.fromBot().join("\n");
      expect(inGroup).not.toBe("");
      for (const h of handles) expect(inGroup).not.toContain(h);
      expect(inGroup).not.toContain("Bluesky: 3");
      const direct = net.chat.messagesBetween(botUser.did, gus.did).filter((m) => m.sender.did === botUser.did);
      expect(direct.map((m) => m.text).join("\n")).toContain("Bluesky: 3");
    });

    it("tells a member who does not accept its messages how to open them, and puts nothing private in the group", async () => {
      const [ivy, jules] = [await net.createUser("ivy", { allowIncoming: "all" }), await net.createUser("jules", { allowIncoming: "none" })];
      const { handles } = await knownPersonWithMatches(jules, 2);
      await net.processAll();
      const group = await groupOf(ivy, [jules]);
      await group.say(jules, "list", { mentionBot: true });
      const inGroup = group.fromBot().join("\n");
      expect(inGroup).toContain(`Follow @${botUser.handle}`);
      for (const h of handles) expect(inGroup).not.toContain(h);
      expect(net.chat.messagesBetween(botUser.did, jules.did)).toHaveLength(0);
    });

    /** While the bot is down, `member` mentions it in a new group, and a worker that died an hour ago left `saved` with its claim. */
    async function staleGroupClaim(owner: TestUser, member: TestUser, saved: unknown, sent: number) {
      await bot.stop();
      const group = await groupOf(owner, [member]);
      const rt = new RichText({ text: `@${botUser.handle} list` });
      await rt.detectFacets(member.agent);
      const chat = member.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
      const message = (await chat.chat.bsky.convo.sendMessage({ convoId: group.id, message: { text: rt.text, facets: rt.facets } })).data;
      await db.sql`
        insert into bluesky_event (account, event_id, kind, state, claimed_at, replies, sent)
        values (${accountKey(botUser.handle)}, ${`chat:${group.id}:${message.id}`}, 'chat', 'claimed', now() - interval '1 hour', ${db.sql.json(saved as never)}, ${sent})`;
      bot = start();
      await bot.ready;
      await bot.nextPoll();
      return group;
    }

    it("finishes a group answer cut off after its DM: only the group's part goes, once", async () => {
      const [kim, lou] = [await net.createUser("kim", { allowIncoming: "all" }), await net.createUser("lou", { allowIncoming: "all" })];
      await net.processAll();
      const saved = { privateTexts: ["the private part"], publicAnswers: [], notices: ["I've answered you in a private message."], language: "en", handledAs: "list" };
      const group = await staleGroupClaim(kim, lou, saved, 1);
      expect(group.fromBot()).toEqual(["I've answered you in a private message."]);
      expect(net.chat.messagesBetween(botUser.did, lou.did)).toHaveLength(0);
    });

    it("finishes, in a direct conversation, an answer written for a public place (its kind unknown then) without running the message again", async () => {
      const olga = await net.createUser("olga", { allowIncoming: "all" });
      await net.processAll();
      await bot.stop();
      const chat = olga.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
      const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [botUser.did] })).data.convo;
      const message = (await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text: "link ABCD-EFGH" } })).data;
      // Two of three DM pieces were out when the worker died; nothing was said in the conversation yet.
      const saved = { privateTexts: ["piece A", "piece B", "piece C"], publicAnswers: [], notices: ["I've answered you in a private message."], language: "en", handledAs: "link", dmSent: 2 };
      await db.sql`
        insert into bluesky_event (account, event_id, kind, state, claimed_at, replies, sent)
        values (${accountKey(botUser.handle)}, ${`chat:${convo.id}:${message.id}`}, 'chat', 'claimed', now() - interval '1 hour', ${db.sql.json(saved)}, 0)`;
      bot = start();
      await bot.ready;
      await bot.nextPoll();
      const answers = net.chat.messagesBetween(botUser.did, olga.did).filter((m) => m.sender.did === botUser.did).map((m) => m.text);
      expect(answers).toEqual(["piece C", "I've answered you in a private message."]);
    });

    it("sends an answer written as a private one (a list of texts) only to its sender, never into the group", async () => {
      const [max, ned] = [await net.createUser("maxime", { allowIncoming: "all" }), await net.createUser("ned", { allowIncoming: "all" })];
      await net.processAll();
      const group = await staleGroupClaim(max, ned, ["1. @secret.match.test — to follow"], 0);
      expect(group.fromBot()).toEqual([]);
      expect(net.chat.messagesBetween(botUser.did, ned.did).map((m) => m.text)).toEqual(["1. @secret.match.test — to follow"]);
    });
  });

  it("never answers a bot-labelled account in chat", async () => {
    const robo = await net.createUser("robochat", { bot: true });
    await net.processAll();
    const chat = await chatAs(robo);
    const messages = await chat.say("help");
    expect(messages.filter((m) => m.sender.did === botUser.did)).toHaveLength(0);
  });
});

describe("nothing lost, nothing twice", () => {
  it("answers, after a restart, the mentions that arrived while it was stopped (but not deleted ones), resuming its session", async () => {
    await bot.stop();
    const gil = await net.createUser("gilles");
    const a = await mention(gil, "help");
    const b = await mention(gil, "aide");
    const gone = await mention(gil, "status");
    await gil.agent.com.atproto.repo.deleteRecord({ repo: gil.did, collection: "app.bsky.feed.post", rkey: gone.uri.split("/").pop()! });
    await net.processAll();
    bot = start();
    expect((await bot.ready).via).toBe("resumed");
    await settle();
    expect(await repliesTo(a.uri)).toHaveLength(1);
    expect(await repliesTo(b.uri)).toHaveLength(1);
    expect(await repliesTo(gone.uri)).toHaveLength(0);
  });

  it("answers, after a restart, a mention buried under more notifications than a poll used to read", async () => {
    await bot.stop();
    const ida = await net.createUser("ida");
    const m = await mention(ida, "help");
    // Then 60 likes and reposts of the bot's posts: more than 20 pages of 2 (a reader that stops at 20 pages loses it).
    const posts = (await botPosts()).slice(0, 6);
    expect(posts).toHaveLength(6);
    for (let i = 0; i < 5; i++) {
      const fan = await net.createUser(`fan${i}`);
      for (const p of posts) {
        const subject = { uri: p.uri, cid: p.cid };
        await fan.agent.com.atproto.repo.createRecord({ repo: fan.did, collection: "app.bsky.feed.like", record: { $type: "app.bsky.feed.like", subject, createdAt: new Date().toISOString() } });
        await fan.agent.com.atproto.repo.createRecord({ repo: fan.did, collection: "app.bsky.feed.repost", record: { $type: "app.bsky.feed.repost", subject, createdAt: new Date().toISOString() } });
      }
    }
    await net.processAll();
    bot = start({ notificationPageSize: 2 });
    await bot.ready;
    await settle();
    expect(await repliesTo(m.uri)).toHaveLength(1);
    await bot.stop();
    bot = start();
    await bot.ready;
  });

  it("answers an event seen twice only once", async () => {
    const hal = await net.createUser("halley");
    const m = await mention(hal, "help");
    await settle();
    const before = (await botPosts()).length;
    const dmsBefore = net.chat.messages().length;
    // Rewind both positions: every notification and chat message is seen again.
    await db.sql`update bluesky_account set notifications_seen_at = now() - interval '1 hour', chat_cursor = ''`;
    await bot.nextPoll();
    await bot.nextPoll();
    expect(await repliesTo(m.uri)).toHaveLength(1);
    expect((await botPosts()).length).toBe(before);
    expect(net.chat.messages().length).toBe(dmsBefore);
  });
});

describe("mentions listed late (the AppView lists a post at the earlier of its createdAt and when it was indexed)", () => {
  // A bot account of its own: only these tests' notifications in its list.
  let late: BlueskyBot;
  let lateUser: TestUser;
  const asLate = (options: BlueskyBotOptions) =>
    start({ config: { ...config, bluesky: { ...config.bluesky, handle: lateUser.handle, appPassword: lateUser.password } }, options });
  beforeAll(async () => {
    lateUser = await net.createUser("latebot");
    // Only its first poll reads the whole lookback: the others stop at the first page below its position with nothing new.
    late = asLate({ notificationSweepMs: 1e9 });
    await late.ready;
    await late.nextPoll();
    // A bot reading for two hours already: the mentions dated back below are made after its first start.
    await db.sql`update bluesky_account set notifications_from = notifications_from - interval '2 hours' where account = ${accountKey(lateUser.handle)}`;
  });
  afterAll(async () => {
    await late?.stop();
  });

  it("answers a mention whose post says it was written minutes before it reached the AppView", async () => {
    const jo = await net.createUser("lateposter");
    // A mention on time first: the bot's position is now.
    const first = await mention(jo, "help", undefined, lateUser);
    await settle(late);
    expect(await repliesTo(first.uri, lateUser)).toHaveLength(1);
    const behind = await mentionCreatedAt(jo, "aide", new Date(Date.now() - 4 * 60_000), lateUser);
    await settle(late);
    await late.nextPoll();
    // The premise: listed at its createdAt, behind the bot's position.
    const listed = await lateUser.agent.app.bsky.notification.listNotifications({ limit: 100 });
    const n = listed.data.notifications.find((x) => x.uri === behind.uri);
    expect(Date.parse(n!.indexedAt)).toBeLessThan(Date.now() - 3 * 60_000);
    expect(await repliesTo(behind.uri, lateUser)).toHaveLength(1);
    // And never twice.
    await late.nextPoll();
    expect(await repliesTo(behind.uri, lateUser)).toHaveLength(1);
  });

  it("answers a mention listed an hour back, below pages of newer ones already answered (a sweep of the last hours now and then)", async () => {
    await late.stop();
    late = asLate({ notificationPageSize: 2, notificationSweepMs: 500 });
    await late.ready;
    const kim = await net.createUser("lateposter2");
    const first = await mention(kim, "help", undefined, lateUser);
    await settle(late);
    expect(await repliesTo(first.uri, lateUser)).toHaveLength(1);
    // Two answered mentions listed 10 minutes back: below the bot's position, a page with nothing new.
    const answered = [
      await mentionCreatedAt(kim, "help", new Date(Date.now() - 10 * 60_000), lateUser),
      await mentionCreatedAt(kim, "aide", new Date(Date.now() - 11 * 60_000), lateUser),
    ];
    await settle(late);
    await late.nextPoll();
    for (const m of answered) expect(await repliesTo(m.uri, lateUser)).toHaveLength(1);
    // Then one listed an hour back (below that page), and newer ones.
    const behind = await mentionCreatedAt(kim, "aide", new Date(Date.now() - 60 * 60_000), lateUser);
    const after = [await mention(kim, "hello", undefined, lateUser), await mention(kim, "bonjour", undefined, lateUser), await mention(kim, "hi", undefined, lateUser)];
    await settle(late);
    for (const m of after) expect(await repliesTo(m.uri, lateUser)).toHaveLength(1);
    await until("the mention listed an hour back to be answered", async () => (await repliesTo(behind.uri, lateUser)).length > 0, 15_000, 200);
    await late.nextPoll();
    expect(await repliesTo(behind.uri, lateUser)).toHaveLength(1);
  });
});

describe("the first start (reading begins then, not hours back)", () => {
  it("answers no mention listed before it, even one in the lookback, but answers the ones dated after it", async () => {
    const freshUser = await net.createUser("freshbot");
    const lou = await net.createUser("earlyposter");
    // Before the bot's first start: a mention on time, listed then.
    const early = await mention(lou, "help", undefined, freshUser);
    await net.processAll();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const fresh = start({ config: { ...config, bluesky: { ...config.bluesky, handle: freshUser.handle, appPassword: freshUser.password } }, options: { notificationSweepMs: 300 } });
    try {
      await fresh.ready;
      await fresh.nextPoll();
      const [row] = await db.sql<{ from: Date | null; seen: Date | null }[]>`
        select notifications_from as "from", notifications_seen_at as seen from bluesky_account where account = ${accountKey(freshUser.handle)}`;
      const began = row!.from!;
      expect(began).toBeInstanceOf(Date);
      expect(row!.seen).toEqual(began);
      // After it: one dated 20 minutes before it (listed then, in the lookback), one dated just after it, one on time.
      const backdated = await mentionCreatedAt(lou, "aide", new Date(began.getTime() - 20 * 60_000), freshUser);
      const justAfter = await mentionCreatedAt(lou, "aide", new Date(began.getTime() + 1), freshUser);
      const onTime = await mention(lou, "hello", undefined, freshUser);
      await settle(fresh);
      await until("the mentions after the first start to be answered", async () => (await repliesTo(justAfter.uri, freshUser)).length > 0 && (await repliesTo(onTime.uri, freshUser)).length > 0, 15_000, 200);
      // Sweeps of the whole lookback, several.
      await new Promise((resolve) => setTimeout(resolve, 400));
      await fresh.nextPoll();
      await new Promise((resolve) => setTimeout(resolve, 400));
      await fresh.nextPoll();
      // The premise: both listed before the first start, within the lookback of the bot's position.
      const listed = await freshUser.agent.app.bsky.notification.listNotifications({ limit: 100 });
      const at = (uri: string) => Date.parse(listed.data.notifications.find((x) => x.uri === uri)!.indexedAt);
      for (const m of [early, backdated]) {
        expect(at(m.uri)).toBeLessThan(began.getTime());
        expect(at(m.uri)).toBeGreaterThan(Date.now() - 6 * 60 * 60_000);
      }
      expect(await repliesTo(early.uri, freshUser)).toHaveLength(0);
      expect(await repliesTo(backdated.uri, freshUser)).toHaveLength(0);
      expect(await repliesTo(justAfter.uri, freshUser)).toHaveLength(1);
      expect(await repliesTo(onTime.uri, freshUser)).toHaveLength(1);
      // Where reading began is kept, across later polls.
      const [after] = await db.sql<{ from: Date }[]>`select notifications_from as "from" from bluesky_account where account = ${accountKey(freshUser.handle)}`;
      expect(after!.from).toEqual(began);
    } finally {
      await fresh.stop();
    }
  });
});

describe("session", () => {
  it("logs in again when the saved session is refused, and saves the new one", async () => {
    await bot.stop();
    const saved = (await db.store.bluesky.loadSession(botUser.handle)) as Record<string, unknown>;
    await db.store.bluesky.saveSession(botUser.handle, { ...saved, accessJwt: "not-a-token", refreshJwt: "not-a-token" });
    bot = start();
    expect((await bot.ready).via).toBe("login");
    const fresh = (await db.store.bluesky.loadSession(botUser.handle)) as Record<string, unknown>;
    expect(fresh.accessJwt).not.toBe("not-a-token");
    const kim = await net.createUser("kimberly");
    await bot.nextPoll();
    const m = await mention(kim, "help");
    await settle();
    expect(await repliesTo(m.uri)).toHaveLength(1);
  });
});

describe("limits", () => {
  let proxy: FlakyProxy;
  let second: BlueskyBot;
  let secondUser: TestUser;
  /** This bot's log lines only. */
  const secondLogs: Array<Record<string, unknown>> = [];
  beforeAll(async () => {
    proxy = await startFlakyProxy(net.pdsUrl);
    secondUser = await net.createUser("reconnexion2");
    second = start({
      config: { ...config, bluesky: { ...config.bluesky, handle: secondUser.handle, appPassword: secondUser.password } },
      fetch: throughProxy(proxy),
      logs: secondLogs,
    });
    await second.ready;
    await second.nextPoll();
  });
  afterAll(async () => {
    await second?.stop();
    await proxy?.close();
  });

  async function mentionSecond(user: TestUser, text: string) {
    const rt = new RichText({ text: `@${secondUser.handle} ${text}` });
    await rt.detectFacets(user.agent);
    const res = await user.agent.com.atproto.repo.createRecord({
      repo: user.did,
      collection: "app.bsky.feed.post",
      record: { $type: "app.bsky.feed.post", text: rt.text, facets: rt.facets, createdAt: new Date().toISOString() },
    });
    return res.data.uri;
  }

  async function secondRepliesTo(uri: string) {
    const res = await secondUser.agent.com.atproto.repo.listRecords({ repo: secondUser.did, collection: "app.bsky.feed.post", limit: 100 });
    return res.data.records.filter((r) => (r.value as AppBskyFeedPost.Record).reply?.parent.uri === uri);
  }

  it("waits out a 429 until ratelimit-reset, then answers", async () => {
    const ivy = await net.createUser("ivy-user");
    const uri = await mentionSecond(ivy, "help");
    await net.processAll();
    const mark = secondLogs.length;
    proxy.rateLimit("app.bsky.notification.listNotifications", 1, 1);
    const limitedAt = Date.now();
    await second.nextPoll();
    const limited = proxy.seen.filter((s) => s.method === "app.bsky.notification.listNotifications" && s.status === 429);
    expect(limited).toHaveLength(1);
    const retried = proxy.seen.find((s) => s.method === "app.bsky.notification.listNotifications" && s.at > limited[0]!.at);
    expect(retried!.at - limited[0]!.at).toBeGreaterThanOrEqual(500);
    expect(Date.now() - limitedAt).toBeGreaterThanOrEqual(500);
    expect(await secondRepliesTo(uri)).toHaveLength(1);
    expect(secondLogs.slice(mark).filter((l) => l.msg === "Bluesky rate limit: waiting" && l.status === 429)).toHaveLength(1);
  });

  it("waits through a PDS outage and resumes", async () => {
    const jo = await net.createUser("josette");
    const uri = await mentionSecond(jo, "help");
    await net.processAll();
    const [mark, seenMark] = [secondLogs.length, proxy.seen.length];
    const outageEnds = Date.now() + 1200;
    proxy.outage(1200);
    // Two full polls after this point: none can succeed before the outage is over.
    await second.nextPoll();
    const dropped = proxy.seen.slice(seenMark).filter((x) => x.status === 0);
    expect(dropped.length).toBeGreaterThanOrEqual(1);
    const failures = secondLogs.slice(mark).filter((l) => l.msg === "Bluesky poll failed: waiting");
    expect(failures.length).toBeGreaterThanOrEqual(1);
    expect(String(failures[0]!.err)).toMatch(/fetch failed|socket|ECONNRESET/i);
    expect(Date.now()).toBeGreaterThanOrEqual(outageEnds);
    expect(secondLogs.slice(mark).some((l) => l.msg === "Bluesky reachable again: resuming")).toBe(true);
    expect(await secondRepliesTo(uri)).toHaveLength(1);
  });
});

describe("answers cut off midway", () => {
  let third: BlueskyBot;
  let startThird: () => BlueskyBot;
  let thirdUser: TestUser;
  /** Fails the n-th chat message the bot sends (once), as a dropped connection would. */
  let failSendNumber = 0;
  let sends = 0;
  /** Sends failed on purpose so far. */
  let cutSends = 0;
  /** The third bot's log lines only. */
  const thirdLogs: Array<Record<string, unknown>> = [];
  /** Loses the answer to the next record the bot creates: made on the PDS, an error for the bot. */
  let loseNextCreateAnswer = false;
  /** Loses the answer to the n-th chat message the bot sends: stored by the chat service, an error for the bot. */
  let loseSendAnswerNumber = 0;

  beforeAll(async () => {
    thirdUser = await net.createUser("thirdbot");
    const cutting: typeof globalThis.fetch = async (input, init) => {
      const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
      if (url.pathname.endsWith("/chat.bsky.convo.sendMessage")) {
        const n = ++sends;
        if (n === failSendNumber) {
          cutSends++;
          throw new TypeError("fetch failed");
        }
        if (n === loseSendAnswerNumber) {
          cutSends++;
          await globalThis.fetch(input, init);
          throw new TypeError("fetch failed");
        }
      }
      if (url.pathname.endsWith("/com.atproto.repo.createRecord") && loseNextCreateAnswer) {
        loseNextCreateAnswer = false;
        await globalThis.fetch(input, init);
        throw new TypeError("fetch failed");
      }
      return globalThis.fetch(input, init);
    };
    startThird = () => start({ config: { ...config, bluesky: { ...config.bluesky, handle: thirdUser.handle, appPassword: thirdUser.password } }, fetch: cutting, logs: thirdLogs });
    third = startThird();
    await third.ready;
    await third.nextPoll();
  });
  afterAll(async () => {
    await third?.stop();
  });

  async function say(user: TestUser, text: string) {
    const chat = user.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
    const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [thirdUser.did] })).data.convo;
    await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text } });
  }
  const answers = (user: TestUser) => net.chat.messagesBetween(thirdUser.did, user.did).filter((m) => m.sender.did === thirdUser.did).map((m) => m.text);

  it("finishes a chat answer cut off by a network error: every piece once, in order, the command run once", async () => {
    // An answer long enough for several chat messages: `help` in full.
    const witness = await net.createUser("witness");
    await net.processAll();
    await say(witness, "help");
    await third.nextPoll();
    const whole = answers(witness);
    expect(whole.length).toBeGreaterThanOrEqual(2);

    const cut = await net.createUser("cutoff");
    await net.processAll();
    const [mark, cutsBefore] = [thirdLogs.length, cutSends];
    failSendNumber = sends + 2; // the second piece of the next answer fails
    await say(cut, "help");
    await third.nextPoll();
    await third.nextPoll();
    expect(answers(cut)).toEqual(whole);
    // The cut happened, in this answer, and the bot waited and retried because of it.
    expect(cutSends).toBe(cutsBefore + 1);
    const failures = thirdLogs.slice(mark).filter((l) => l.msg === "Bluesky poll failed: waiting");
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ part: "chat", err: expect.stringContaining("fetch failed") });
    // The retry sent the saved answer: the engine counted the message once.
    const [row] = await db.sql<{ window_count: number }[]>`
      select window_count from conversation_sender where sender_key = ${senderKey({ platform: "bluesky", stableId: cut.did })}`;
    expect(row!.window_count).toBe(1);
  });

  it("sends a chat piece once when the chat service stored it but its answer was lost", async () => {
    const witness = await net.createUser("witness2");
    await net.processAll();
    await say(witness, "help");
    await third.nextPoll();
    const whole = answers(witness);
    expect(whole.length).toBeGreaterThanOrEqual(2);
    for (const lost of [1, 2]) {
      const user = await net.createUser(`lostanswer${lost}`);
      await net.processAll();
      const cutsBefore = cutSends;
      loseSendAnswerNumber = sends + lost; // the first, then the second, piece's answer is lost
      await say(user, "help");
      await third.nextPoll();
      await third.nextPoll();
      expect(cutSends).toBe(cutsBefore + 1);
      expect(answers(user)).toEqual(whole);
    }
  });

  it("sends a mention's private answer once when the chat service stored it but its answer was lost", async () => {
    const quin = await net.createUser("quinlost", { allowIncoming: "all" });
    await knownPersonWithMatches(quin, 2);
    await net.processAll();
    const rt = new RichText({ text: `@${thirdUser.handle} status` });
    await rt.detectFacets(quin.agent);
    const cutsBefore = cutSends;
    loseSendAnswerNumber = sends + 1;
    await quin.agent.com.atproto.repo.createRecord({
      repo: quin.did,
      collection: "app.bsky.feed.post",
      record: { $type: "app.bsky.feed.post", text: rt.text, facets: rt.facets, createdAt: new Date().toISOString() },
    });
    await net.processAll();
    await third.nextPoll();
    await third.nextPoll();
    expect(cutSends).toBe(cutsBefore + 1);
    const dms = net.chat.messagesBetween(thirdUser.did, quin.did).filter((m) => m.sender.did === thirdUser.did);
    expect(dms.length).toBeGreaterThanOrEqual(1);
    expect(new Set(dms.map((m) => m.text)).size).toBe(dms.length);
  });

  it("posts an announcement once when the PDS's answer is lost, and returns it", async () => {
    const text = `Lost answer ${Date.now()}: 2 people arrived on Bluesky from X.`;
    loseNextCreateAnswer = true;
    const uri = await third.announce(text, []);
    expect(loseNextCreateAnswer).toBe(false);
    const res = await thirdUser.agent.com.atproto.repo.listRecords({ repo: thirdUser.did, collection: "app.bsky.feed.post", limit: 100 });
    const same = res.data.records.filter((r) => (r.value as AppBskyFeedPost.Record).text === text);
    expect(same.map((r) => r.uri)).toEqual([uri]);
  });

  it("takes over an event whose worker died mid-answer, sending only the rest", async () => {
    const late = await net.createUser("lateanswer");
    await net.processAll();
    // The bot is down while the message arrives and the dead worker's claim is staged.
    await third.stop();
    const chat = late.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
    const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [thirdUser.did] })).data.convo;
    const sentMsg = (await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text: "help" } })).data;
    // A worker claimed it, wrote two pieces of answer, sent the first, and died an hour ago.
    await db.sql`
      insert into bluesky_event (account, event_id, kind, state, claimed_at, replies, sent)
      values (${accountKey(thirdUser.handle)}, ${`chat:${convo.id}:${sentMsg.id}`}, 'chat', 'claimed', now() - interval '1 hour',
              ${db.sql.json(["first piece, already sent", "second piece, still to send"])}, 1)`;
    third = startThird();
    await third.ready;
    await third.nextPoll();
    expect(answers(late)).toEqual(["second piece, still to send"]);
  });

  it("resumes a mention whose DM went out before its worker died: only the public reply is posted", async () => {
    const pat = await net.createUser("patmention");
    await net.processAll();
    await third.stop();
    const rt = new RichText({ text: `@${thirdUser.handle} status` });
    await rt.detectFacets(pat.agent);
    const post = await pat.agent.com.atproto.repo.createRecord({
      repo: pat.did,
      collection: "app.bsky.feed.post",
      record: { $type: "app.bsky.feed.post", text: rt.text, facets: rt.facets, createdAt: new Date().toISOString() },
    });
    await net.processAll();
    const saved = { privateTexts: ["the private part"], publicAnswers: [], notices: ["I've answered you in a private message."], language: "en", handledAs: "status" };
    await db.sql`
      insert into bluesky_event (account, event_id, kind, state, claimed_at, replies, sent)
      values (${accountKey(thirdUser.handle)}, ${post.data.uri}, 'mention', 'claimed', now() - interval '1 hour', ${db.sql.json(saved)}, 1)`;
    third = startThird();
    await third.ready;
    await third.nextPoll();
    const res = await thirdUser.agent.com.atproto.repo.listRecords({ repo: thirdUser.did, collection: "app.bsky.feed.post", limit: 100 });
    const replies = res.data.records.filter((r) => (r.value as AppBskyFeedPost.Record).reply?.parent.uri === post.data.uri);
    expect(replies.map((r) => (r.value as AppBskyFeedPost.Record).text)).toEqual([`@${pat.handle} I've answered you in a private message.`]);
    expect(net.chat.messagesBetween(thirdUser.did, pat.did)).toHaveLength(0);
  });
});

describe("a public thread cut off midway", () => {
  /** An outbox on `user`'s account whose `n`-th post creation fails: before reaching the PDS, or after (the answer lost). */
  async function cuttingOutbox(user: TestUser, n: number, when: "before" | "after") {
    let creates = 0;
    const cutting: typeof globalThis.fetch = async (input, init) => {
      const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
      if (!url.pathname.endsWith("/com.atproto.repo.createRecord") || ++creates !== n) return globalThis.fetch(input, init);
      if (when === "after") await globalThis.fetch(input, init);
      throw new TypeError("fetch failed");
    };
    const agent = new AtpAgent({ service: net.pdsUrl, fetch: cutting });
    await agent.resumeSession(user.agent.session!);
    return new Outbox(agent);
  }

  const texts = ["First part of a long public answer. ".repeat(12), "Second part. ".repeat(30), "Third and last part."];

  for (const when of ["before", "after"] as const) {
    it(`continues where it stopped, each post once and chained, when a post's request fails ${when} reaching the PDS`, async () => {
      const asker = await net.createUser(`thread-${when}`);
      const target = await post(asker, "a question");
      const ref = { parent: target, root: target };
      const outbox = await cuttingOutbox(botUser, 2, when);
      let saved: ThreadProgress | undefined;
      const save = async (p: ThreadProgress) => {
        saved = structuredClone(p);
      };
      await expect(outbox.replyInThread(ref, texts, { did: asker.did, handle: asker.handle }, "en", { save })).rejects.toThrow(/fetch failed/);
      expect(saved!.posted).toHaveLength(1);
      // The retry posts what the first try planned, even if the asker's handle changed meanwhile.
      const posts = await outbox.replyInThread(ref, texts, { did: asker.did, handle: "renamed.test" }, "en", { saved: saved!, save });
      expect(posts.length).toBeGreaterThanOrEqual(3);

      const mine = (await botPosts()).filter((p) => p.value.reply?.root.uri === target.uri);
      expect(mine).toHaveLength(posts.length);
      // One chain: each post answers the one before it, the first answers the question.
      expect(mine.map((p) => p.uri).sort()).toEqual(posts.map((p) => p.uri).sort());
      posts.forEach((p, i) => {
        const record = mine.find((m) => m.uri === p.uri)!;
        expect(record.value.reply!.parent.uri).toBe(i === 0 ? target.uri : posts[i - 1]!.uri);
      });
      expect(mine.map((p) => p.value.text).join("")).not.toContain("renamed");

      // A second worker that took the answer over from an older save finds the posts already made.
      const stale = { ...saved!, posted: saved!.posted.slice(0, 1) };
      const again = await outbox.replyInThread(ref, texts, { did: asker.did, handle: asker.handle }, "en", { saved: stale });
      expect(again.map((p) => p.uri)).toEqual(posts.map((p) => p.uri));
      expect((await botPosts()).filter((p) => p.value.reply?.root.uri === target.uri)).toHaveLength(posts.length);
      expect(mine.find((p) => p.uri === posts[0]!.uri)!.value.text.startsWith(`@${asker.handle} `)).toBe(true);
    });
  }
});

describe("public announcements", () => {
  it("posts on its own account, mentioning the people it names (a facet with their DID), and refuses a post too long", async () => {
    const welcomed = await net.createUser("welcomed");
    const text = `Welcome @${welcomed.handle}, just arrived on Bluesky from X! Left X too? Send me a message.`;
    const uri = await bot.announce(text, [{ did: welcomed.did, handle: welcomed.handle }]);
    const post = (await botPosts()).find((p) => p.uri === uri)!;
    expect(post.value.text).toBe(text);
    expect(post.value.reply).toBeUndefined();
    // Tagged with the language it is written in (DEFAULT_LANGUAGE), for feeds and translation.
    expect(post.value.langs).toEqual(["en"]);
    const mentions = (post.value.facets ?? []).flatMap((f) => f.features).filter((f) => f.$type === "app.bsky.richtext.facet#mention");
    expect(mentions).toEqual([expect.objectContaining({ did: welcomed.did })]);
    await expect(bot.announce("x".repeat(301), [])).rejects.toThrow(/300 graphemes/);
  });

  it("takes a post back (its record deleted), once or twice alike, and never someone else's", async () => {
    const uri = await bot.announce("Welcome to the 2 people who just arrived on Bluesky from X!", []);
    expect((await botPosts()).some((p) => p.uri === uri)).toBe(true);
    await bot.retract(uri);
    expect((await botPosts()).some((p) => p.uri === uri)).toBe(false);
    await bot.retract(uri);
    const other = await net.createUser("notthebot");
    await expect(bot.retract(`at://${other.did}/app.bsky.feed.post/3kabcdefghijk`)).rejects.toThrow(/not one of this bot's posts/);
  });
});

describe("an app password without access to direct messages", () => {
  let dmless: BlueskyBot;
  let dmlessUser: TestUser;
  const own: Array<Record<string, unknown>> = [];
  const calls: Array<{ method: string; at: number }> = [];
  beforeAll(async () => {
    dmlessUser = await net.createUser("nodmbot");
    // "Allow access to your direct messages" left unticked: a non-privileged app password.
    const created = await dmlessUser.agent.com.atproto.server.createAppPassword({ name: "reconnexion", privileged: false });
    expect(created.data.privileged).toBe(false);
    dmless = start({
      config: { ...config, bluesky: { ...config.bluesky, handle: dmlessUser.handle, appPassword: created.data.password } },
      fetch: recordingFetch(calls),
      logs: own,
    });
    await dmless.ready;
    await dmless.nextPoll();
  });
  afterAll(async () => {
    await dmless?.stop();
  });

  it("says once, in one error line, that the app password needs DM access, and keeps reading mentions at the normal rate while chat backs off", async () => {
    const from = Date.now();
    await new Promise((r) => setTimeout(r, 3000));
    const count = (method: string) => calls.filter((c) => c.at >= from && c.method === method).length;
    expect(count("chat.bsky.convo.getLog")).toBeGreaterThanOrEqual(1);
    // Mentions every 100 ms (plus the pass itself), chat backed off to 1 s: a margin for a busy machine.
    expect(count("app.bsky.notification.listNotifications")).toBeGreaterThanOrEqual(2 * count("chat.bsky.convo.getLog"));
    const errors = own.filter((l) => (l.level as number) >= 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(/app password.*direct messages/i);
  });

  it("answers a mention in the thread without its private part, and says the bot cannot write privately", async () => {
    const quinn = await net.createUser("quinn", { allowIncoming: "all" });
    const { handles } = await knownPersonWithMatches(quinn, 2);
    const m = await mention(quinn, "status", undefined, dmlessUser);
    await net.processAll();
    await dmless.nextPoll();
    const replies = await repliesTo(m.uri, dmlessUser);
    expect(replies.length).toBeGreaterThanOrEqual(1);
    const text = replies.map((r) => r.value.text).join("\n");
    for (const h of handles) expect(text).not.toContain(h);
    expect(text).not.toContain("Bluesky: 2");
    expect(text).toContain("can't send private messages");
    expect(text).not.toContain("I've answered you in a private message");
    expect(net.chat.messagesBetween(dmlessUser.did, quinn.did)).toHaveLength(0);
    const [event] = await db.sql<{ state: string }[]>`
      select state from bluesky_event where account = ${accountKey(dmlessUser.handle)} and event_id = ${m.uri}`;
    expect(event?.state).toBe("done");
    // Still one error line: the refusal is not logged again for each mention or poll.
    expect(own.filter((l) => (l.level as number) >= 50)).toHaveLength(1);
  });

  it("answers, once given DM access, the chat messages sent since its first start (not only those after)", async () => {
    const rhea = await net.createUser("rheachat");
    await net.processAll();
    const chat = rhea.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
    const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [dmlessUser.did] })).data.convo;
    await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text: "help" } });
    await dmless.nextPoll();
    expect(net.chat.messagesBetween(dmlessUser.did, rhea.did).filter((m) => m.sender.did === dmlessUser.did)).toHaveLength(0);
    // The person ticks "allow access to your direct messages": a new app password, a restart.
    await dmless.stop();
    const privileged = await dmlessUser.agent.com.atproto.server.createAppPassword({ name: "reconnexion-dm", privileged: true });
    dmless = start({
      config: { ...config, bluesky: { ...config.bluesky, handle: dmlessUser.handle, appPassword: privileged.data.password } },
      fetch: recordingFetch(calls),
      logs: own,
    });
    await dmless.ready;
    await dmless.nextPoll();
    await dmless.nextPoll();
    expect(net.chat.messagesBetween(dmlessUser.did, rhea.did).filter((m) => m.sender.did === dmlessUser.did).length).toBeGreaterThanOrEqual(1);
  });
});

describe("a lost session", () => {
  let proxy: FlakyProxy;
  let lost: BlueskyBot;
  let lostUser: TestUser;
  const own: Array<Record<string, unknown>> = [];
  beforeAll(async () => {
    proxy = await startFlakyProxy(net.pdsUrl);
    lostUser = await net.createUser("lostsession");
    lost = start({
      config: { ...config, bluesky: { ...config.bluesky, handle: lostUser.handle, appPassword: lostUser.password } },
      fetch: throughProxy(proxy),
      logs: own,
    });
    await lost.ready;
    await lost.nextPoll();
  });
  afterAll(async () => {
    await lost?.stop();
    await proxy?.close();
  });

  /** Revokes the bot's session on the PDS (its refresh token) and has its access token refused as expired (on `methods`, or all). */
  async function revokeSession(methods?: readonly string[]) {
    const saved = (await db.store.bluesky.loadSession(accountKey(lostUser.handle))) as { accessJwt: string; refreshJwt: string };
    await new AtpAgent({ service: net.pdsUrl }).com.atproto.server.deleteSession(undefined, { headers: { authorization: `Bearer ${saved.refreshJwt}` } });
    proxy.refuseToken(saved.accessJwt, methods);
    return saved;
  }

  const eventState = async (uri: string) =>
    (await db.sql<{ state: string }[]>`select state from bluesky_event where account = ${accountKey(lostUser.handle)} and event_id = ${uri}`)[0]?.state;

  it("logs in again when its session dies mid-poll, and answers every mention of that poll (none skipped)", async () => {
    const rae = await net.createUser("raelle");
    await net.processAll();
    const before = await revokeSession(["app.bsky.feed.getPosts"]);
    const a = await mention(rae, "help", undefined, lostUser);
    const b = await mention(rae, "aide", undefined, lostUser);
    await net.processAll();
    await within(lost.nextPoll(), 15_000, "a poll after the session was lost");
    // The notifications were read with the old session; answering them met the refusal.
    expect(proxy.seen.some((x) => x.method === "app.bsky.feed.getPosts" && x.status === 400)).toBe(true);
    expect(await repliesTo(a.uri, lostUser)).toHaveLength(1);
    expect(await repliesTo(b.uri, lostUser)).toHaveLength(1);
    expect([await eventState(a.uri), await eventState(b.uri)]).toEqual(["done", "done"]);
    expect(own.some((l) => l.msg === "cannot answer Bluesky mention")).toBe(false);
    expect(own.filter((l) => l.msg === "Bluesky session lost: logged in again")).toHaveLength(1);
    const fresh = (await db.store.bluesky.loadSession(accountKey(lostUser.handle))) as { accessJwt: string };
    expect(fresh.accessJwt).not.toBe(before.accessJwt);
  });

  it("logs in again when every call is refused, then answers mentions and chat messages as before", async () => {
    const sam = await net.createUser("samuel");
    await net.processAll();
    const logins = own.filter((l) => l.msg === "Bluesky session lost: logged in again").length;
    const mark = proxy.seen.length;
    await revokeSession();
    const m = await mention(sam, "help", undefined, lostUser);
    const chat = sam.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
    const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [lostUser.did] })).data.convo;
    await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text: "help" } });
    await net.processAll();
    await within(lost.nextPoll(), 15_000, "a poll after the session was lost");
    expect(proxy.seen.slice(mark).some((x) => x.status === 400)).toBe(true);
    expect(await repliesTo(m.uri, lostUser)).toHaveLength(1);
    expect(net.chat.messagesBetween(lostUser.did, sam.did).filter((x) => x.sender.did === lostUser.did).length).toBeGreaterThanOrEqual(1);
    expect(own.filter((l) => l.msg === "Bluesky session lost: logged in again")).toHaveLength(logins + 1);
  });
});

describe("profile upkeep", () => {
  let bot4: BlueskyBot;
  let bot4User: TestUser;
  const own: Array<Record<string, unknown>> = [];
  /** While set, the PDS "refuses" every putRecord of this bot for good (400). */
  let refuseProfile = true;
  let refusals = 0;
  const refusedAt: number[] = [];
  beforeAll(async () => {
    bot4User = await net.createUser("profilebot");
    const refusing: typeof globalThis.fetch = async (input, init) => {
      const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
      if (refuseProfile && url.pathname.endsWith("/com.atproto.repo.putRecord")) {
        refusals++;
        refusedAt.push(Date.now());
        return new Response(JSON.stringify({ error: "InvalidRequest", message: "Invalid app.bsky.actor.profile record" }), {
          status: 400,
          headers: { "content-type": "application/json" },
        });
      }
      return globalThis.fetch(input, init);
    };
    bot4 = start({ config: { ...config, bluesky: { ...config.bluesky, handle: bot4User.handle, appPassword: bot4User.password } }, fetch: refusing, logs: own });
    await bot4.ready;
  });
  afterAll(async () => {
    await bot4?.stop();
  });

  const profileLabels = async () => {
    const got = await bot4User.agent.com.atproto.repo.getRecord({ repo: bot4User.did, collection: "app.bsky.actor.profile", rkey: "self" });
    return ((got.data.value as { labels?: { values: Array<{ val: string }> } }).labels?.values ?? []).map((l) => l.val);
  };

  it("answers mentions while its profile cannot be written, says so, and writes the profile once it can", async () => {
    await within(bot4.nextPoll(), 15_000, "a poll while the profile is refused");
    const tess = await net.createUser("tess");
    const m = await mention(tess, "help", undefined, bot4User);
    await net.processAll();
    await within(bot4.nextPoll(), 15_000, "a poll while the profile is refused");
    expect(await repliesTo(m.uri, bot4User)).toHaveLength(1);
    expect(refusals).toBeGreaterThanOrEqual(1);
    const errors = own.filter((l) => l.msg === "Bluesky profile upkeep failed: retrying later");
    expect(errors.length).toBeGreaterThanOrEqual(1);
    expect(errors[0]).toMatchObject({ level: 50, err: expect.stringContaining("InvalidRequest") });
    // Retried later with back-off (from 200 ms here), not at every poll (100 ms here).
    for (let i = 1; i < refusedAt.length; i++) expect(refusedAt[i]! - refusedAt[i - 1]!).toBeGreaterThanOrEqual(190);
    expect(await profileLabels()).not.toContain("bot");

    refuseProfile = false;
    const deadline = Date.now() + 10_000;
    // Written once done: the profile, then the chat declaration, then the version saved.
    while ((await db.store.bluesky.profileVersion(accountKey(bot4User.handle))) < 1) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await profileLabels()).toContain("bot");
  });
});

describe("one event, two workers", () => {
  let fifth: BlueskyBot;
  let fifthUser: TestUser;
  const own: Array<Record<string, unknown>> = [];
  /** The n-th chat message this bot sends gets a 429 that says to wait `retryAfterSeconds` (once). */
  let limitSendNumber = 0;
  const retryAfterSeconds = 3;
  let sendAttempts = 0;
  let limitedAt = 0;
  beforeAll(async () => {
    fifthUser = await net.createUser("fifthbot");
    const limiting: typeof globalThis.fetch = async (input, init) => {
      const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
      if (url.pathname.endsWith("/chat.bsky.convo.sendMessage") && ++sendAttempts === limitSendNumber) {
        limitedAt = Date.now();
        return new Response(JSON.stringify({ error: "RateLimitExceeded", message: "Rate Limit Exceeded" }), {
          status: 429,
          headers: { "content-type": "application/json", "retry-after": String(retryAfterSeconds) },
        });
      }
      return globalThis.fetch(input, init);
    };
    fifth = start({
      config: { ...config, bluesky: { ...config.bluesky, handle: fifthUser.handle, appPassword: fifthUser.password } },
      fetch: limiting,
      logs: own,
      options: { claimHeartbeatMs: 100 },
    });
    await fifth.ready;
    await fifth.nextPoll();
  });
  afterAll(async () => {
    await fifth?.stop();
  });

  it("keeps its claim alive while a send waits on a 429, and stops before the next piece once another worker has taken it over", async () => {
    const uma = await net.createUser("uma");
    await net.processAll();
    const chat = uma.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
    const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [fifthUser.did] })).data.convo;
    limitSendNumber = sendAttempts + 2; // the second piece of the answer waits
    const msg = (await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text: "help" } })).data;
    const eventId = `chat:${convo.id}:${msg.id}`;
    const key = accountKey(fifthUser.handle);
    const fromBot = () => net.chat.messagesBetween(fifthUser.did, uma.did).filter((m) => m.sender.did === fifthUser.did);

    const deadline = Date.now() + 10_000;
    while (!limitedAt) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(fromBot()).toHaveLength(1);
    // 1.5 s into the wait, the claim is fresh: its holder renews it (heartbeat).
    await new Promise((r) => setTimeout(r, 1500));
    const [row] = await db.sql<{ age: number; sent: number }[]>`
      select extract(epoch from now() - claimed_at)::float as age, sent from bluesky_event where account = ${key} and event_id = ${eventId}`;
    expect(row!.sent).toBe(1);
    expect(row!.age).toBeLessThan(1);

    // Another worker takes the event over (as it would a claim gone stale).
    const other = await db.store.bluesky.claim(key, eventId, "chat", { staleSeconds: 0 });
    expect(other.status).toBe("resume");
    if (other.status !== "resume") throw new Error("unreachable");
    // Past the end of the wait: the first worker sent nothing more, and left the claim to the other.
    while (Date.now() < limitedAt + retryAfterSeconds * 1000 + 1000) await new Promise((r) => setTimeout(r, 100));
    expect(fromBot()).toHaveLength(1);
    expect(sendAttempts).toBe(limitSendNumber);
    const [after] = await db.sql<{ state: string; sent: number; claim_token: string }[]>`
      select state, sent, claim_token from bluesky_event where account = ${key} and event_id = ${eventId}`;
    expect(after).toEqual({ state: "claimed", sent: 1, claim_token: other.token });
    expect(own.some((l) => l.msg === "Bluesky claim lost: another worker took the event over" && l.event === eventId)).toBe(true);
    // The other worker finishes it: the first does not answer it again.
    await db.store.bluesky.finish(key, eventId, other.token, "done");
    await fifth.nextPoll();
    expect(fromBot()).toHaveLength(1);
  });
});

describe("events that keep failing", () => {
  let sixth: BlueskyBot;
  let sixthUser: TestUser;
  const own: Array<Record<string, unknown>> = [];
  /** getProfile of this DID, and getPosts of this URI, answer with a body that does not parse (a fault of that one event). */
  let unreadableActor: string | undefined;
  let unreadablePost: string | undefined;
  /** The next this many messages the bot sends get an answer that does not parse (and are not sent). */
  let garbledSends = 0;
  /** While set, the chat service refuses every message the bot sends (403), while reading the log still works. */
  let refuseSends = false;
  let sendsRefused = 0;
  const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  beforeAll(async () => {
    sixthUser = await net.createUser("sixthbot");
    const faulty: typeof globalThis.fetch = async (input, init) => {
      const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
      if (unreadableActor && url.pathname.endsWith("/app.bsky.actor.getProfile") && url.searchParams.get("actor") === unreadableActor) {
        return json(200, { did: 42, handle: ["not", "a", "handle"] });
      }
      if (unreadablePost && url.pathname.endsWith("/app.bsky.feed.getPosts") && url.searchParams.getAll("uris").includes(unreadablePost)) {
        return json(200, { posts: [{ uri: 7 }] });
      }
      if (garbledSends > 0 && url.pathname.endsWith("/chat.bsky.convo.sendMessage")) {
        garbledSends--;
        return json(200, { id: 7, rev: [] });
      }
      if (refuseSends && url.pathname.endsWith("/chat.bsky.convo.sendMessage")) {
        sendsRefused++;
        return json(403, { error: "Forbidden", message: "Sending is not allowed" });
      }
      return globalThis.fetch(input, init);
    };
    sixth = start({
      config: { ...config, bluesky: { ...config.bluesky, handle: sixthUser.handle, appPassword: sixthUser.password } },
      fetch: faulty,
      logs: own,
    });
    await sixth.ready;
    await sixth.nextPoll();
  });
  afterAll(async () => {
    await sixth?.stop();
  });

  const event = async (eventId: string) =>
    (await db.sql<{ state: string; failures: number }[]>`
      select state, failures from bluesky_event where account = ${accountKey(sixthUser.handle)} and event_id = ${eventId}`)[0];
  const fromBot = (user: TestUser) => net.chat.messagesBetween(sixthUser.did, user.did).filter((m) => m.sender.did === sixthUser.did);
  async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 20_000) {
    const deadline = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  async function send(user: TestUser, text: string) {
    const chat = user.agent.withProxy("bsky_chat", "did:web:api.bsky.chat");
    const convo = (await chat.chat.bsky.convo.getConvoForMembers({ members: [sixthUser.did] })).data.convo;
    const msg = (await chat.chat.bsky.convo.sendMessage({ convoId: convo.id, message: { text } })).data;
    return `chat:${convo.id}:${msg.id}`;
  }

  it("gives up a chat message whose answer fails for a reason of its own after a few tries, answers the next one, and tells its sender in their language", async () => {
    const vic = await net.createUser("victor");
    const wen = await net.createUser("wendy");
    await net.processAll();
    // The answer's first piece fails 5 times; the pass waits on it, then gives it up.
    garbledSends = 5;
    const stuck = await send(vic, "aide");
    const next = await send(wen, "help");
    await until("the message after the failing one answered", async () => (await event(next))?.state === "done");
    expect(garbledSends).toBe(0);
    expect(await event(stuck)).toEqual({ state: "failed", failures: 5 });
    expect(await event(next)).toEqual({ state: "done", failures: 0 });
    expect(fromBot(vic).map((m) => m.text)).toEqual(["Désolé, je n’ai pas pu répondre à ce message : un problème de mon côté. Renvoyez-le plus tard, s’il vous plaît."]);
    expect(own.filter((l) => l.msg === "Bluesky chat message failed: trying again")).toHaveLength(4);
    expect(own.filter((l) => l.msg === "gave up on Bluesky chat message")).toEqual([expect.objectContaining({ level: 50, failures: 5 })]);
    // Not taken up again.
    await sixth.nextPoll();
    expect(fromBot(vic)).toHaveLength(1);
  });

  it("skips a chat message from an account taken down since, and answers the next one (the chat is not held up)", async () => {
    const spam = await net.createUser("spamtaken");
    const ann = await net.createUser("annanext");
    await net.processAll();
    const gone = await send(spam, "help");
    // The AppView takes the account down before the bot reads its profile.
    await net.network.bsky.db.db.updateTable("actor").set({ takedownRef: "spam" }).where("did", "=", spam.did).execute();
    const next = await send(ann, "help");
    await until("the message after the taken-down sender's answered", async () => (await event(next))?.state === "done");
    expect((await event(gone))?.state).toBe("skipped");
    expect(fromBot(spam)).toHaveLength(0);
  });

  it("gives up, without a word, a chat message from a sender whose profile cannot be read (it may be a bot)", async () => {
    const zoe = await net.createUser("zoe");
    const ana = await net.createUser("anabel");
    await net.processAll();
    unreadableActor = zoe.did;
    const stuck = await send(zoe, "help");
    const next = await send(ana, "help");
    await until("the message after the failing one answered", async () => (await event(next))?.state === "done");
    expect(await event(stuck)).toEqual({ state: "failed", failures: 5 });
    expect(fromBot(zoe)).toHaveLength(0);
    // Fixed later: the message given up is not taken up again.
    unreadableActor = undefined;
    await sixth.nextPoll();
    expect(fromBot(zoe)).toHaveLength(0);
    expect(await event(next)).toEqual({ state: "done", failures: 0 });
  });

  it("gives up a mention that cannot be read after a few tries, answers the next one, and says so in its thread", async () => {
    const xia = await net.createUser("xiadani");
    await net.processAll();
    const stuck = await mention(xia, "help", undefined, sixthUser);
    unreadablePost = stuck.uri;
    const next = await mention(xia, "status", undefined, sixthUser);
    await net.processAll();
    await until("the mention after the failing one answered", async () => (await repliesTo(next.uri, sixthUser)).length > 0);
    expect(await event(stuck.uri)).toEqual({ state: "failed", failures: 5 });
    const said = await repliesTo(stuck.uri, sixthUser);
    expect(said.map((p) => p.value.text)).toEqual([`@${xia.handle} Sorry, I couldn't answer that message: something went wrong on my side. Please send it again later.`]);
    expect(said[0]!.value.reply!.root.uri).toBe(stuck.uri);
    unreadablePost = undefined;
    await sixth.nextPoll();
    expect(await repliesTo(stuck.uri, sixthUser)).toHaveLength(1);
  });

  it("keeps a chat message it could not send its answer to, and answers it once sending works again", async () => {
    const yan = await net.createUser("yannick");
    await net.processAll();
    refuseSends = true;
    const refusedBefore = sendsRefused;
    const waiting = await send(yan, "help");
    await until("a send refused", () => sendsRefused > refusedBefore);
    await sixth.nextPoll();
    // Not answered, and not marked answered either: the message waits, its failures not counted against it.
    expect(fromBot(yan)).toHaveLength(0);
    expect(await event(waiting)).toEqual({ state: "released", failures: 0 });
    refuseSends = false;
    await until("the waiting message answered", async () => (await event(waiting))?.state === "done");
    const answers = fromBot(yan);
    expect(answers.length).toBeGreaterThanOrEqual(1);
    expect(answers.map((m) => m.text).join("\n")).toMatch(/\b(Hi|I'm|you)\b/);
    // Each piece once.
    expect(new Set(answers.map((m) => m.text)).size).toBe(answers.length);
  });
});
