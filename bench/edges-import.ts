/**
 * Bulk edge import with the project's importer (importEdges, src/import/edges.ts):
 * a generated edges CSV (1% repeated lines) into a store holding the
 * registry but no edges, then a 100k-edge increment into the full store,
 * then the whole file again (all duplicates). Baseline: batched multi-row
 * INSERT … ON CONFLICT DO NOTHING (1,000 rows a statement) into an indexed
 * copy of x_follow, for the first million rows.
 */
import { createReadStream, existsSync } from "node:fs";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { importEdges } from "../src/import/edges.ts";
import type { EdgeImportSummary, Progress } from "../src/import/types.ts";
import { connect, type Sql } from "../src/store/database.ts";
import type { Benchmark } from "./context.ts";
import { benchDataDir, graphDatabase } from "./db.ts";
import { GraphModel, rng, writeEdgesCsv, writeFileChunks } from "./generate.ts";
import { int, log, mib, printTable } from "./report.ts";

/** New edges for a store already holding the graph: registered people following new accounts and each other. */
function* incrementCsv(model: GraphModel, count: number): Generator<string> {
  const random = rng(99);
  let chunk = "follower_x_id,followed_x_id\n";
  for (let i = 0; i < count; i++) {
    const p = model.people[Math.floor(random() * model.people.length)]!;
    const followed =
      random() < 0.2
        ? model.xId(model.people[Math.floor(random() * model.people.length)]!.rank)
        : String(3_000_000_000_000 + i);
    chunk += `${model.xId(p.rank)},${followed}\n`;
    if (chunk.length > 1 << 20) {
      yield chunk;
      chunk = "";
    }
  }
  yield chunk;
}

async function naiveInsert(sql: Sql, file: string, limit: number): Promise<{ rows: number; added: number; seconds: number }> {
  await sql`drop table if exists x_follow_naive`;
  await sql`create table x_follow_naive (like x_follow including all)`;
  const start = performance.now();
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let batch: { follower: string; followed: string }[] = [];
  let rows = 0;
  let added = 0;
  let header = true;
  const flush = async () => {
    if (batch.length === 0) return;
    const result = await sql`insert into x_follow_naive ${sql(batch)} on conflict do nothing`;
    added += result.count;
    batch = [];
  };
  for await (const line of lines) {
    if (header) {
      header = false;
      continue;
    }
    if (rows >= limit) break;
    const comma = line.indexOf(",");
    batch.push({ follower: line.slice(0, comma), followed: line.slice(comma + 1) });
    rows++;
    if (batch.length === 1000) await flush();
  }
  await flush();
  lines.close();
  const seconds = (performance.now() - start) / 1000;
  await sql`drop table x_follow_naive`;
  return { rows, added, seconds };
}

/** Records how long each phase the importer announces takes. */
function phaseTimer(): Progress & { phases: [string, number][] } {
  const phases: [string, number][] = [];
  let current: string | undefined;
  let since = performance.now();
  const close = () => {
    if (current !== undefined) phases.push([current, (performance.now() - since) / 1000]);
    current = undefined;
  };
  return {
    phases,
    phase(name) {
      close();
      current = name;
      since = performance.now();
    },
    tick() {},
    end: close,
  };
}

/** `matchingSeconds`: the part spent deriving matches (edges/s without it is the edge load alone). */
function row(step: string, s: { rows: number; added: number; seconds: number; matchesAdded?: number }, matchingSeconds?: number): string[] {
  return [
    step,
    int(s.rows),
    int(s.added),
    int(s.rows - s.added),
    s.seconds.toFixed(2),
    int(s.rows / s.seconds),
    matchingSeconds === undefined ? "-" : int(s.rows / (s.seconds - matchingSeconds)),
    s.matchesAdded === undefined ? "-" : int(s.matchesAdded),
  ];
}

export const edgesImport: Benchmark = {
  name: "edges-import",
  description: "bulk edge import with importEdges (edges/s) vs batched INSERT",
  defaultSize: "medium",
  async run(context) {
    const dir = await benchDataDir();
    const model = new GraphModel(context.spec);
    const file = path.join(dir, `edges-${context.label}.csv`);
    const incrementFile = path.join(dir, `edges-${context.label}-increment.csv`);
    const stamp = JSON.stringify({ spec: context.spec, duplicates: 0.01 });
    const reusable =
      context.keep && existsSync(file) && existsSync(incrementFile) &&
      (await readFile(`${file}.json`, "utf8").catch(() => "")) === stamp;
    if (reusable) {
      log(`reusing ${file}`);
    } else {
      log(`writing ${file}`);
      const start = performance.now();
      await writeEdgesCsv(model, file, 0.01);
      await writeFileChunks(incrementFile, incrementCsv(model, Math.min(100_000, Math.ceil(context.spec.edges / 10))));
      await writeFile(`${file}.json`, stamp);
      log(`  written in ${((performance.now() - start) / 1000).toFixed(1)} s`);
    }
    const { size } = await stat(file);

    const graph = await graphDatabase(context.server, "edges-import", context.label, context.spec, false, { edges: false });
    const sql = connect(graph.url);
    try {
      await sql`select 1`;
      const rows: string[][] = [];
      const run = async (step: string, csv: string): Promise<EdgeImportSummary> => {
        log(step);
        const progress = phaseTimer();
        const summary = await importEdges(sql, csv, { progress });
        const matching = progress.phases.find(([name]) => name === "matching")?.[1] ?? 0;
        rows.push([...row(step, summary, matching), progress.phases.map(([name, s]) => `${name} ${s.toFixed(1)}`).join(", ")]);
        return summary;
      };
      const first = await run("importEdges: file into empty store", file);
      await run("importEdges: 100k increment into full store", incrementFile);
      await run("importEdges: same file again (all known)", file);
      log("baseline: batched INSERT");
      const naive = await naiveInsert(sql, file, 1_000_000);
      rows.push([...row("naive: INSERT 1,000 rows/statement (first 1M rows)", naive), ""]);
      printTable(
        `edges-import @ ${context.label}: ${int(first.rows)} rows, ${(size / 1e6).toFixed(0)} MB CSV, registry of ${int(context.spec.people)} people`,
        ["step", "rows", "added", "duplicates", "seconds", "rows/s", "rows/s w/o matching", "matches added", "phases (s)"],
        rows,
        [
          "target: >= 1,000,000 edges/s. rows/s is end to end; \"w/o matching\" leaves out deriving the matches the new edges make (same transaction).",
          `process peak RSS ${mib(process.resourceUsage().maxRSS * 1024)} MiB`,
        ],
      );
    } finally {
      await sql.end({ timeout: 5 });
      await graph.release();
      if (!context.keep) {
        await rm(file, { force: true });
        await rm(`${file}.json`, { force: true });
        await rm(incrementFile, { force: true });
      }
    }
  },
};
