/**
 * Per-account write budgets in PostgreSQL, shared by every worker process:
 * a ledger of the points reserved, checked against one or more sliding
 * windows, plus the last limit the server reported.
 *
 * Why sliding windows: Bluesky's PDS counts with fixed windows that start at
 * an account's first write after the previous window expired — a start we
 * cannot see. Our own fixed windows could straddle two of its windows and
 * put up to twice the limit into one of them. A sliding window bounds every
 * interval of that length, so whichever interval the server counts, it
 * holds at most the limit of our points; the steady rate is the same. An
 * extra `slackMs` keeps a point counted a little longer than the window, for
 * the time between a reservation and its request reaching the server.
 */
import type postgres from "postgres";
import type { Queryable } from "./types.ts";

/** At most `points` in any `ms` milliseconds. */
export interface BudgetWindow {
  ms: number;
  points: number;
}

export interface ReserveRequest {
  /** Writes wanted; as many as fit are granted. */
  wanted: number;
  /** Points each write costs. */
  cost: number;
  windows: readonly BudgetWindow[];
  /** Extra time a reservation keeps counting after its window (default 0). */
  slackMs?: number;
}

/** Writes granted (`reservation` names them for a refund), or none before `retryAt`. */
export type Reservation = { granted: number; reservation: string } | { granted: 0; retryAt: Date };

/** What a server said about an account's budget: points left until `resetAt`. */
export interface ServerLimit {
  remaining: number;
  resetAt: Date;
}

type Tx = postgres.TransactionSql<{}>;

