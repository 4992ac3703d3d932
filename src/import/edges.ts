/**
 * `reconnexion import edges <csv>`: X follow edges at bulk speed. The file's
 * bytes go straight into PostgreSQL's COPY (PostgreSQL parses and type-checks
 * the CSV, far faster than doing it here), into a temporary table, then merge
 * into `x_follow` and into `match` in the same transaction: all or nothing,
 * and importing the same file twice adds nothing.
 */
import { createReadStream } from "node:fs";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Sql } from "../store/database.ts";
import type { Queryable } from "../store/types.ts";
import { readCsvHeader } from "./csv-file.ts";
import { translateCopyError } from "./copy-errors.ts";
import { ImportError, silentProgress, type EdgeImportSummary, type Progress } from "./types.ts";

export const EDGE_COLUMNS = ["follower_x_id", "followed_x_id"] as const;

export async function importEdges(
  sql: Sql,
  file: string,
  options: { progress?: Progress } = {},
): Promise<EdgeImportSummary> {
  const progress = options.progress ?? silentProgress;
  const started = performance.now();
  const header = await readCsvHeader(file, EDGE_COLUMNS);

  const summary = await sql.begin(async (tx) => {
    await tx`set local synchronous_commit = off`;
    await tx`set local work_mem = '1GB'`;
    await tx`set local maintenance_work_mem = '1GB'`;
    await tx`set local max_parallel_maintenance_workers = 2`;
    await tx`
      create temporary table edge_import (
        -- named as in the CSV, so that errors name the CSV's columns
        follower_x_id bigint not null check (follower_x_id > 0),
        followed_x_id bigint not null check (followed_x_id > 0)
      ) on commit drop`;

    progress.phase("reading", header.size - header.bodyOffset);
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        bytes += chunk.length;
        progress.tick(bytes);
        callback(null, chunk);
      },
    });
    try {
      const copy = await tx`copy edge_import from stdin with (format csv)`.writable();
      await pipeline(createReadStream(file, { start: header.bodyOffset, highWaterMark: 1 << 20 }), counter, copy);
    } catch (error) {
      throw translateCopyError(error, file, 1) ?? error;
    }
    const [{ rows } = { rows: 0 }] = await tx<{ rows: number }[]>`select count(*)::int as rows from edge_import`;

    progress.phase("merging", rows);
    const added = await mergeEdges(tx, rows);
    progress.tick(rows);

    progress.phase("matching");
    const matchesAdded = await addMatchesForNewEdges(tx);
    progress.end();
    return { rows, added, matchesAdded };
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

// Below this share of the existing edges, insert row by row into the
// indexed table; above it, rebuilding the table and its indexes is cheaper
// (measured: ~7 µs per indexed insert against ~1.3 µs per row rebuilt).
const REBUILD_SHARE = 0.2;

/** Moves `edge_import` into x_follow, deduplicated; returns edges added. */
async function mergeEdges(tx: Queryable, rows: number): Promise<number> {
  const [{ estimate } = { estimate: 0 }] = await tx<{ estimate: number }[]>`
    select greatest(reltuples, 0)::float8 as estimate from pg_class where oid = 'x_follow'::regclass`;
  if (rows < 10_000 || rows < estimate * REBUILD_SHARE) {
    const result = await tx`
      insert into x_follow (follower, followed)
      select distinct follower_x_id, followed_x_id from edge_import
      order by 1, 2
      on conflict do nothing`;
    return result.count;
  }
  const [{ before } = { before: 0 }] = await tx<{ before: number }[]>`select count(*)::float8 as before from x_follow`;
  // Same shape and indexes as db/migrations/001_graph_store.sql; the indexes
  // are built once, after the rows are in.
  await tx`create table x_follow_next (like x_follow including defaults including constraints)`;
  const inserted = await tx`
    insert into x_follow_next (follower, followed)
    select follower, followed from (
      select follower, followed from x_follow
      union all
      select follower_x_id, followed_x_id from edge_import) e
    group by follower, followed`;
  await tx`alter table x_follow_next add constraint x_follow_next_pkey primary key (follower, followed)`;
  await tx`create index x_follow_next_followed on x_follow_next (followed, follower)`;
  await tx`drop table x_follow`;
  await tx`alter table x_follow_next rename to x_follow`;
  await tx`alter index x_follow_next_pkey rename to x_follow_pkey`;
  await tx`alter index x_follow_next_followed rename to x_follow_followed`;
  await tx`analyze x_follow`;
  return inserted.count - before;
}

/** New matches created by the imported edges: both ends registered, target verified. */
async function addMatchesForNewEdges(tx: Queryable): Promise<number> {
  const result = await tx`
    insert into match (person_id, platform, target_person_id)
    select distinct p.person_id, t.platform, xt.person_id
    from edge_import e
    join identity p on p.x_id = e.follower_x_id
    join identity xt on xt.x_id = e.followed_x_id and xt.verified_by <> 'archive'
    join identity t on t.person_id = xt.person_id
      and t.platform in ('bluesky', 'fediverse') and t.verified_by <> 'archive'
    where p.person_id <> xt.person_id
    on conflict do nothing`;
  return result.count;
}

export { ImportError };
