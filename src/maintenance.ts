/**
 * Housekeeping on a schedule (node-cron): drop what is only kept for a
 * while — used or expired link codes and one-time web links, idle
 * conversation counters, the fediverse notes kept to refuse replays,
 * abandoned Bluesky OAuth flows, write-budget ledgers past their windows. Every replica may run it: each
 * step is one idempotent DELETE.
 */
import cron from "node-cron";
import type { Logger } from "./logger.ts";
import type { Store } from "./store/index.ts";

const DAY = 24 * 60 * 60 * 1000;

/** How long each kind of short-lived row is kept. */
export const RETENTION = {
  /** Per-sender rate-limit windows, hint silences, pending `forget`s. */
  conversationIdleDays: 7,
  /** Notes already handled, kept to refuse redeliveries and replays. */
  fediverseNoteDays: 30,
  /** Write-budget ledgers: past the longest window (Bluesky's day), with room to spare. */
  writeBudgetDays: 2,
} as const;

/** Runs every clean-up once; returns rows deleted per kind. */
export async function runMaintenance(store: Store, now: Date = new Date()): Promise<Record<string, number>> {
  return {
    linkCodes: await store.linkCodes.purgeExpired(),
    conversationState: await store.conversation.purgeIdle(new Date(now.getTime() - RETENTION.conversationIdleDays * DAY)),
    fediverseNotes: await store.fediverse.purgeNotes(new Date(now.getTime() - RETENTION.fediverseNoteDays * DAY)),
    webLinks: await store.webLinks.purge(),
    blueskyOAuth: await store.blueskyOAuth.prune().then(() => 0),
    writeBudgets: await store.writeBudgets.purge(new Date(now.getTime() - RETENTION.writeBudgetDays * DAY)),
  };
}

/** Runs maintenance hourly (at minute 17); `stop()` ends the schedule. */
export function scheduleMaintenance(store: Store, log: Logger, expression = "17 * * * *"): { stop(): Promise<void> } {
  const task = cron.schedule(
    expression,
    async () => {
      try {
        log.info({ deleted: await runMaintenance(store) }, "maintenance done");
      } catch (error) {
        log.warn({ err: error }, "maintenance failed; will retry at the next run");
      }
    },
    { name: "maintenance", noOverlap: true },
  );
  return { stop: async () => void (await task.destroy()) };
}
