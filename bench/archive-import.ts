/**
 * Importing an X archive (importArchive, src/import/archive.ts) of 100,000
 * and 400,000 followings into the generated graph: seconds end to end, and
 * peak memory of the importing process (a fresh child per run), to show it
 * is flat in archive size. Baseline: reading each data file whole and
 * JSON.parse'ing it (edges only, no identities or matches).
 */
import { execFile } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import yazl from "yazl";
import { connect, type Sql } from "../src/store/database.ts";
import type { ChildRequest, ChildResult } from "./archive-child.ts";
import type { Benchmark } from "./context.ts";
import { BENCH_DIR, graphDatabase } from "./db.ts";
import { rng, ZipfSampler, type GraphModel } from "./generate.ts";
import { int, log, mib, printTable } from "./report.ts";

const CHILD = fileURLToPath(new URL("./archive-child.ts", import.meta.url));
const SIZES = [100_000, 400_000];
const RUNS = 3;

/** X's own layout: `window.YTD.<name>.part0 = [` then pretty-printed entries with " : ". */
function* ytd(section: string, kind: string, ids: Iterable<string>): Generator<string> {
  let chunk = `window.YTD.${section}.part0 = [`;
  let first = true;
  for (const id of ids) {
    chunk += `${first ? "" : ","}\n  {\n    "${kind}" : {\n      "accountId" : "${id}",\n      "userLink" : "https://twitter.com/intent/user?user_id=${id}"\n    }\n  }`;
    first = false;
    if (chunk.length > 1 << 20) {
      yield chunk;
      chunk = "";
    }
  }
  yield `${chunk}\n]`;
}

/** An archive's followings: popular accounts of the graph, the rest unknown to the store. */
function archiveIds(model: GraphModel, followings: number): { account: string; following: string[]; follower: string[] } {
  const random = rng(followings);
  const following: string[] = [];
  new ZipfSampler(model.universe).sample(Math.min(followings * 0.4, model.universe * 0.45), random, (r) => {
    if (following.length < followings) following.push(model.xId(r));
  });
  for (let i = 0; following.length < followings; i++) following.push(String(2_000_000_000_000 + followings * 10 + i));
  // X lists followings most recent first: mix known and unknown accounts.
  for (let i = following.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [following[i], following[j]] = [following[j]!, following[i]!];
  }
  const follower: string[] = [];
  for (let i = 0; i < followings / 5; i++) {
    follower.push(random() < 0.5 ? model.xId(Math.floor(random() * model.universe)) : String(4_000_000_000_000 + followings * 10 + i));
  }
  return { account: String(5_000_000_000_000 + followings), following: [...new Set(following)], follower: [...new Set(follower)] };
}

async function buildZip(file: string, model: GraphModel, followings: number): Promise<{ account: string }> {
  const ids = archiveIds(model, followings);
  const zip = new yazl.ZipFile();
  const text = (chunks: Iterable<string>) => Buffer.from([...chunks].join(""));
  zip.addBuffer(
    text([
      `window.YTD.account.part0 = [\n  {\n    "account" : {\n      "email" : "bench@example.com",\n      "createdVia" : "web",\n` +
        `      "username" : "bench_${followings}",\n      "accountId" : "${ids.account}",\n      "createdAt" : "2009-05-06T07:08:09.000Z",\n` +
        `      "accountDisplayName" : "Bench ${followings}"\n    }\n  }\n]`,
    ]),
    "data/account.js",
  );
  zip.addBuffer(text(ytd("following", "following", ids.following)), "data/following.js");
  zip.addBuffer(text(ytd("follower", "follower", ids.follower)), "data/follower.js");
  zip.addBuffer(Buffer.from("window.__THAR_CONFIG = {}"), "data/manifest.js");
  zip.addBuffer(Buffer.from("<html><body>Your archive</body></html>"), "Your archive.html");
  const media = Buffer.alloc(2 << 20);
  const random = rng(5);
  for (let i = 0; i < media.length; i++) media[i] = Math.floor(random() * 256);
  zip.addBuffer(media, "data/tweets_media/1234567890-abcdef.jpg", { compress: false });
  zip.end();
  await new Promise<void>((resolve, reject) => {
    zip.outputStream.pipe(createWriteStream(file)).on("close", resolve).on("error", reject);
  });
  return { account: ids.account };
}

