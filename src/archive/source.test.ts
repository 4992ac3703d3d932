/**
 * Where an archive's data files come from, and what is refused before and
 * while they are read: zip bombs (one entry or many), data adding up past
 * the total cap, more parts than any archive has.
 */
import { createWriteStream } from "node:fs";
import { appendFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Readable } from "node:stream";
import yazl from "yazl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { archiveFiles, writeArchiveZip } from "../../test/harness/x-archive.ts";
import { ArchiveError, DEFAULT_LIMITS, openArchiveSource, type ArchiveLimits, type ArchiveSource } from "./source.ts";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "archive-source-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const account = archiveFiles({ accountId: "4242", username: "b", followings: [] }).get("data/account.js")!;

/** A zip of data/account.js and the given entries (name → body). */
async function zipOf(name: string, entries: Record<string, string | Buffer>): Promise<string> {
  const file = path.join(dir, name);
  const zip = new yazl.ZipFile();
  zip.addBuffer(Buffer.from(account), "data/account.js");
  for (const [entry, body] of Object.entries(entries)) zip.addBuffer(Buffer.isBuffer(body) ? body : Buffer.from(body), entry);
  zip.end();
  await new Promise<void>((resolve) => zip.outputStream.pipe(createWriteStream(file)).on("close", () => resolve()));
  return file;
}

/** `count` following parts, each `body(part)`. */
function parts(count: number, body: (part: number) => string): Record<string, string> {
  const entries: Record<string, string> = {};
  for (let p = 0; p < count; p++) entries[`data/following${p === 0 ? "" : `-part${p}`}.js`] = body(p);
  return entries;
}

/** Opens `input` and reads every data file to its end; the error it ends with, if any. */
async function readAll(input: string, limits?: ArchiveLimits): Promise<unknown> {
  let source: ArchiveSource | undefined;
  try {
    source = await openArchiveSource(input, limits);
    for (const file of source.files) for await (const _chunk of (await file.open()) as AsyncIterable<Buffer>);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await source?.close();
  }
}

/** What an ArchiveError says, for comparing. */
function said(error: unknown) {
  expect(error).toBeInstanceOf(ArchiveError);
  const e = error as ArchiveError;
  return { file: path.basename(e.file), archive: e.archive && path.basename(e.archive), problem: e.problem, message: e.message };
}

const entry = '{"following":{"accountId":"777"}},';

describe("openArchiveSource: zip bombs", () => {
  it("refuses a bomb split into many entries, each under 1 MB but each compressed far beyond any real data file", async () => {
    const perPart = Math.floor((1024 * 1024 - 64) / entry.length);
    const bomb = await zipOf("split-bomb.zip", parts(60, (p) => `window.YTD.following.part${p} = [${entry.repeat(perPart)}{"following":{"accountId":"778"}}]`));
    expect(said(await readAll(bomb))).toEqual({
      file: "following.js",
      archive: "split-bomb.zip",
      problem: { kind: "zip-bomb" },
      message: "is compressed beyond any real data file (a zip bomb?).",
    });
  });

  it("refuses entries each too small to judge alone whose sum is compressed far beyond any real archive", async () => {
    // 60 entries of 60 KB (under the size below which one entry is not judged), 1,000:1 together.
    const bomb = await zipOf("small-bomb.zip", parts(60, (p) => `window.YTD.following.part${p} = [${" ".repeat(60 * 1024)}]`));
    expect(said(await readAll(bomb))).toEqual({
      file: "small-bomb.zip",
      archive: undefined,
      problem: { kind: "zip-bomb" },
      message: "is compressed beyond any real X archive: its data files together unpack to more than 100 times their size (a zip bomb?).",
    });
  });

  it("takes small files that compress very well (an empty list, a short account.js) and real data files", async () => {
    const small = await zipOf("small.zip", { "data/following.js": `window.YTD.following.part0 = [${" ".repeat(30_000)}]`, "data/follower.js": "window.YTD.follower.part0 = [ ]" });
    expect(await readAll(small)).toBeUndefined();
    const ids = Array.from({ length: 3000 }, (_, i) => String(5_550_001 + i));
    const real = await writeArchiveZip(path.join(dir, "real.zip"), { accountId: "5550000", username: "real", followings: ids, followers: ids, perPart: 1000 });
    expect(await readAll(real)).toBeUndefined();
  });
});

