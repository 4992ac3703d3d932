/**
 * `reconnexion import edges <csv>`: X follow edges at bulk speed. The file's
 * bytes go straight into PostgreSQL's COPY (PostgreSQL parses and type-checks
 * the CSV, far faster than doing it here). Everything happens in one
 * transaction: all or nothing, and importing the same file twice adds nothing.
 * Edge imports run one at a time (an advisory lock).
 *
 * Two paths, chosen from the file's size against the table's:
 * - incremental: COPY into a temporary table, then insert into the indexed
 *   `x_follow` skipping what is there;
 * - bulk (a load at least a fifth of the table): COPY into a fresh table,
 *   take out the edges the store has (re-importing a whole dump then adds
 *   only what is new, as an increment), else add the existing edges to it,
 *   build its indexes once, swap it in. Sorting for the
 *   unique index is also the duplicate check; only if duplicates exist is a
 *   deduplicating pass needed. Lines repeated within one follower's run are
 *   left out on the way in (GroupDedupe), so a file grouped by follower, as
 *   exports are, needs no such pass (measured at 47M edges: 200 s → 73 s,
 *   with the matches inserted in bulk as well).
 */
import { createReadStream } from "node:fs";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type postgres from "postgres";
import type { Sql } from "../store/database.ts";
import { Matches } from "../store/matches.ts";
import { readCsvHeader } from "./csv-file.ts";
import { translateCopyError } from "./copy-errors.ts";
import { EdgeFieldError, GroupDedupe } from "./group-dedupe.ts";
import { ImportError, silentProgress, type EdgeImportSummary, type Progress } from "./types.ts";

export const EDGE_COLUMNS = ["follower_x_id", "followed_x_id"] as const;

// Above this share of the existing edges, rebuilding the table and its
// indexes beats inserting into them (measured: ~7 µs per indexed insert
// against ~1 µs per row rebuilt).
const REBUILD_SHARE = 0.2;
// A CSV edge line is 20–40 bytes; the row estimate only picks the path.
const BYTES_PER_ROW = 30;
/** pg_advisory_xact_lock key of edge imports ("edge"). */
const EDGE_IMPORT_LOCK = 0x65646765;

type Tx = postgres.TransactionSql<{}>;

export async function importEdges(
  sql: Sql,
  file: string,
  options: { progress?: Progress } = {},
): Promise<EdgeImportSummary> {
  const progress = options.progress ?? silentProgress;
  const started = performance.now();
  const header = await readCsvHeader(file, EDGE_COLUMNS);
  const bodyBytes = header.size - header.bodyOffset;

  const summary = await sql.begin(async (tx) => {
    // One edge import at a time. Two at once deadlock: both take a read lock
    // on `x_follow` (creating their tables like it) and then need to write
    // it, or to swap it; and two bulk ones create the same `x_follow_next`.
    await tx`select pg_advisory_xact_lock(${EDGE_IMPORT_LOCK})`;
    await tx`set local synchronous_commit = off`;
    await tx`set local work_mem = '1GB'`;
    await tx`set local maintenance_work_mem = '1GB'`;
    await tx`set local max_parallel_maintenance_workers = 2`;
    const [{ existing } = { existing: 0 }] = await tx<{ existing: number }[]>`
      select greatest(reltuples, 0)::float8 as existing from pg_class where oid = 'x_follow'::regclass`;
    const estimate = bodyBytes / BYTES_PER_ROW;
    const bulk = estimate >= 10_000 && estimate >= existing * REBUILD_SHARE;

    progress.phase("reading", bodyBytes);
    const table = bulk ? "x_follow_next" : "edge_import";
    if (bulk) {
      await tx`create table x_follow_next (like x_follow including defaults including constraints)`;
    } else {
      await tx`create temporary table edge_import (like x_follow including defaults including constraints) on commit drop`;
    }
    const { rows, copied } = await copyFile(tx, table, file, header.bodyOffset, progress);

    progress.phase("merging", rows);
    const merged = bulk ? await mergeBulk(tx, copied) : { added: await insertNew(tx, "edge_import"), newEdgesIn: "edge_import" as const };

    progress.phase("matching");
    const matchesAdded = await new Matches(tx).refreshForEdges(merged.newEdgesIn);
    if (merged.newEdgesIn === "x_follow_next") await tx`drop table x_follow_next`;
    progress.end();
    return { rows, added: merged.added, matchesAdded };
  });

  return {
    file,
    rows: summary.rows,
    added: summary.added,
    duplicates: summary.rows - summary.added,
    matchesAdded: summary.matchesAdded,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Streams the file's body into `table`: `rows` read from the file, of which
 * `copied` reached the table (the others repeated a line just before them).
 */
async function copyFile(
  tx: Tx,
  table: string,
  file: string,
  offset: number,
  progress: Progress,
): Promise<{ rows: number; copied: number }> {
  let bytes = 0;
  let lastByte = 0x0a;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      if (chunk.length > 0) lastByte = chunk[chunk.length - 1]!;
      progress.tick(bytes);
      callback(null, chunk);
    },
  });
  // It also counts the lines, and refuses any byte but digits, commas, quotes
  // and line breaks (COPY would read `0x10`, `0o17`, `0b101`, `1_000` or ` 12`
  // as numbers): one pass over the bytes, not two.
  const dedupe = new GroupDedupe({ checkDigits: true });
  try {
    // Both tables are created by this transaction, so the rows can go in
    // frozen: no autovacuum rewriting 2 GB of edges later to freeze them.
    const copy = await tx`copy ${tx(table)} (follower, followed) from stdin with (format csv, freeze true)`.writable();
    await pipeline(createReadStream(file, { start: offset, highWaterMark: 1 << 20 }), counter, dedupe, copy);
  } catch (error) {
    if (error instanceof EdgeFieldError) throw new ImportError(file, error.line + 1, fieldMessage(error));
    // COPY counts the lines it saw; the file also has its header and the dropped repeats.
    const fileLine = (copyLine: number) => dedupe.fileLine(copyLine) + 1;
    throw translateCopyError(error, file, fileLine, { follower: "follower_x_id", followed: "followed_x_id" }) ?? error;
  }
  // A last line without a line break is a row too.
  const rows = dedupe.lineBreaks + (bytes > 0 && lastByte !== 0x0a ? 1 : 0);
  return { rows, copied: rows - dedupe.dropped.length };
}

