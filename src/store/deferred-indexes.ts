/**
 * Bulk inserts into an indexed table: drop its indexes and its unique and
 * foreign-key constraints, insert, then build them again from the
 * definitions PostgreSQL itself gives (so this follows the migrations
 * without repeating them). Building an index once is far cheaper than
 * updating it row by row, and one validating join is far cheaper than a
 * foreign-key trigger per row: 5M matches took 69 s inserted into the
 * indexed table and 12 s this way (bench/edges-import.ts).
 *
 * Must run inside a transaction; the table is locked (ACCESS EXCLUSIVE)
 * until it commits, so readers wait for the import instead of seeing the
 * table without its indexes.
 */
import type { Queryable } from "./types.ts";

interface Definition {
  name: string;
  def: string;
  kind: "p" | "u" | "f" | "i";
}

/** Runs `insert` with `table`'s indexes and key constraints set aside, and restores them. */
export async function withIndexesDeferred<T>(db: Queryable, table: string, insert: () => Promise<T>): Promise<T> {
  const definitions = await db<Definition[]>`
    select conname as name, pg_get_constraintdef(oid) as def, contype as kind
    from pg_constraint
    where conrelid = ${table}::regclass and contype in ('p', 'u', 'f')
    union all
    select c.relname, pg_get_indexdef(i.indexrelid), 'i'
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = ${table}::regclass
      and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = i.indrelid)`;
  // Foreign keys off first (they may lean on this table's unique indexes);
  // back on last, each validated by one join.
  const dropOrder = { f: 0, p: 1, u: 1, i: 2 } as const;
  const buildOrder = { p: 0, u: 0, i: 1, f: 2 } as const;
  for (const d of [...definitions].sort((a, b) => dropOrder[a.kind] - dropOrder[b.kind])) {
    if (d.kind === "i") await db`drop index ${db(d.name)}`;
    else await db`alter table ${db(table)} drop constraint ${db(d.name)}`;
  }
  const result = await insert();
  // Definitions and names come from the catalog, not from input.
  for (const d of [...definitions].sort((a, b) => buildOrder[a.kind] - buildOrder[b.kind])) {
    if (d.kind === "i") await db.unsafe(d.def);
    else await db.unsafe(`alter table ${quote(table)} add constraint ${quote(d.name)} ${d.def}`);
  }
  return result;
}

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}