describe("openArchiveSource: the total unpacked and the number of parts", () => {
  it("refuses data files adding up past the total cap, each under the cap for one file", async () => {
    const limits: ArchiveLimits = { ...DEFAULT_LIMITS, maxFileBytes: 32 * 1024, maxTotalBytes: 64 * 1024 };
    const ids = Array.from({ length: 400 }, (_, i) => String(5_550_001 + i));
    const zip = await writeArchiveZip(path.join(dir, "many.zip"), { accountId: "5550000", username: "many", followings: ids, followers: ids, perPart: 200 });
    expect(said(await readAll(zip, limits))).toMatchObject({
      file: "many.zip",
      archive: undefined,
      problem: { kind: "too-large-in-all", mb: 0 },
      message: "holds data files (account.js, following.js, follower.js and their -partN.js splits) of more than 0 MB in all once unpacked — far more than any X archive.",
    });
  });

  it("counts what is read, not only what the folder listed: a file grown since is stopped at the total cap", async () => {
    const folder = path.join(dir, "growing");
    await mkdir(path.join(folder, "data"), { recursive: true });
    await writeFile(path.join(folder, "data", "account.js"), account);
    await writeFile(path.join(folder, "data", "following.js"), "window.YTD.following.part0 = [ ]");
    await writeFile(path.join(folder, "data", "following-part1.js"), "window.YTD.following.part1 = [ ]");
    const source = await openArchiveSource(folder, { ...DEFAULT_LIMITS, maxFileBytes: 64 * 1024, maxTotalBytes: 100 * 1024 });
    try {
      // Each file stays under the cap for one file; together they pass the total.
      await appendFile(path.join(folder, "data", "following.js"), " ".repeat(60 * 1024));
      await appendFile(path.join(folder, "data", "following-part1.js"), " ".repeat(60 * 1024));
      let error: unknown;
      try {
        for (const file of source.files) for await (const _chunk of (await file.open()) as Readable);
      } catch (e) {
        error = e;
      }
      expect(said(error)).toMatchObject({ file: "growing", problem: { kind: "too-large-in-all", mb: 0 }, message: expect.stringMatching(/in all once unpacked/) });
    } finally {
      await source.close();
    }
  });

  it("refuses more parts than any archive has, in a zip or a folder, and takes as many as that", async () => {
    const limits: ArchiveLimits = { ...DEFAULT_LIMITS, maxParts: 5 };
    const tiny = (p: number) => `window.YTD.following.part${p} = [ ]`;
    expect(said(await readAll(await zipOf("parts.zip", parts(6, tiny)), limits))).toEqual({
      file: "parts.zip",
      archive: undefined,
      problem: { kind: "too-many-parts", max: 5 },
      message: "holds more than 5 following data files (following.js and its -partN.js splits) — far more than any X archive.",
    });
    expect(await readAll(await zipOf("five.zip", parts(5, tiny)), limits)).toBeUndefined();
    const folder = path.join(dir, "parts");
    await mkdir(path.join(folder, "data"), { recursive: true });
    await writeFile(path.join(folder, "data", "account.js"), account);
    for (const [name, body] of Object.entries(parts(6, tiny))) await writeFile(path.join(folder, name), body);
    expect(said(await readAll(folder, limits))).toMatchObject({ file: "parts", problem: { kind: "too-many-parts", max: 5 } });
    // The default: far more parts than X writes, far fewer than a bomb needs.
    expect(DEFAULT_LIMITS.maxParts).toBe(100);
  });
});

