/**
 * Public announcements (DESIGN.md, Announcements): on the announcement
 * schedule, each running bot posts how many people arrived on its platform
 * since its last post, naming only those who agreed to it (`announce_me`),
 * with a word on how to use the bot. Nothing about anyone's graph.
 *
 * Each window of time is claimed in the store before the post goes (one
 * replica posts it); a failed post gives its window up, so the next run
 * covers that time too. A platform whose bot is off opens no window: its
 * arrivals wait for it.
 *
 * Each run first takes back the posts that named someone forgotten since
 * (store: announcement_retraction), on the platform they were posted on.
 */
import type { Language } from "../config.ts";
import { findLocale, LOCALES, type Locale } from "../conversation/i18n/index.ts";
import { graphemeCount, REPLY_LIMITS } from "../conversation/privacy.ts";
import type { Logger } from "../logger.ts";
import { TARGET_PLATFORMS, type TargetPlatform } from "../store/types.ts";
import type { ArrivalTally } from "../store/announcements.ts";
import type { Store } from "../store/index.ts";

/** A person named in a post: their account on that platform. */
export interface NamedArrival {
  personId: number;
  stableId: string;
  handle: string;
}

/** Thrown by `retract` for a URI that is not the bot's own post: no retry can take it back. */
export class ForeignPostError extends Error {
  constructor(uri: string) {
    super(`not one of this bot's posts: ${uri}`);
    this.name = "ForeignPostError";
  }
}

/** A bot that can post publicly (as long as REPLY_LIMITS allows a public post there). */
export interface AnnouncementPoster {
  /** Posts `text` (mentioning `named`); returns the post's URI. */
  post(text: string, named: readonly NamedArrival[]): Promise<string>;
  /** Deletes the post at `uri`, one of its own (a post already gone is not an error). */
  retract(uri: string): Promise<void>;
}

export interface PublicAnnouncementOptions {
  store: Store;
  posters: Partial<Record<TargetPlatform, AnnouncementPoster>>;
  language: Language;
  log: Logger;
  /** People named at most in one post (default 5; fewer when the text would not fit). */
  maxNamed?: number;
  /**
   * Arrivals younger than this wait for the next window (default 15 min):
   * an import still running has written rows stamped with its start time
   * that are not visible yet.
   */
  settleMs?: number;
  now?: () => Date;
  /** The run's tick, shared by replicas run by the same schedule, so they open the same window (default: now). */
  tick?: Date;
}

export interface PublicAnnouncementRun {
  posted: number;
  /** Arrivals announced, over all platforms. */
  arrivals: number;
  /** Posts that failed (their arrivals go into the next one). */
  failed: number;
  /** Posts taken back (they named someone since forgotten), and those that could not be yet. */
  retracted: number;
  retractionsFailed: number;
}

/** The post for `count` arrivals, naming the first of `named` that fit the platform's public limit. */
function fit(locale: Locale, platform: TargetPlatform, count: number, named: readonly NamedArrival[]): { text: string; named: NamedArrival[] } {
  for (let n = named.length; n > 0; n--) {
    const text = locale.a.publicPost({ platform, count, named: named.slice(0, n).map((a) => a.handle) });
    if (graphemeCount(text) <= REPLY_LIMITS[platform].public) return { text, named: named.slice(0, n) };
  }
  return { text: locale.a.publicPost({ platform, count, named: [] }), named: [] };
}

export async function postPublicAnnouncements(options: PublicAnnouncementOptions): Promise<PublicAnnouncementRun> {
  const { store, log } = options;
  const locale = findLocale(options.language) ?? LOCALES.en!;
  const tick = options.tick ?? (options.now ?? (() => new Date()))();
  const until = new Date(tick.getTime() - (options.settleMs ?? 15 * 60_000));
  const run: PublicAnnouncementRun = { posted: 0, arrivals: 0, failed: 0, retracted: 0, retractionsFailed: 0 };
  for (const platform of TARGET_PLATFORMS) {
    const poster = options.posters[platform];
    if (!poster) continue;
    await retract(store, platform, poster, run, log);
    const window = await store.announcements.open(platform, until);
    if (!window) continue;
    let tally: ArrivalTally;
    try {
      tally = await store.announcements.tally(window, options.maxNamed ?? 5);
    } catch (error) {
      run.failed++;
      log.warn({ err: error, platform }, "announce: could not count arrivals; the next post covers them");
      await store.announcements.abandon(window).catch(() => {});
      continue;
    }
    if (tally.count === 0) {
      await store.announcements.posted(window, { count: 0, named: [] }, null).catch(() => {});
      continue;
    }
    const { text, named } = fit(locale, platform, tally.count, tally.named);
    let uri: string;
    try {
      uri = await poster.post(text, named);
    } catch (error) {
      // Not posted: the window goes back, and the next post covers it.
      run.failed++;
      log.warn({ err: error, platform }, "announce: public post failed; its arrivals go into the next one");
      await store.announcements.abandon(window).catch(() => {});
      continue;
    }
    // Posted: whatever happens now, the window stays taken (never posted twice).
    run.posted++;
    run.arrivals += tally.count;
    await store
      .transaction((s) => s.announcements.posted(window, { count: tally.count, named: named.map((n) => n.personId) }, uri))
      .catch((error: unknown) =>
        // Not recorded: whom it named is lost, so forgetting them cannot take it back.
        log.error({ err: error, platform, uri }, "announce: posted, but not recorded"),
      );
    // Someone it names may have been forgotten while it went out.
    await retract(store, platform, poster, run, log);
  }
  return run;
}

/** Deletes the posts of `platform` queued for retraction; one that fails waits for the next run. */
async function retract(store: Store, platform: TargetPlatform, poster: AnnouncementPoster, run: PublicAnnouncementRun, log: Logger): Promise<void> {
  const failed = new Set<string>();
  for (;;) {
    const uri = await store.announcements.claimRetraction(platform).catch(() => undefined);
    if (uri === undefined || failed.has(uri)) return;
    try {
      await poster.retract(uri);
      await store.announcements.retracted(platform, uri);
      run.retracted++;
      log.info({ platform, uri }, "announce: post taken back (it named someone since forgotten)");
    } catch (error) {
      if (error instanceof ForeignPostError) {
        // Posted by another account or under another address: dropped, once, loudly.
        log.error({ platform, uri }, "announce: a post to take back is not this bot's; dropped");
        await store.announcements.retracted(platform, uri).catch(() => {});
        continue;
      }
      // Left claimed: a run after the claim's lease tries again.
      failed.add(uri);
      run.retractionsFailed++;
      log.warn({ err: error, platform, uri }, "announce: could not take a post back; a later run tries again");
    }
  }
}
