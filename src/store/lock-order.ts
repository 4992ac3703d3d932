/**
 * The order in which transactions lock things, so that they wait for each
 * other instead of deadlocking (PostgreSQL would abort one: a minute's
 * import, or someone's `forget`). Deleting a person or an identity locks it
 * and then, through the cascades, what refers to it; so everyone else goes
 * the same way:
 *
 *   x_follow  →  people (in id order)  →  identities  →  what names them
 *                                          (matches, reconnection targets,
 *                                           link codes, web links)
 *
 * The table lock on `x_follow` comes first and keeps apart the transactions
 * that hold a person for update and then lock other rows in no set order
 * (inserting matches locks the people they name, through foreign keys; a
 * forget's cascades lock the matches of the people it matched with):
 * - edge imports hold it (exclusive for a bulk load, row exclusive for an
 *   increment) and insert matches;
 * - an operator's archive import takes it in row exclusive mode before it
 *   claims the archive's X identity (after reading the archive, which
 *   locks nothing);
 * - a forget, a merge, a link, an unlink, a fediverse Move, removing or
 *   adding an uploaded archive and the registry import take it in share row exclusive mode,
 *   which waits for the imports and for each other, and never for readers.
 *   All but the registry import (an operator's, which refreshes matches for
 *   everyone it loads) are a few statements; an upload reads its file first.
 * Recording reconnection outcomes, opening a job, claiming arrivals for a
 * digest and recording public posts lock their people in id order first,
 * for key share (which a forget's or
 * merge's lock waits for); using a web link locks its identity first.
 *
 * Each case is a deterministic test in src/store/lock-order.test.ts (and
 * src/conversation/link.test.ts): a transaction locking as a forget or an
 * import does, the operation started meanwhile.
 */
import type { Queryable } from "./types.ts";

/**
 * Locks `x_follow` for the rest of the transaction, before any person row,
 * for whatever holds a person for update (see above); the holder may then
 * read and write edges. Inside a transaction only.
 */
export async function lockEdgesBeforePeople(db: Queryable): Promise<void> {
  await db`lock table x_follow in share row exclusive mode`;
}