export class WriteBudgets {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /** Runs `fn` in a transaction (a savepoint when `db` is already one). */
  private atomically<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const db = this.db as postgres.Sql<{}> & Partial<Pick<Tx, "savepoint">>;
    if (typeof db.begin === "function") return db.begin(fn) as Promise<T>;
    return db.savepoint!(fn) as Promise<T>;
  }

  /**
   * Grants as many of `wanted` writes as fit in every window and in the
   * server's last reported limit, atomically: the account's row is locked
   * until the grant is written, so concurrent reservers queue up.
   */
  async reserve(account: string, request: ReserveRequest): Promise<Reservation> {
    const { wanted, cost, windows } = request;
    const slack = request.slackMs ?? 0;
    if (!Number.isInteger(wanted) || wanted < 1) throw new RangeError("wanted must be a positive integer");
    for (const w of windows) if (w.points < cost) throw new RangeError(`a window of ${w.points} points cannot fit one write of ${cost}`);
    const longest = Math.max(0, ...windows.map((w) => w.ms)) + slack;
    return this.atomically(async (tx) => {
      await tx`insert into write_budget (account) values (${account}) on conflict (account) do nothing`;
      // Lock first, then read the clock and the ledger: a reserver that waited
      // for the lock sees the grant written by the one before it.
      const [row] = await tx<{ remaining: number | null; resetAt: Date | null; now: Date }[]>`
        select server_remaining as remaining, server_reset_at as "resetAt", clock_timestamp() as now
        from write_budget where account = ${account} for update`;
      const now = row!.now;
      const horizon = new Date(now.getTime() - longest);
      await tx`delete from write_budget_use where account = ${account} and at <= ${horizon}`;
      const uses = await tx<{ at: Date; points: number }[]>`
        select at, points from write_budget_use where account = ${account} and at > ${horizon} and points > 0 order by at`;

      let free = Number.POSITIVE_INFINITY;
      let retryAt = now.getTime();
      for (const w of windows) {
        const span = w.ms + slack;
        const inWindow = uses.filter((u) => u.at.getTime() > now.getTime() - span);
        const used = inWindow.reduce((sum, u) => sum + u.points, 0);
        free = Math.min(free, w.points - used);
        if (w.points - used < cost) retryAt = Math.max(retryAt, freedAt(inWindow, used - (w.points - cost), span));
      }
      const serverActive = row!.resetAt !== null && row!.remaining !== null && row!.resetAt > now;
      if (serverActive) {
        free = Math.min(free, row!.remaining!);
        if (row!.remaining! < cost) retryAt = Math.max(retryAt, row!.resetAt!.getTime());
      }

      const granted = Math.min(wanted, Math.floor(Math.max(0, free) / cost));
      if (granted === 0) return { granted: 0, retryAt: new Date(Math.max(retryAt, now.getTime() + 1)) };
      const points = granted * cost;
      const [use] = await tx<{ id: string }[]>`
        insert into write_budget_use (account, at, points) values (${account}, ${now}, ${points}) returning id`;
      if (serverActive) {
        await tx`update write_budget set server_remaining = server_remaining - ${points}, updated_at = now() where account = ${account}`;
      }
      return { granted, reservation: String(use!.id) };
    });
  }

  /**
   * Drops the ledger rows older than `before` (past every window), and the
   * accounts left with none and no standing server limit: an account that
   * stops writing (or whose person was forgotten) leaves nothing behind.
   * Returns the accounts dropped.
   */
  async purge(before: Date): Promise<number> {
    await this.db`delete from write_budget_use where at < ${before}`;
    const gone = await this.db`
      delete from write_budget b
      where b.updated_at < ${before}
        and (b.server_reset_at is null or b.server_reset_at < now())
        and not exists (select 1 from write_budget_use u where u.account = b.account)`;
    return gone.count;
  }

  /**
   * Gives back points reserved but never sent. With `reservation` they come
   * off that grant; without, off the newest grants (exact when one worker
   * writes for the account at a time).
   */
  async refund(account: string, points: number, reservation?: string): Promise<void> {
    if (points <= 0) return;
    if (reservation !== undefined) {
      await this.db`update write_budget_use set points = greatest(points - ${points}, 0)
        where id = ${reservation} and account = ${account}`;
      return;
    }
    await this.atomically(async (tx) => {
      await tx`select 1 from write_budget where account = ${account} for update`;
      const rows = await tx<{ id: string; points: number }[]>`
        select id, points from write_budget_use where account = ${account} and points > 0 order by at desc, id desc`;
      let left = points;
      for (const r of rows) {
        if (left <= 0) break;
        const take = Math.min(left, r.points);
        await tx`update write_budget_use set points = points - ${take} where id = ${r.id}`;
        left -= take;
      }
    });
  }

  /**
   * Records the server's own count. While a reported limit stands (before
   * its reset) only a tighter one replaces it: responses may arrive out of
   * order, and the server reports whichever of its windows is tightest.
   */
  async noteServerLimit(account: string, limit: ServerLimit): Promise<void> {
    const remaining = Math.max(0, Math.floor(limit.remaining));
    await this.db`
      insert into write_budget (account, server_remaining, server_reset_at)
      values (${account}, ${remaining}, ${limit.resetAt})
      on conflict (account) do update set
        server_remaining = excluded.server_remaining,
        server_reset_at = excluded.server_reset_at,
        updated_at = now()
      where write_budget.server_reset_at is null
        or write_budget.server_reset_at <= clock_timestamp()
        or excluded.server_remaining < write_budget.server_remaining
        or (excluded.server_remaining = write_budget.server_remaining and excluded.server_reset_at > write_budget.server_reset_at)`;
  }

  /** Points reserved in the last `ms` milliseconds (for reports and checks). */
  async used(account: string, ms: number): Promise<number> {
    const [row] = await this.db<{ used: number }[]>`
      select coalesce(sum(points), 0)::int as used from write_budget_use
      where account = ${account} and at > clock_timestamp() - make_interval(secs => ${ms / 1000})`;
    return row!.used;
  }
}

/**
 * When enough of `uses` (ascending, all inside a window of `span` ms) have
 * left the window to free `needed` points: the expiry of the use that
 * brings the freed total to `needed`.
 */
function freedAt(uses: readonly { at: Date; points: number }[], needed: number, span: number): number {
  let freed = 0;
  for (const u of uses) {
    freed += u.points;
    if (freed >= needed) return u.at.getTime() + span;
  }
  return (uses.at(-1)?.at.getTime() ?? 0) + span;
}