/** What is wrong with a field that is not a decimal number, worded as COPY's refusals are (copy-errors.ts). */
function fieldMessage(error: EdgeFieldError): string {
  if (error.column >= EDGE_COLUMNS.length) return "the row has more columns than the header.";
  if (/^-[0-9]+$/.test(error.field)) return "X account ids must be positive numbers.";
  return `${EDGE_COLUMNS[error.column]} must be a positive whole number (an X account id), not "${error.field}".`;
}

/** Incremental: new edges from `table` into the indexed `x_follow`. */
async function insertNew(tx: Tx, table: "edge_import" | "x_follow_next"): Promise<number> {
  const result = await tx`
    insert into x_follow (follower, followed)
    select distinct follower, followed from ${tx(table)}
    order by 1, 2
    on conflict do nothing`;
  return result.count;
}

/**
 * Bulk: `x_follow_next` holds the file's `rows`. Edges the store already has
 * are taken out first (a re-import of a whole dump adds little); if what
 * remains is small next to the store, it is inserted as an increment,
 * else the table is rebuilt around it. Says where the new edges are.
 */
async function mergeBulk(tx: Tx, rows: number): Promise<{ added: number; newEdgesIn: "x_follow" | "x_follow_next" }> {
  // Writers wait (readers do not) until the end: an edge added meanwhile
  // would be in the old table only, and dropped with it.
  await tx`lock table x_follow in exclusive mode`;
  const [{ before } = { before: 0 }] = await tx<{ before: number }[]>`select count(*)::float8 as before from x_follow`;
  if (before > 0) {
    await tx`analyze x_follow_next`;
    await tx`create table x_follow_fresh (like x_follow including defaults including constraints)`;
    const fresh = await tx`
      insert into x_follow_fresh (follower, followed)
      select n.follower, n.followed from x_follow_next n
      where not exists (select 1 from x_follow e where e.follower = n.follower and e.followed = n.followed)`;
    await tx`drop table x_follow_next`;
    await tx`alter table x_follow_fresh rename to x_follow_next`;
    if (fresh.count < before * REBUILD_SHARE) return { added: await insertNew(tx, "x_follow_next"), newEdgesIn: "x_follow_next" };
    rows = fresh.count;
  }
  return { added: await rebuild(tx, rows, before), newEdgesIn: "x_follow" };
}

/** Adds the existing edges (none of them in `x_follow_next`) to it, indexes it once, swaps it in. */
async function rebuild(tx: Tx, rows: number, before: number): Promise<number> {
  if (before > 0) await tx`insert into x_follow_next (follower, followed) select follower, followed from x_follow`;
  let total = rows + before;
  try {
    await tx.savepoint((sp) => sp`alter table x_follow_next add constraint x_follow_next_pkey primary key (follower, followed)`);
  } catch (error) {
    if ((error as { code?: string }).code !== "23505") throw error;
    // Duplicates the stream let through: one deduplicating pass.
    await tx`create table x_follow_unique (like x_follow including defaults including constraints)`;
    const inserted = await tx`
      insert into x_follow_unique (follower, followed)
      select follower, followed from x_follow_next group by follower, followed`;
    total = inserted.count;
    await tx`drop table x_follow_next`;
    await tx`alter table x_follow_unique rename to x_follow_next`;
    await tx`alter table x_follow_next add constraint x_follow_next_pkey primary key (follower, followed)`;
  }
  // Same indexes as db/migrations/001_graph_store.sql. Tried and left: the
  // two built at once by two sessions (from a staging table committed
  // first, so both can see it) took 17.4–19.4 s against 21.3 end to end at
  // 15.9M edges, but nothing at 47M (65.7 s against 60–67: the sorts spill,
  // and the matching then fights them for the cores); one parallel worker
  // instead of two, no gain beyond the noise.
  await tx`create index x_follow_next_followed on x_follow_next (followed, follower)`;
  await tx`drop table x_follow`;
  await tx`alter table x_follow_next rename to x_follow`;
  await tx`alter index x_follow_next_pkey rename to x_follow_pkey`;
  await tx`alter index x_follow_next_followed rename to x_follow_followed`;
  await tx`analyze x_follow`;
  return total - before;
}
