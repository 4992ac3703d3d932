/**
 * The announcement schedule: at `ANNOUNCE_CRON`, arrival digests (private),
 * then each running bot's public post (node-cron, no overlapping runs in one
 * process; replicas are kept apart by the store's claims).
 */
import cron from "node-cron";
import { sendArrivalDigests, type DigestOptions } from "./digests.ts";
import { postPublicAnnouncements, type AnnouncementPoster } from "./public.ts";
import type { TargetPlatform } from "../store/types.ts";

export interface AnnouncementOptions extends DigestOptions {
  /** The bots that post publicly, by platform (a bot that is off is left out). */
  posters: () => Partial<Record<TargetPlatform, AnnouncementPoster>>;
}

/** One announcement run: digests, then public posts. */
export async function announce(options: AnnouncementOptions) {
  // The tick, to the minute: replicas woken by the same schedule agree on it,
  // so they claim the same matches and open the same windows.
  const now = (options.now ?? (() => new Date()))();
  const tick = options.tick ?? new Date(Math.floor(now.getTime() / 60_000) * 60_000);
  const digests = await sendArrivalDigests({ ...options, tick }).catch((error: unknown) => {
    options.log.warn({ err: error }, "announce: digests failed; the next run takes up what is left");
    return undefined;
  });
  const posts = await postPublicAnnouncements({
    store: options.store,
    posters: options.posters(),
    language: options.defaultLanguage,
    log: options.log,
    tick,
  });
  return { digests, posts };
}

export function scheduleAnnouncements(expression: string, options: AnnouncementOptions): { stop(): Promise<void> } {
  const { log } = options;
  const task = cron.schedule(
    expression,
    async () => {
      try {
        log.info(await announce(options), "announce: done");
      } catch (error) {
        log.warn({ err: error }, "announce: failed; the next run takes up what is left");
      }
    },
    { name: "announcements", noOverlap: true },
  );
  return { stop: async () => void (await task.destroy()) };
}
