/**
 * `reconnexion sandbox` from a pipe, as a newcomer would run it: the real
 * CLI in a child process, the service with a local fediverse and a local
 * Bluesky, lines sent as signed DMs, chat messages and public mentions, the
 * answers read where the accounts receive them. Its databases are created on
 * the test server and gone afterwards.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { describe, expect, inject, it } from "vitest";
import { connect } from "../src/store/database.ts";
import { authorizeOnMastodon } from "./harness/browser-forms.ts";
import { CLI, ROOT, runCli } from "./harness/cli.ts";

describe("reconnexion sandbox", () => {
  it("answers each sandbox account on its own platform, privately, and leaves no database behind (nor what a killed one left)", async () => {
    const adminUrl = inject("adminDatabaseUrl");
    // What a killed sandbox left behind: dropped by the next one.
    const admin = connect(adminUrl, { max: 1 });
    await admin.unsafe("create database reconnexion_sandbox_killed_earlier");
    await admin.end({ timeout: 5 });
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
    expect(stdout).toMatch(/erin +fediverse +@erin@127\.0\.0\.1:\d+ +password erin-password +\(not registered\)/);
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

    expect(await sandboxDatabases(adminUrl)).toEqual([]);
  }, 300_000);

  it("lets accounts authorize reconnections, on the local instance and in a browser on the local PDS, then follows for them", async () => {
    const adminUrl = inject("adminDatabaseUrl");
    const session = SandboxSession.start({ DATABASE_URL: adminUrl, DEFAULT_LANGUAGE: "en", LOG_LEVEL: "error" });
    const browserDir = await mkdtemp(path.join(os.tmpdir(), "reconnexion-chromium-"));
    const browser = await chromium.launchPersistentContext(browserDir, {
      executablePath: "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const link = /http:\/\/127\.0\.0\.1:\d+\/connect\/[\w-]+/;
    try {
      await session.waitFor(/The sandbox is up/, 120_000);
      // alice followed carol on X, and carol is on the fediverse: the instance's OAuth form.
      const [aliceLink] = await session.say("reconnect", link);
      const done = await authorizeOnMastodon(aliceLink, { name: "alice", password: "alice-password" });
      expect(done.status).toBe(200);
      expect(done.text).toContain("account is authorized");

      // bob followed carol on X, and carol is on Bluesky: the PDS's own sign-in and consent pages.
      await session.say("/as bob.test", /^/);
      const [bobLink] = await session.say("reconnect", link);
      const page = await browser.newPage();
      try {
        await page.goto(bobLink);
        await page.getByRole("button", { name: "Sign in with Bluesky" }).click();
        const username = page.getByRole("textbox", { name: "Username or Email" });
        if (!(await username.inputValue())) await username.fill("bob.test");
        await page.getByRole("textbox", { name: "Password" }).fill("bob-password");
        await page.getByRole("button", { name: "Sign in" }).click({ timeout: 10_000 });
        await page.getByRole("button", { name: "Authorize" }).click({ timeout: 10_000 });
        await page.waitForURL("**/oauth/bluesky/callback**", { timeout: 10_000 });
        expect(await page.locator("body").innerText()).toContain("is authorized");
      } finally {
        await page.close();
      }

      // The jobs run in the service's workers; status says when carol is followed.
      const followed = async (account: string, platform: string) => {
        await session.say(`/as ${account}`, /^/);
        let status = "";
        for (let attempt = 0; attempt < 30 && !status.includes(`${platform}: 1 — 0 to follow, 1 followed`); attempt++) {
          await new Promise((resolve) => setTimeout(resolve, 500));
          await session.say("status", /Settings:[^\n]*\n/);
          status = session.since(session.lastMark);
        }
        return status;
      };
      expect(await followed("alice", "Mastodon (fediverse)")).toContain("Mastodon (fediverse): 1 — 0 to follow, 1 followed");
      expect(await followed("bob.test", "Bluesky")).toContain("Bluesky: 1 — 0 to follow, 1 followed");
      // Each final summary came by DM, on the platform of the reconnection.
      expect(session.output).toMatch(/reconnexion → alice \(fediverse dm\): @alice@\S+ +Reconnection on Mastodon \(fediverse\) finished: 1 followed/);
      expect(session.output).toMatch(/reconnexion → bob\.test \(bluesky dm\): Reconnection on Bluesky finished: 1 followed/);
      const { code, stderr } = await session.end();
      expect(stderr).toBe("");
      expect(code).toBe(0);
    } finally {
      session.kill();
      await browser.close();
      await rm(browserDir, { recursive: true, force: true });
    }
    expect(await sandboxDatabases(adminUrl)).toEqual([]);
  }, 300_000);
});

async function sandboxDatabases(adminUrl: string): Promise<string[]> {
  const admin = connect(adminUrl, { max: 1 });
  try {
    const rows = await admin<{ datname: string }[]>`select datname from pg_database where starts_with(datname, 'reconnexion_sandbox_')`;
    return rows.map((r) => r.datname);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** The sandbox CLI driven line by line, with its output read as it comes. */
class SandboxSession {
  output = "";
  stderr = "";
  lastMark = 0;
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<number | null>;

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.child = child;
    child.stdout.on("data", (c: Buffer) => (this.output += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (this.stderr += c.toString("utf8")));
    this.exited = new Promise((resolve) => child.on("close", resolve));
  }

  static start(env: Record<string, string>): SandboxSession {
    return new SandboxSession(spawn(process.execPath, [CLI, "sandbox"], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env } }));
  }

  since(mark: number): string {
    return this.output.slice(mark);
  }

  /** Waits until the output after `from` matches. */
  async waitFor(pattern: RegExp, timeoutMs = 30_000, from = 0): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.output.slice(from).match(pattern);
      if (match) return match;
      if (Date.now() > deadline) throw new Error(`no ${pattern} in the sandbox's output:\n${this.output.slice(from)}\n${this.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Sends a line and waits for its answer to match. */
  async say(line: string, answer: RegExp): Promise<RegExpMatchArray> {
    this.lastMark = this.output.length;
    this.child.stdin.write(`${line}\n`);
    return this.waitFor(answer, 60_000, this.lastMark);
  }

  async end(): Promise<{ code: number | null; stderr: string }> {
    this.child.stdin.end("/quit\n");
    return { code: await this.exited, stderr: this.stderr };
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }
}

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