const execFileAsync = promisify(execFile);

async function importInChild(request: ChildRequest): Promise<ChildResult> {
  const { stdout } = await execFileAsync(process.execPath, ["--expose-gc", CHILD, JSON.stringify(request)], {
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout.trim().split("\n").pop()!) as ChildResult;
}

/** Puts the store back as it was before the archive came. */
async function undo(sql: Sql, account: string, personId: number | null): Promise<void> {
  await sql`delete from x_follow where follower = ${account}::bigint`;
  await sql`delete from x_follow where followed = ${account}::bigint`;
  if (personId !== null) await sql`delete from person where id = ${personId}`;
  await sql`vacuum x_follow`;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export const archiveImport: Benchmark = {
  name: "archive-import",
  description: "importing a 100k- and a 400k-following X archive zip with importArchive (seconds, peak memory)",
  defaultSize: "medium",
  async run(context) {
    const dir = path.join(BENCH_DIR, "data");
    await mkdir(dir, { recursive: true });
    const graph = await graphDatabase(context.server, "archive-import", context.label, context.spec, context.keep);
    const sql = connect(graph.url, { max: 2 });
    const zips: string[] = [];
    try {
      const rows: string[][] = [];
      for (const followings of SIZES) {
        const zip = path.join(dir, `archive-${followings}-${context.label}.zip`);
        zips.push(zip);
        log(`building ${path.basename(zip)}`);
        const { account } = await buildZip(zip, graph.model, followings);
        const zipBytes = (await stat(zip)).size;
        for (const mode of ["store", "naive"] as const) {
          const results: ChildResult[] = [];
          for (let i = 0; i < RUNS; i++) {
            log(`${mode} import of ${followings} followings, run ${i + 1}/${RUNS}`);
            const r = await importInChild({ url: graph.url, zip, mode });
            await undo(sql, account, r.personId);
            results.push(r);
          }
          const last = results[results.length - 1]!;
          rows.push([
            mode === "store" ? "importArchive" : "naive: whole-file JSON.parse, edges only",
            int(last.followings),
            int(last.followers),
            (zipBytes / 1e6).toFixed(1),
            median(results.map((r) => r.seconds)).toFixed(3),
            Math.min(...results.map((r) => r.seconds)).toFixed(3),
            int(last.edgesAdded),
            mode === "store" ? int(last.matchesAdded) : "-",
            mib(Math.max(...results.map((r) => r.peakRss))),
            mib(Math.max(...results.map((r) => r.peakRss - r.rssBefore))),
            mib(Math.max(...results.map((r) => r.peakHeap - r.heapBefore))),
            mode === "store" ? results[Math.floor(results.length / 2)]!.phases.map(([n, t]) => `${n} ${t.toFixed(2)}`).join(", ") : "",
          ]);
        }
      }
      const load = graph.meta.load;
      printTable(
        `archive-import @ ${context.label}: into ${int(load.people)} people, ${int(load.edges)} edges (median of ${RUNS} runs, each in a fresh process)`,
        ["variant", "followings", "followers", "zip MB", "s median", "s min", "edges added", "matches added", "peak RSS MiB", "RSS growth MiB", "heap growth MiB", "phases (s, one run)"],
        rows,
        ["target: 100k followings <= 1 s end to end, memory flat in archive size"],
      );
    } finally {
      await sql.end({ timeout: 5 });
      await graph.release();
      if (!context.keep) for (const zip of zips) if (existsSync(zip)) await rm(zip, { force: true });
    }
  },
};
