/**
 * Each Bluesky account's write budget, as its PDS counts it: 5,000 points an
 * hour and 35,000 a day, a create costing 3 (about 1,666 follows an hour).
 * Kept in PostgreSQL (src/store/write-budget.ts) so every worker writing for
 * the account draws on the same budget; sliding windows there, for the reason
 * given in that file. The server's own figures (`ratelimit-*` headers, a 429)
 * are honoured on top: they also count writes made elsewhere, such as the
 * person's own app.
 */
import type { Reservation, ServerLimit, WriteBudgets } from "../store/write-budget.ts";

export type { Reservation, ServerLimit };

export interface WriteLimits {
  hourPoints: number;
  hourMs: number;
  dayPoints: number;
  dayMs: number;
  /** Points one record create costs. */
  createCost: number;
  /**
   * How much longer than its window a reservation keeps counting: covers the
   * time from the reservation to the request reaching the PDS, so that a
   * slow request cannot land in the same server window as a later one.
   */
  slackMs: number;
}

/** Bluesky's PDS limits (repo-write-hour, repo-write-day in @atproto/pds). */
export const BLUESKY_WRITE_LIMITS: Readonly<WriteLimits> = {
  hourPoints: 5_000,
  hourMs: 3_600_000,
  dayPoints: 35_000,
  dayMs: 86_400_000,
  createCost: 3,
  slackMs: 10_000,
};

/** What a follow writer needs from a budget: see {@link BlueskyWriteBudget}. */
export interface WriteBudget {
  /** Grants up to `wantedWrites` creates now, or says when to ask again. */
  reserve(did: string, wantedWrites: number): Promise<Reservation>;
  /** Gives back creates reserved but not sent. */
  refund(did: string, writes: number, reservation?: string): Promise<void>;
  /** Honours the server's own count until `resetAt` (headers of a response, a 429's reset). */
  noteServerLimit(did: string, limit: ServerLimit): Promise<void>;
}

/** The shared budget of Bluesky accounts, with injectable limits (tests use tiny ones). */
export class BlueskyWriteBudget implements WriteBudget {
  readonly limits: Readonly<WriteLimits>;
  private readonly budgets: WriteBudgets;

  constructor(budgets: WriteBudgets, limits: Partial<WriteLimits> = {}) {
    this.budgets = budgets;
    this.limits = { ...BLUESKY_WRITE_LIMITS, ...limits };
  }

  reserve(did: string, wantedWrites: number): Promise<Reservation> {
    const l = this.limits;
    return this.budgets.reserve(did, {
      wanted: wantedWrites,
      cost: l.createCost,
      windows: [
        { ms: l.hourMs, points: l.hourPoints },
        { ms: l.dayMs, points: l.dayPoints },
      ],
      slackMs: l.slackMs,
    });
  }

  refund(did: string, writes: number, reservation?: string): Promise<void> {
    return this.budgets.refund(did, writes * this.limits.createCost, reservation);
  }

  noteServerLimit(did: string, limit: ServerLimit): Promise<void> {
    return this.budgets.noteServerLimit(did, limit);
  }
}
