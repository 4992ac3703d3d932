/**
 * End to end: a whole conversation piped through `reconnexion chat --as …`
 * (the real CLI process, on a test database), checked from its transcript.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli as runCliProcess } from "./harness/cli.ts";
import { createTestDatabase, TEST_SECRET_KEY, type TestDatabase } from "./harness/database.ts";

let db: TestDatabase;
let dataDir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  dataDir = await mkdtemp(path.join(os.tmpdir(), "reconnexion-chat-"));
});
afterAll(async () => {
  await db.drop();
  await rm(dataDir, { recursive: true, force: true });
});

function runCli(args: string[], input: string) {
  return runCliProcess(args, {
    input,
    timeoutMs: 50_000,
    env: {
      DATABASE_URL: db.url,
      DATA_DIR: dataDir,
      SECRET_KEY: TEST_SECRET_KEY,
      PUBLIC_URL: "https://bot.example",
      BLUESKY_HANDLE: "reconnexion.bot.example",
      DEFAULT_LANGUAGE: "en",
    },
  });
}

describe("reconnexion chat", () => {
  it("holds a whole conversation from a pipe", async () => {
    // Alice registered with X and Bluesky; she followed Bob (now on Mastodon) on X.
    const alice = await db.store.people.create();
    await db.store.identities.attach(alice.id, { platform: "x", stableId: "71", handle: "alice_x", verifiedBy: "platform" });
    await db.store.identities.attach(alice.id, { platform: "bluesky", stableId: "did:plc:alicechat", handle: "alice.test", verifiedBy: "platform" });
    const bob = await db.store.people.create();
    await db.store.identities.attach(bob.id, { platform: "x", stableId: "72", handle: "bob_x", verifiedBy: "platform" });
    await db.store.identities.attach(bob.id, { platform: "fediverse", stableId: "https://b.example/users/bob", handle: "bob@b.example", verifiedBy: "platform" });
    await db.sql`insert into x_follow values (71, 72)`;
    await db.store.matches.refreshForFollowers([alice.id]);

    const conversation = [
      "@reconnexion.bot.example help",
      "status",
      "list mastodon",
      "/public list mastodon",
      "link @alice@a.example",
      "langue fr",
      "liste mastodon",
      "what is this",
      "and this",
      "oublier",
      "oublier confirmer",
      "statut",
    ];
    const { code, stdout, stderr } = await runCli(["chat", "--as", "bluesky:alice.test"], conversation.join("\n") + "\n");
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const turns = stdout.split(/^> /m).slice(1);
    expect(turns.map((t) => t.split("\n")[0])).toEqual(conversation);
    const turn = (i: number) => turns[i]!;
    expect(turn(0)).toContain("[private] Hi! I'm reconnexion");
    expect(turn(0)).toContain("• link <code> | @handle");
    expect(turn(1)).toMatch(/\[private\] Your accounts:\n {2}• Bluesky: @alice\.test\n {2}• X: @alice_x\n/);
    expect(turn(1)).toContain("• Mastodon (fediverse): 1 — 1 to follow");
    expect(turn(2)).toContain("1. @bob@b.example (X: @bob_x) — to follow https://b.example/users/bob");
    expect(turn(3)).toMatch(/^\/public list mastodon\n\[public\] I've answered you in a private message\. Nothing there\? .*\n\[private\] .*\n {2}1\. @bob@b\.example/);
    const publicLines = stdout.split("\n").filter((line) => line.startsWith("[public]"));
    expect(publicLines).toHaveLength(1);
    expect(publicLines[0]).not.toMatch(/bob|alice|[2-9A-HJ-NP-Z]{8}/);
    expect(turn(4)).toMatch(/\[private\] Your code: [2-9A-HJ-NP-Z]{8}\n {2}Send `link [2-9A-HJ-NP-Z]{8}` to me from @alice@a\.example/);
    expect(turn(5)).toContain("[private] Désormais, je vous réponds en français.");
    expect(turn(6)).toContain("[private] Personnes suivies sur X présentes sur Mastodon (fédivers) (1, page 1 sur 1) :");
    expect(turn(7)).toContain("[private] Je n’ai pas compris. Envoyez `aide`");
    expect(turn(8)).toBe("and this\n(no reply)\n");
    expect(turn(9)).toContain("`oublier confirmer`");
    expect(turn(10)).toContain("[private] C’est fait : j’ai effacé tout ce que je savais de vous.");
    expect(turn(11)).toContain("Je ne connais pas encore ce compte Bluesky");
    expect(await db.store.people.get(alice.id)).toBeUndefined();
  });

  it("refuses an --as it cannot use, with a clear message and no stack trace", async () => {
    const { code, stderr } = await runCli(["chat", "--as", "bluesky:nobody.test"], "help\n");
    expect(code).not.toBe(0);
    expect(stderr).toContain("use --as bluesky:<did>");
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});
