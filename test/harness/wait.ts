/** Polling for a condition in tests that watch other processes or queues. */

/** Resolves with `fn()`'s first truthy value; throws naming `what` after `timeoutMs`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
  stepMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/** Resolves once another session of `sql`'s database waits for a lock (tests of lock order). */
export async function someoneWaitsForLock(sql: import("../../src/store/database.ts").Sql): Promise<void> {
  await until("a session waiting for a lock", async () => {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`;
    return row!.n > 0;
  }, 5_000, 20);
}
