/**
 * The order in which transactions lock things, so that no two wait for
 * each other (PostgreSQL would abort one: a minute's import, or someone's
 * `forget`). Deleting a person or an identity locks it and then, through
 * the cascades, what refers to it; so everyone else goes the same way:
 *
 *   x_follow  →  people (in id order)  →  identities  →  what names them
 *                                          (matches, reconnection targets,
 *                                           link codes, web links)
 *
 * - A bulk edge import (src/import/edges.ts) holds `x_follow` and then
 *   key-share-locks people (its matches' foreign keys): forget, merge and an
 *   uploaded archive lock `x_follow` before the person (here).
 * - Recording reconnection outcomes, redeeming a link code, and the registry
 *   import lock their people before the rows that name them; using a web
 *   link locks its identity first.
 *
 * Each case is a deterministic test in src/store/lock-order.test.ts (and
 * src/conversation/link.test.ts): a transaction locking as a forget or an
 * import does, the operation started meanwhile.
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
