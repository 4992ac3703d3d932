/**
 * The announcement schedule: arrival digests at `ANNOUNCE_CRON` (node-cron,
 * no overlapping runs in one process; replicas are kept apart by the
 * store's claims, see digests.ts).
 */
import cron from "node-cron";
import type { Logger } from "../logger.ts";
import { sendArrivalDigests, type DigestOptions } from "./digests.ts";

export function scheduleAnnouncements(expression: string, options: DigestOptions): { stop(): Promise<void> } {
  const log: Logger = options.log;
  const task = cron.schedule(
    expression,
    async () => {
      try {
        log.info({ digests: await sendArrivalDigests(options) }, "announce: digests done");
      } catch (error) {
        log.warn({ err: error }, "announce: digests failed; the next run takes up what is left");
      }
    },
    { name: "announcements", noOverlap: true },
  );
  return { stop: async () => void (await task.destroy()) };
}
