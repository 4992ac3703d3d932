/**
 * The operator's command line, run as a real process against a test
 * database: imports, stats, help, and bad input ending in one sentence and a
 * non-zero exit — never a stack trace.
 */
import { mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, TEST_SECRET_KEY, type TestDatabase } from "./harness/database.ts";
import { CLI, ROOT, runCli } from "./harness/cli.ts";
import { until } from "./harness/wait.ts";
import pkg from "../package.json" with { type: "json" };
import { writeArchiveZip } from "./harness/x-archive.ts";
import { registerPerson } from "./harness/graph.ts";

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(path.join(os.tmpdir(), "reconnexion-cli-"));
  env = { DATABASE_URL: db.url, DATA_DIR: dir, SECRET_KEY: TEST_SECRET_KEY };
});
afterAll(async () => {
  await db.drop();
  await rm(dir, { recursive: true, force: true });
});

const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at |node:internal/);

describe("reconnexion CLI", () => {
  it("imports registry, edges and an archive, then reports stats as JSON", async () => {
    const registry = path.join(dir, "registry.csv");
    await writeFile(registry, "x_id,x_username,bluesky_did,bluesky_handle,fediverse_acct,language,notify,auto_reconnect,announce_me\n" +
      "501,ann,did:plc:ann,ann.test,,fr,true,false,true\n502,ben,,,ben@ben.example,en,,,\n");
    const edges = path.join(dir, "edges.csv");
    await writeFile(edges, "follower_x_id,followed_x_id\n501,502\n502,501\n501,999\n");
    const archive = await writeArchiveZip(path.join(dir, "x.zip"), { accountId: "503", username: "cyd", followings: ["501", "502"], followers: ["501"] });

    const r1 = await runCli(["import", "registry", registry], { env });
    expect(r1.stdout).toMatch(/Imported .*registry\.csv: 2 rows, 2 people created/);
    expect(r1.code).toBe(0);
    const r2 = await runCli(["import", "edges", edges], { env });
    expect(r2.stdout).toMatch(/3 rows, 3 new edges, 0 already known, 2 matches added/);
    const r3 = await runCli(["import", "archive", archive], { env });
    expect(r3.stdout).toMatch(/X account 503 \(@cyd\), person \d+ \(new\), 2 followings, 1 followers, 3 new edges/);
    const again = await runCli(["import", "archive", archive], { env });
    expect(again.stdout).toMatch(/0 new edges, 0 matches added/);

    const stats = await runCli(["stats", "--json"], { env });
    expect(stats.code).toBe(0);
    const json = JSON.parse(stats.stdout);
    expect(json).toMatchObject({
      people: 3,
      edges: 6,
      uploadedArchives: 0,
      identities: { x: { total: 3, platform: 2, archive: 1 }, bluesky: { total: 1 }, fediverse: { total: 1 } },
    });
    expect(json.matches.total).toBe(4);
    const table = await runCli(["stats"], { env });
    expect(table.stdout).toMatch(/^people\s+3$/m);
    expect(table.stdout).toMatch(/^X follow edges\s+6$/m);
    expect(table.stdout).toMatch(/^uploaded archives\s+0$/m);
  });

  it("ends bad input with one sentence naming file and line, and exit code 1", async () => {
    const bad = path.join(dir, "bad-edges.csv");
    await writeFile(bad, "follower_x_id,followed_x_id\n1,2\n3,three\n");
    const r = await runCli(["import", "edges", bad], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`reconnexion: ${bad}, line 3: followed_x_id must be a positive whole number (an X account id), not "three".`);
    noStack(r.stderr);

    const notArchive = path.join(dir, "notes.txt");
    await writeFile(notArchive, "hello");
    const a = await runCli(["import", "archive", notArchive], { env });
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/notes\.txt: is not an X archive/);
    noStack(a.stderr);

    const missing = await runCli(["import", "registry", path.join(dir, "nope.csv")], { env });
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringMatching(/nope\.csv: cannot be read/)]);

    // Inside a zip: the zip, its entry and the line (entry 2 starts on line 6), so that among several zips the operator knows which.
    const badZip = await writeArchiveZip(path.join(dir, "bad-id.zip"), { accountId: "610", username: "zed", followings: ["611", "6x2"] });
    const z = await runCli(["import", "archive", badZip], { env });
    expect(z.code).toBe(1);
    expect(z.stderr.trim()).toBe(`reconnexion: ${badZip}: data/following.js, line 6: entry 2 has no valid "accountId".`);

    // A zip bomb split in many entries, each too small for the old 1 MB threshold: refused, exit 1, one sentence.
    const splitBomb = await writeArchiveZip(path.join(dir, "split-bomb.zip"), { accountId: "630", username: "bo", followings: [] },
      Object.fromEntries(Array.from({ length: 20 }, (_, p) => [`data/following-part${p + 1}.js`, `window.YTD.following.part${p + 1} = [${" ".repeat(200 * 1024)}]`])));
    const b = await runCli(["import", "archive", splitBomb], { env });
    expect([b.code, b.stderr.trim()]).toEqual([1, `reconnexion: ${splitBomb}: data/following-part1.js: is compressed beyond any real data file (a zip bomb?).`]);

    // A 2 GB registry (sparse: it costs no disk) is refused unread, not read until memory runs out.
    const huge = path.join(dir, "huge-registry.csv");
    const handle = await open(huge, "w");
    await handle.write("x_id,x_username,bluesky_did,bluesky_handle,fediverse_acct,language,notify,auto_reconnect,announce_me\n620,a,,,,,,,\n");
    await handle.truncate(2 * 1024 * 1024 * 1024);
    await handle.close();
    const h = await runCli(["import", "registry", huge], { env, timeoutMs: 20_000 });
    expect([h.code, h.stderr.trim()]).toEqual([1, `reconnexion: ${huge}: is 2,048 MB, more than the 256 MB a registry import reads; split it into smaller files.`]);
    noStack(z.stderr + h.stderr + b.stderr);
  });

  it("explains configuration and database problems without a stack trace", async () => {
    const refused = await runCli(["stats"], { env: { ...env, DATABASE_URL: "postgres://x:y@127.0.0.1:1/none" } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/Cannot reach PostgreSQL/);
    const badConfig = await runCli(["stats"], { env: { ...env, PORT: "eighty" } });
    expect(badConfig.code).toBe(1);
    expect(badConfig.stderr).toMatch(/Invalid configuration — PORT/);
    noStack(refused.stderr + badConfig.stderr);
    const unknown = await runCli(["frobnicate"], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
  });

  it("start refuses a port already taken, in one sentence, instead of running without its HTTP server", async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
    const port = (busy.address() as AddressInfo).port;
    try {
      const r = await runCli(["start"], { env: { ...env, PORT: String(port) }, timeoutMs: 30_000 });
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(`reconnexion: Cannot listen on 127.0.0.1:${port} (EADDRINUSE).`);
    } finally {
      busy.close();
    }
  });

  it("refuses an archive for a person who does not exist, in one sentence", async () => {
    const following = path.join(dir, "following.js");
    await writeFile(following, 'window.YTD.following.part0 = [ { "following": { "accountId": "601", "userLink": "https://twitter.com/intent/user?user_id=601" } } ]');
    const r = await runCli(["import", "archive", following, "--x-id", "600", "--person", "99999"], { env });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe("reconnexion: No person 99999 in the store.");
    // An X account id given where a person id goes: the same sentence as `person` and `forget` give, not a database error.
    const large = await runCli(["import", "archive", following, "--x-id", "600", "--person", "1234567890123"], { env });
    expect([large.code, large.stderr.trim()]).toEqual([1, "reconnexion: No person 1234567890123 in the store (person ids are below 2147483648); for the X account 1234567890123, write x:1234567890123."]);
    for (const command of [["person", "1234567890123"], ["forget", "1234567890123", "--yes"]]) {
      const refused = await runCli(command, { env });
      expect([command, refused.code, refused.stderr.trim()]).toEqual([command, 1, expect.stringMatching(/^reconnexion: No person 1234567890123 in the store .*write x:1234567890123\.$/)]);
    }
    expect(await db.sql`select 1 from x_follow where follower = 600`).toHaveLength(0);
  });

  it("shows a person found by any account, and forgets them only when told --yes", async () => {
    const registry = path.join(dir, "registry-person.csv");
    await writeFile(registry, "x_id,x_username,bluesky_did,bluesky_handle,fediverse_acct,language,notify,auto_reconnect,announce_me\n" +
      "701,dee,did:plc:dee,dee.test,,fr,true,false,false\n702,eve,,,eve@eve.example,en,,,\n");
    expect((await runCli(["import", "registry", registry], { env })).code).toBe(0);
    const edges = path.join(dir, "edges-person.csv");
    await writeFile(edges, "follower_x_id,followed_x_id\n701,702\n701,703\n702,701\n");
    expect((await runCli(["import", "edges", edges], { env })).code).toBe(0);

    const shown = await runCli(["person", "bluesky:@Dee.test"], { env });
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^person \d+, since /);
    expect(shown.stdout).toMatch(/^\s+x\s+@dee\s+701\s+verified by platform$/m);
    expect(shown.stdout).toMatch(/follows on X: 2 accounts/);
    expect(shown.stdout).toMatch(/^\s+fediverse\s+pending 1\b/m);
    const json = JSON.parse((await runCli(["person", "x:701", "--json"], { env })).stdout);
    const dee = json.id as number;
    expect(json).toMatchObject({ followedOnX: 2, settings: { language: "fr" }, matches: { fediverse: { pending: 1 } } });

    // An archive attached by account rather than by id.
    await mkdir(path.join(dir, "dee"));
    const following = path.join(dir, "dee", "following.js");
    await writeFile(following, 'window.YTD.following.part0 = [ { "following": { "accountId": "704", "userLink": "https://twitter.com/intent/user?user_id=704" } } ]');
    const archived = await runCli(["import", "archive", following, "--x-id", "701", "--person", "did:plc:dee"], { env });
    expect([archived.code, archived.stdout, archived.stderr]).toEqual([0, expect.stringMatching(new RegExp(`person ${dee}, 1 followings`)), ""]);

    const unsure = await runCli(["forget", "dee.test"], { env });
    expect(unsure.code).toBe(1);
    expect(unsure.stdout).toMatch(new RegExp(`^person ${dee},`));
    expect(unsure.stderr.trim()).toBe(`reconnexion: Nothing deleted: add --yes to delete person ${dee} and everything about them.`);
    expect(await db.sql`select 1 from person where id = ${dee}`).toHaveLength(1);

    const gone = await runCli(["forget", String(dee), "--yes"], { env });
    expect([gone.code, gone.stdout.trim()]).toEqual([0, `Person ${dee} forgotten: 2 accounts and everything about them deleted.`]);
    expect(await db.sql`select 1 from person where id = ${dee}`).toHaveLength(0);
    expect(await db.sql`select 1 from x_follow where follower = 701`).toHaveLength(0);
    expect(await db.sql`select 1 from x_follow where follower = 702`).toHaveLength(1);

    const missing = await runCli(["person", "x:701"], { env });
    expect([missing.code, missing.stderr.trim()]).toEqual([1, 'reconnexion: Nobody in the store has the x account "701".']);
    const unreadable = await runCli(["forget", "nonsense", "--yes"], { env });
    expect(unreadable.code).toBe(1);
    expect(unreadable.stderr).toMatch(/"nonsense" names no person: give a person id/);
    noStack(missing.stderr + unreadable.stderr);
  });

  it("link-code makes the single-use code the registration platform hands a person, valid as long as asked", async () => {
    const { personId } = await registerPerson(db.store, "7301", { platform: "bluesky", stableId: "did:plc:coder", handle: "coder.test" });
    const made = await runCli(["link-code", "x:7301", "--hours", "48"], { env });
    expect([made.code, made.stderr]).toEqual([0, ""]);
    const code = /\b([A-Z2-9]{4}-?[A-Z2-9]{4})\b/.exec(made.stdout)?.[1];
    expect(code, made.stdout).toBeDefined();
    expect(made.stdout).toMatch(/valid until \d{4}-\d{2}-\d{2}/);
    expect(await db.store.linkCodes.ownerOf(code!.replace("-", ""))).toBe(personId);
    // At most a week.
    const tooLong = await runCli(["link-code", "x:7301", "--hours", "500"], { env });
    expect([tooLong.code, tooLong.stderr.trim()]).toEqual([1, "reconnexion: --hours: from 1 to 168 (a week)."]);
  });

  it("start serves the fediverse actor with no configuration, and stops in order on a terminal's Ctrl-C, which signals the whole process group", async () => {
    // On its embedded database, as `npm start` runs: PostgreSQL must outlive the service's shutdown.
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "reconnexion-ctrl-c-"));
    // A free port: the default public URL names it (http://localhost:<PORT>).
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const child = spawn(process.execPath, [CLI, "start"], {
      cwd: ROOT,
      detached: true, // a group of its own, like a terminal's foreground job
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (output += c.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      await until("the service to start", async () => output.includes("reconnection workers on"), 60_000, 100);
      const origin = `http://127.0.0.1:${port}`;
      // The actor, found by WebFinger on the default public URL (http://localhost:<PORT>).
      const finger = await fetch(`${origin}/.well-known/webfinger?resource=acct:reconnexion@localhost:${port}`);
      expect(finger.status).toBe(200);
      const self = ((await finger.json()) as { links: { rel: string; href?: string }[] }).links.find((l) => l.rel === "self")!;
      expect(self.href).toBe(`http://localhost:${port}/users/reconnexion`);
      const actor = await fetch(`${origin}/users/reconnexion`, { headers: { accept: "application/activity+json" } });
      expect(actor.status).toBe(200);
      expect(await actor.json()).toMatchObject({ type: "Service", preferredUsername: "reconnexion" });

      process.kill(-child.pid!, "SIGINT");
      expect(await exited).toBe(0);
      const lines = output.trim().split("\n").map((l) => JSON.parse(l) as { level: number; msg: string });
      expect(lines.filter((l) => l.level >= 40)).toEqual([]);
      expect(lines.at(-1)?.msg).toBe("stopped");
      // And its embedded PostgreSQL is stopped with it.
      expect(existsSync(path.join(dataDir, "postgres", "postmaster.pid"))).toBe(false);
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, "SIGKILL");
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("has --help for every command", async () => {
    // Each command the help lists, and the commands under it, found from the help itself (a new one cannot be left out).
    const listed = (help: string) =>
      [...(help.split("\nCommands:\n")[1] ?? "").matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]!).filter((name) => name !== "help");
    const asked: string[] = [];
    const queue: string[][] = [[]];
    for (let command = queue.shift(); command; command = queue.shift()) {
      const r = await runCli([...command, "--help"], { env });
      const label = [...command, "--help"].join(" ");
      expect(r.code, label).toBe(0);
      expect(r.stdout, label).toMatch(new RegExp(`^Usage: reconnexion ${command.map((c) => `${c} `).join("")}`));
      asked.push(command.join(" "));
      queue.push(...listed(r.stdout).map((name) => [...command, name]));
    }
    expect(asked.sort()).toEqual(["", "chat", "forget", "import", "import archive", "import edges", "import registry", "link-code", "migrate", "person", "sandbox", "start", "stats"]);
  });

  it("runs as an installed command on the system's Node too (the checkout's pinned Node takes over below 24)", async () => {
    const systemNode = ["/usr/bin/node", "/usr/local/bin/node"].find((p) => existsSync(p)) ?? process.execPath;
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = spawn(systemNode, [path.join(ROOT, "bin/reconnexion.js"), "--version"], { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
      let stdout = "";
      child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
      child.on("close", (code) => resolve({ code, stdout }));
    });
    expect(r).toEqual({ code: 0, stdout: `${pkg.version}\n` });
  });

  it("migrate says what it applied, and when there was nothing to apply", async () => {
    const empty = await createTestDatabase({ migrate: false });
    try {
      const { listMigrations } = await import("../src/store/database.ts");
      const all = await listMigrations();
      const last = `${String(all.at(-1)!.version).padStart(3, "0")}_${all.at(-1)!.name}`;
      const first = await runCli(["migrate"], { env: { ...env, DATABASE_URL: empty.url } });
      expect(first.code).toBe(0);
      expect(first.stdout.trim()).toMatch(new RegExp(`^Applied ${all.length} migrations: 001_graph_store, 002_conversation, .*, ${last}\\. Schema up to date at ${last}\\.$`));
      const again = await runCli(["migrate"], { env: { ...env, DATABASE_URL: empty.url } });
      expect(again.stdout.trim()).toBe(`Nothing to apply: schema up to date at ${last} (${all.length} migrations).`);
    } finally {
      await empty.drop();
    }
  });
});