describe("openArchiveSource: only the kinds of data file the caller reads", () => {
  const followers = (count: number, body: (part: number) => string) => {
    const entries: Record<string, string> = {};
    for (let p = 0; p < count; p++) entries[`data/follower${p === 0 ? "" : `-part${p}`}.js`] = body(p);
    return entries;
  };
  const listed = async (input: string, limits: ArchiveLimits) => {
    const source = await openArchiveSource(input, limits);
    try {
      return source.files.map((f) => `${f.kind}:${f.part}`);
    } finally {
      await source.close();
    }
  };

  it("leaves follower files out of the total and the parts when they are not read, and never unpacks them", async () => {
    const limits: ArchiveLimits = { ...DEFAULT_LIMITS, maxFileBytes: 32 * 1024, maxTotalBytes: 64 * 1024, maxParts: 5, kinds: ["account", "following"] };
    // Six follower parts, each past the cap for one file and together past the total, one a bomb.
    const big = (p: number) => `window.YTD.follower.part${p} = [${p === 5 ? " ".repeat(1024 * 1024) : entry.repeat(1500).replaceAll("following", "follower")}]`;
    const zip = await zipOf("followers.zip", { ...parts(2, (p) => `window.YTD.following.part${p} = [ ]`), ...followers(6, big) });
    expect(await listed(zip, limits)).toEqual(["account:0", "following:0", "following:1"]);
    expect(await readAll(zip, limits)).toBeUndefined();
    const folder = path.join(dir, "followers");
    await mkdir(path.join(folder, "data"), { recursive: true });
    await writeFile(path.join(folder, "data", "account.js"), account);
    await writeFile(path.join(folder, "data", "following.js"), "window.YTD.following.part0 = [ ]");
    for (const [name, body] of Object.entries(followers(6, big))) await writeFile(path.join(folder, name), body);
    expect(await listed(folder, limits)).toEqual(["account:0", "following:0"]);
    expect(await readAll(folder, limits)).toBeUndefined();

    // The operator's import reads followers too: the same archive is refused.
    const all: ArchiveLimits = { ...limits, kinds: DEFAULT_LIMITS.kinds };
    expect(said(await readAll(zip, { ...DEFAULT_LIMITS, maxParts: 5 }))).toMatchObject({ file: "followers.zip", problem: { kind: "too-many-parts", max: 5 } });
    expect(said(await readAll(zip, { ...all, maxParts: 100 }))).toMatchObject({ file: "follower.js", problem: { kind: "too-large", mb: 0 } });
    expect(said(await readAll(zip, { ...all, maxParts: 100, maxFileBytes: DEFAULT_LIMITS.maxFileBytes }))).toMatchObject({
      file: "followers.zip",
      problem: { kind: "too-large-in-all", mb: 0 },
    });
    expect(DEFAULT_LIMITS.kinds).toEqual(["account", "following", "follower"]);
  });

  it("counts the data files read toward the total, naming what it counts; a lone data file of another kind is skipped", async () => {
    const limits: ArchiveLimits = { ...DEFAULT_LIMITS, maxTotalBytes: 64 * 1024, kinds: ["account", "following"] };
    const ids = Array.from({ length: 800 }, (_, i) => String(5_560_001 + i));
    const zip = await writeArchiveZip(path.join(dir, "followings.zip"), { accountId: "5560000", username: "f", followings: ids, followers: ids, perPart: 400 });
    expect(said(await readAll(zip, limits))).toEqual({
      file: "followings.zip",
      archive: undefined,
      problem: { kind: "too-large-in-all", mb: 0 },
      message: "holds data files (account.js, following.js and their -partN.js splits) of more than 0 MB in all once unpacked — far more than any X archive.",
    });
    const lone = path.join(dir, "follower.js");
    await writeFile(lone, "window.YTD.follower.part0 = [ ]");
    expect(await listed(lone, limits)).toEqual([]);
    expect(await listed(lone, DEFAULT_LIMITS)).toEqual(["follower:0"]);
    // An archive whose only data files are not read is still an archive (whose account.js is missing).
    const onlyFollowers = path.join(dir, "only-followers.zip");
    const z = new yazl.ZipFile();
    z.addBuffer(Buffer.from("window.YTD.follower.part0 = [ ]"), "data/follower.js");
    z.end();
    await new Promise<void>((resolve) => z.outputStream.pipe(createWriteStream(onlyFollowers)).on("close", () => resolve()));
    expect(await listed(onlyFollowers, limits)).toEqual([]);
  });
});
