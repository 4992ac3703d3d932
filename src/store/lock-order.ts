/**
 * The order in which transactions lock follow edges and people. A bulk edge
 * import (src/import/edges.ts) holds `x_follow` — exclusive, then access
 * exclusive for its swap — and then takes key-share locks on person rows:
 * the foreign keys of the matches it derives. A transaction that locks a
 * person row for update (forget, merge, an upload) and only then waits for
 * `x_follow` would deadlock with it, and PostgreSQL would abort one of the
 * two. So those take `x_follow` first, in the mode they will need, and wait
 * for the import holding nothing it needs (src/store/lock-order.test.ts).
 */
import type { Queryable } from "./types.ts";

/**
 * Locks `x_follow` for the rest of the transaction: `read` for one that
 * only reads edges (deriving matches), `write` for one that deletes them.
 * Call before locking any person row. Inside a transaction only.
 */
export async function lockEdgesBeforePeople(db: Queryable, use: "read" | "write"): Promise<void> {
  if (use === "write") await db`lock table x_follow in row exclusive mode`;
  else await db`lock table x_follow in access share mode`;
}
