/**
 * Importing an X archive (importArchive, src/import/archive.ts) of 100,000
 * and 400,000 followings into the generated graph: seconds end to end, and
 * peak memory of the importing process (a fresh child per run), to show it
 * is flat in archive size. Baseline: reading each data file whole and
 * JSON.parse'ing it (edges only, no identities or matches).
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { rm, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { writeArchiveZip } from "../test/harness/x-archive.ts";
import { connect, type Sql } from "../src/store/database.ts";
import type { ChildRequest, ChildResult } from "./archive-child.ts";
import type { Benchmark } from "./context.ts";
import { benchDataDir, graphDatabase } from "./db.ts";
import { rng, ZipfSampler, type GraphModel } from "./generate.ts";
import { int, log, mib, printTable, summarize } from "./report.ts";

const CHILD = fileURLToPath(new URL("./archive-child.ts", import.meta.url));
const SIZES = [100_000, 400_000];
const RUNS = 3;

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

/** The archive zip, built the way X builds it (test/harness/x-archive.ts), with 2 MB of media to skip. */
async function buildZip(file: string, model: GraphModel, followings: number): Promise<{ account: string }> {
  const ids = archiveIds(model, followings);
  const media = Buffer.alloc(2 << 20);
  const random = rng(5);
  for (let i = 0; i < media.length; i++) media[i] = Math.floor(random() * 256);
  await writeArchiveZip(
    file,
    { accountId: ids.account, username: `bench_${followings}`, followings: ids.following, followers: ids.follower },
    { "data/tweets_media/1234567890-abcdef.jpg": media },
  );
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


export const archiveImport: Benchmark = {
  name: "archive-import",
  description: "importing a 100k- and a 400k-following X archive zip with importArchive (seconds, peak memory)",
  defaultSize: "medium",
  async run(context) {
    const dir = await benchDataDir();
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
            summarize(results.map((r) => r.seconds)).p50.toFixed(3),
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
