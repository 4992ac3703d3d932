/**
 * Bulk inserts into an indexed table: drop its indexes and unique
 * constraints, insert, then build them again from the definitions
 * PostgreSQL itself gives (so this follows the migrations without repeating
 * them). Building an index once is far cheaper than updating it row by row.
 *
 * Foreign keys cost a lookup and a row lock per inserted row (5M matches:
 * 69 s with them, 35 s without, 12 s with the indexes rebuilt as well —
 * bench/edges-import.ts), but removing one locks the *referenced* table
 * (ACCESS EXCLUSIVE: nobody reads it until commit). So they are set aside
 * only when every referenced table can be locked at once, without waiting:
 * a load into an idle store (the usual first import). On a live store the
 * foreign keys stay; and if the table itself is in use, nothing is set
 * aside at all. No lock is ever waited for here, so this cannot deadlock
 * with a transaction that holds one of these tables while it waits for
 * something the caller holds (after an edge import's swap: `x_follow`).
 *
 * Must run inside a transaction; the table itself is locked until commit.
 */
import type postgres from "postgres";

interface Definition {
  name: string;
  def: string;
  kind: "p" | "u" | "f" | "i";
  referenced: string | null;
}

/**
 * Runs `insert` with `table`'s indexes (and, when free, foreign keys) set
 * aside, and restores them. Undefined, having done nothing, when `table`
 * itself is in use right now: the caller then inserts the usual way. Never
 * waits for a lock, so it cannot deadlock with a transaction that holds one
 * of these tables and waits for something the caller holds.
 */
export async function withIndexesDeferred<T>(
  tx: postgres.TransactionSql<{}>,
  table: string,
  insert: () => Promise<T>,
): Promise<{ result: T; foreignKeysDeferred: boolean } | undefined> {
  const all = await tx<Definition[]>`
    select conname as name, pg_get_constraintdef(oid) as def, contype as kind, confrelid::regclass::text as referenced
    from pg_constraint
    where conrelid = ${table}::regclass and contype in ('p', 'u', 'f')
    union all
    select c.relname, pg_get_indexdef(i.indexrelid), 'i', null
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = ${table}::regclass
      and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid and k.conrelid = i.indrelid)`;
  const self = (await tx<{ name: string }[]>`select ${table}::regclass::text as name`)[0]!.name;
  const referenced = [...new Set(all.filter((d) => d.kind === "f").map((d) => d.referenced!))].filter((r) => r !== self);
  const foreignKeysDeferred = referenced.length > 0 && (await lockAllNow(tx, [self, ...referenced]));
  if (!foreignKeysDeferred && !(await lockAllNow(tx, [self]))) return undefined;
  const definitions = all.filter((d) => d.kind !== "f" || foreignKeysDeferred);

  // Foreign keys off first (they may lean on this table's unique indexes);
  // back on last, each validated by one join.
  const dropOrder = { f: 0, p: 1, u: 1, i: 2 } as const;
  const buildOrder = { p: 0, u: 0, i: 1, f: 2 } as const;
  for (const d of [...definitions].sort((a, b) => dropOrder[a.kind] - dropOrder[b.kind])) {
    if (d.kind === "i") await tx`drop index ${tx(d.name)}`;
    else await tx`alter table ${tx(table)} drop constraint ${tx(d.name)}`;
  }
  const result = await insert();
  // Definitions and names come from the catalog, not from input.
  for (const d of [...definitions].sort((a, b) => buildOrder[a.kind] - buildOrder[b.kind])) {
    if (d.kind === "i") await tx.unsafe(d.def);
    else await tx.unsafe(`alter table ${self} add constraint ${quote(d.name)} ${d.def}`);
  }
  return { result, foreignKeysDeferred };
}

/** Locks every table in `tables` (ACCESS EXCLUSIVE) if none is in use right now; false, holding none, otherwise. */
async function lockAllNow(tx: postgres.TransactionSql<{}>, tables: readonly string[]): Promise<boolean> {
  try {
    await tx.savepoint(async (sp) => {
      for (const t of tables) await sp.unsafe(`lock table ${t} in access exclusive mode nowait`);
    });
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === "55P03") return false; // lock_not_available
    throw error;
  }
}

function quote(identifier: string): string {
  return `"${identifier.replace(/"/g, '""')}"`;
}
