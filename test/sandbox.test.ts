/**
 * `reconnexion sandbox` from a pipe, as a newcomer would run it: the real
 * CLI in a child process, the service with a local fediverse and a local
 * Bluesky, lines sent as signed DMs, chat messages and public mentions, the
 * answers read where the accounts receive them. Its databases are created on
 * the test server and gone afterwards.
 */
import { describe, expect, inject, it } from "vitest";
import { connect } from "../src/store/database.ts";
import { runCli } from "./harness/cli.ts";

describe("reconnexion sandbox", () => {
  it("answers each sandbox account on its own platform, privately, and leaves no database behind", async () => {
    const adminUrl = inject("adminDatabaseUrl");
    const input = ["status", "/as bob.test", "status", "/public status", "/as erin", "hello", "/as nobody", "/quit", "ignored after quit"].join("\n");
    const { code, stdout, stderr } = await runCli(["sandbox"], {
      env: { DATABASE_URL: adminUrl, DEFAULT_LANGUAGE: "en", LOG_LEVEL: "error" },
      input: `${input}\n`,
      timeoutMs: 240_000,
    });
    expect(stderr).toBe("");
    expect(code).toBe(0);

    // The roster: both bots, every account, who followed whom.
    expect(stdout).toMatch(/fediverse bot +@reconnexion@127\.0\.0\.1:\d+/);
    expect(stdout).toMatch(/Bluesky bot +@reconnexion\.test/);
    expect(stdout).toMatch(/erin +fediverse +@erin@127\.0\.0\.1:\d+ +\(not registered\)/);
    expect(stdout).toContain("alice followed bob, carol, dave, erin");

    const turns = transcript(stdout);
    // alice (fediverse, X follows: bob, carol and dave on Bluesky, carol on the fediverse), by signed DM.
    const alice = turns.get("alice> status")!;
    expect(alice).toMatch(/reconnexion → alice \(fediverse dm\)/);
    expect(alice).toMatch(/Bluesky: 3 — 3 to follow/);
    expect(alice).toMatch(/Mastodon \(fediverse\): 1 — 1 to follow/);
    // bob (Bluesky), by chat: carol on Bluesky, alice and carol on the fediverse.
    const bob = turns.get("bob.test> status")!;
    expect(bob).toMatch(/reconnexion → bob\.test \(bluesky dm\)/);
    expect(bob).toMatch(/Bluesky: 1 — 1 to follow/);
    expect(bob).toMatch(/Mastodon \(fediverse\): 2 — 2 to follow/);
    // A public mention: the counts go by chat, the thread only says where to look.
    const mention = turns.get("bob.test> /public status")!;
    const publicReply = mention.split("\n").filter((l) => l.includes("(bluesky public reply)"));
    expect(publicReply).toHaveLength(1);
    expect(publicReply[0]).not.toMatch(/to follow|Bluesky: \d/);
    expect(mention).toMatch(/\(bluesky dm\)[\s\S]*Bluesky: 1 — 1 to follow/);
    // erin is not in the registry: the welcome says how to become known.
    expect(turns.get("erin> hello")).toMatch(/reconnexion → erin \(fediverse dm\)[\s\S]*don't know this Mastodon \(fediverse\) account yet/);
    expect(turns.get("erin> /as nobody")).toMatch(/no account "nobody"/);
    expect(stdout).not.toContain("ignored after quit");
    expect(stdout).toContain("· stopping the sandbox");

    const admin = connect(adminUrl, { max: 1 });
    try {
      const left = await admin`select datname from pg_database where datname like 'reconnexion_sandbox_%'`;
      expect(left).toEqual([]);
    } finally {
      await admin.end({ timeout: 5 });
    }
  }, 300_000);
});

/** Each echoed input line → what was printed until the next one. */
function transcript(stdout: string): Map<string, string> {
  const turns = new Map<string, string>();
  let current: string | undefined;
  for (const line of stdout.split("\n")) {
    if (/^[a-z.]+> /.test(line)) {
      current = line;
      turns.set(current, "");
    } else if (current) {
      turns.set(current, `${turns.get(current)}${line}\n`);
    }
  }
  return turns;
}
