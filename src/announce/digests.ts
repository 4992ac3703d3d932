/**
 * Arrival digests (DESIGN.md, Announcements): on the announcement schedule,
 * each person with notifications on gets at most one private message listing
 * the people they followed on X who have arrived since they were last told,
 * and how to follow them. Sent on one of the person's own accounts by the
 * bot of that platform (the first that delivers).
 *
 * Each arrival is told at most once: its match is claimed in the store before
 * the message goes (two replicas never both send it), and the arrival is
 * recorded as told, so an account unlinked and linked again is not news again
 * (src/store/arrivals.ts). The claim is given back when the message did not
 * go: no channel could take it, or an error came before it went (the store
 * failing while it was written). A crash after claiming loses one digest
 * rather than sending one twice.
 */
import type { Language } from "../config.ts";
import type { DigestPart, Locale } from "../conversation/i18n/index.ts";
import type { Logger } from "../logger.ts";
import { localeFor } from "../reconnect/locale.ts";
import type { Messenger } from "../reconnect/messenger.ts";
import type { Arrival } from "../store/arrivals.ts";
import type { Store } from "../store/index.ts";
import { TARGET_PLATFORMS, type Identity } from "../store/types.ts";

export interface DigestOptions {
  store: Store;
  messenger: Messenger;
  defaultLanguage: Language;
  log: Logger;
  /** People read per query (default 500). */
  batch?: number;
  /** Handles named per platform; the rest are counted (default 5). */
  namesPerPlatform?: number;
  now?: () => Date;
  /** The run's tick, shared by replicas run by the same schedule: only matches made up to it are told (default: now). */
  tick?: Date;
}

export interface DigestRun {
  /** People who were sent a digest. */
  sent: number;
  /** People with arrivals whom no channel could reach (told again next run). */
  undelivered: number;
  /** Untold matches of people who do not want digests, marked told. */
  skipped: number;
  /** People whose digest failed on an error (told next run). */
  failed: number;
}

/** Sends this run's digests; safe to run on several replicas at once. */
export async function sendArrivalDigests(options: DigestOptions): Promise<DigestRun> {
  const { store, batch = 500 } = options;
  // Without a tick, "up to now" includes this whole millisecond: PostgreSQL stamps matches to the
  // microsecond, a Date only to the millisecond, and a match made just before would be left out.
  const tick = options.tick ?? new Date((options.now ?? (() => new Date()))().getTime() + 1);
  const run: DigestRun = { sent: 0, undelivered: 0, skipped: await store.arrivals.skipUnwanted(), failed: 0 };
  let after = 0;
  for (;;) {
    const people = await store.arrivals.peopleWithUntold(after, batch, tick);
    if (people.length === 0) break;
    for (const personId of people) {
      after = personId;
      try {
        const outcome = await tellPerson(options, personId, tick);
        if (outcome === "sent") run.sent++;
        else if (outcome === "undelivered") run.undelivered++;
      } catch (error) {
        // One person's trouble (a lost connection mid-claim) does not stop the others.
        run.failed++;
        options.log.warn({ err: error, personId }, "announce: digest failed; told next run");
      }
    }
  }
  return run;
}

async function tellPerson(options: DigestOptions, personId: number, tick: Date): Promise<"sent" | "undelivered" | "nothing"> {
  const { store, messenger, log } = options;
  const stamp = (options.now ?? (() => new Date()))();
  const arrivals = await store.arrivals.claim(personId, stamp, tick);
  if (arrivals.length === 0) return "nothing";
  try {
    const locale = await localeFor(store, personId, options);
    const text = digestText(locale, arrivals, options.namesPerPlatform ?? 5);
    for (const to of channels(await store.identities.listForPerson(personId), arrivals)) {
      try {
        // Sent: told, whatever happens next.
        if (await messenger.send(to, text)) return "sent";
      } catch (error) {
        log.warn({ err: error, personId, platform: to.platform }, "announce: digest not delivered on this channel");
      }
    }
  } catch (error) {
    // Not sent: given back, so the next run tells them.
    await giveBack(options, personId, stamp, arrivals).catch(() => {});
    throw error;
  }
  await giveBack(options, personId, stamp, arrivals);
  return "undelivered";
}

/** Releases a claim whose digest did not go out; if even that fails, those arrivals are not told (never twice). */
async function giveBack(options: DigestOptions, personId: number, stamp: Date, arrivals: readonly Arrival[]): Promise<void> {
  try {
    await options.store.arrivals.release(personId, stamp, arrivals);
  } catch (error) {
    options.log.error({ err: error, personId }, "announce: a digest that did not go out could not be given back; those arrivals stay untold");
    throw error;
  }
}

/** The person's accounts a bot can write to, those on the platforms of the arrivals first. */
function channels(identities: readonly Identity[], arrivals: readonly Arrival[]): Identity[] {
  const wanted = new Set<string>(arrivals.map((a) => a.platform));
  return identities
    .filter((i) => i.platform !== "x" && i.stableId !== null && i.verifiedBy !== "archive")
    .sort((a, b) => Number(wanted.has(b.platform)) - Number(wanted.has(a.platform)) || a.id - b.id);
}

/** The digest in `locale`: per platform, the first handles and how many more. */
export function digestText(locale: Locale, arrivals: readonly Arrival[], namesPerPlatform: number): string {
  const parts: DigestPart[] = [];
  for (const platform of TARGET_PLATFORMS) {
    const here = arrivals.filter((a) => a.platform === platform);
    if (here.length === 0) continue;
    const handles = [...new Set(here.flatMap((a) => (a.handle ? [a.handle] : [])))].slice(0, namesPerPlatform);
    parts.push({ platform, handles, more: here.length - handles.length });
  }
  const total = new Set(arrivals.map((a) => a.targetPersonId)).size;
  return locale.a.digest({
    total,
    parts,
    reconnectCommand: locale.commands.reconnect.words[0]!,
    listCommand: locale.commands.list.words[0]!,
    notifyOffCommand: `${locale.commands.notify.words[0]} ${locale.keywords.off[0]}`,
  });
}
