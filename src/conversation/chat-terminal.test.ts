import { PassThrough, Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { ChatUsageError, resolveChatSender, runChat } from "./chat-terminal.ts";
import { testConfig, unique } from "./testing.ts";

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

async function chat(as: string, lines: string[]): Promise<string> {
  const output = new PassThrough();
  const chunks: Buffer[] = [];
  output.on("data", (c: Buffer) => chunks.push(c));
  await runChat({ store: db.store, config: testConfig(), as, input: Readable.from([lines.join("\n") + "\n"]), output });
  return Buffer.concat(chunks).toString("utf8");
}

describe("resolving --as", () => {
  it("takes DIDs, known handles, accts and actor URIs", async () => {
    const p = await db.store.people.create();
    await db.store.identities.attach(p.id, { platform: "bluesky", stableId: "did:plc:chatknown", handle: "known.test", verifiedBy: "platform" });
    expect(await resolveChatSender(db.store, "bluesky:known.test")).toMatchObject({ stableId: "did:plc:chatknown", handle: "known.test" });
    expect(await resolveChatSender(db.store, "bluesky:did:plc:chatknown")).toMatchObject({ handle: "known.test" });
    expect(await resolveChatSender(db.store, "mastodon:@Ann@Example.org")).toMatchObject({
      platform: "fediverse",
      stableId: "https://example.org/users/Ann",
      handle: "Ann@example.org",
    });
    expect(await resolveChatSender(db.store, "fediverse:https://example.org/users/bo")).toMatchObject({ handle: "bo@example.org" });
  });

  it("explains what it needs", async () => {
    await expect(resolveChatSender(db.store, "alice")).rejects.toBeInstanceOf(ChatUsageError);
    await expect(resolveChatSender(db.store, "bluesky:unknown.test")).rejects.toThrow(/use --as bluesky:<did>/);
    await expect(resolveChatSender(db.store, "fediverse:nope")).rejects.toThrow(/user@host/);
  });
});

describe("the terminal chat", () => {
  it("prints each reply labelled, and (no reply) for silence", async () => {
    const name = unique("tc");
    const p = await db.store.people.create();
    await db.store.identities.attach(p.id, { platform: "bluesky", stableId: `did:plc:${name}`, handle: `${name}.test`, verifiedBy: "platform" });
    const transcript = await chat(`bluesky:${name}.test`, ["aide", "/public statut", "blah", "blah again", "stop"]);
    expect(transcript).toContain("> aide\n[private] Bonjour ! Je suis reconnexion");
    expect(transcript).toContain("> /public statut\n[public] Je vous ai répondu en message privé.");
    expect(transcript).toMatch(/\[private\] Vos comptes :\n {2}• Bluesky : @/);
    expect(transcript).toContain("> blah again\n(no reply)");
    // `stop` is a word of both languages, and one-word messages are no evidence of one: the default answers.
    expect(transcript).toContain("> stop\n[private] Understood");
    expect((await db.store.people.get(p.id))?.notify).toBe(false);
  });
});
