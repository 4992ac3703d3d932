/**
 * What the reconnection tells a person by DM, outside any conversation:
 * their account is authorized, a job is paused for authorization, progress
 * (at most one message per interval), and one summary. Messages go to the
 * account the request came from, else to any account the bots can reach.
 */
import type { Config } from "../config.ts";
import type { Locale } from "../conversation/i18n/index.ts";
import type { Logger } from "../logger.ts";
import type { Identity, JobCounts, ReconnectJob, Store, TargetPlatform } from "../store/index.ts";
import { localeFor } from "./locale.ts";
import type { Messenger } from "./messenger.ts";

/** Tries of a summary that is not delivered (one a rescan, every minute): about ten minutes, past a restart. */
const SUMMARY_TRIES = 10;

type JobRef = Pick<ReconnectJob, "id" | "personId" | "platform" | "notifyIdentityId">;

export class Reports {
  private readonly store: Store;
  private readonly config: Config;
  private readonly messenger: Messenger;
  private readonly log: Logger;

  constructor(options: { store: Store; config: Config; messenger: Messenger; log: Logger }) {
    this.store = options.store;
    this.config = options.config;
    this.messenger = options.messenger;
    this.log = options.log;
  }

  /** The account is authorized; `started`: a reconnection starts now. */
  async authorized(personId: number, platform: TargetPlatform, notifyIdentityId: number | null, started: boolean): Promise<void> {
    await this.tell(personId, notifyIdentityId, (l) => l.r.authorized(platform, started));
  }

  /** The job waits for an authorization: here is where to give it. */
  async authorizationNeeded(job: JobRef, connectUrl: string): Promise<void> {
    await this.tell(job.personId, job.notifyIdentityId, (l) => l.r.authorizationExpired(job.platform, connectUrl));
  }

  /** A progress message, if none was sent for `minSeconds` (claimed in the database, so once across workers). */
  async progress(job: JobRef, minSeconds: number): Promise<void> {
    if (!(await this.store.reconnectJobs.claimProgress(job.id, minSeconds))) return;
    const counts = await this.store.reconnectJobs.counts(job.id);
    if (counts.todo === 0) return; // the summary says it all
    await this.tell(job.personId, job.notifyIdentityId, (l) => l.r.progress(job.platform, counts));
  }

  /**
   * The final summary, once per job however many workers finish it. One
   * not delivered (the bot not logged in yet after a restart, a server that
   * did not answer) is left for the rescan to try again, a few times.
   */
  async summary(job: JobRef, counts: JobCounts): Promise<void> {
    if (!(await this.store.reconnectJobs.claimSummary(job.id))) return;
    const delivered = await this.tell(job.personId, job.notifyIdentityId, (l) => l.r.summary(job.platform, counts, listFailedCommand(l, job.platform)));
    if (!delivered && (await this.store.reconnectJobs.releaseSummary(job.id, SUMMARY_TRIES))) {
      this.log.info({ job: job.id }, "reconnect: the summary will be tried again");
    }
  }

  /** Tells the person; false when a DM could not be delivered (true when nobody can be told: nothing to retry). */
  private async tell(personId: number, identityId: number | null, text: (locale: Locale) => string): Promise<boolean> {
    const to = await this.recipient(personId, identityId);
    if (!to) return true;
    const message = text(await localeFor(this.store, personId, this.config));
    try {
      if (await this.messenger.send(to, message)) return true;
      this.log.info({ identity: to.id }, "reconnect: DM not delivered");
    } catch (error) {
      this.log.warn({ err: error instanceof Error ? error.message : String(error), identity: to.id }, "reconnect: DM failed");
    }
    return false;
  }

  /** The account the request came from, else one the bots can write to. */
  private async recipient(personId: number, identityId: number | null): Promise<Identity | undefined> {
    const identities = await this.store.identities.listForPerson(personId);
    return (
      identities.find((i) => i.id === identityId && i.platform !== "x") ??
      identities.find((i) => i.platform !== "x" && i.stableId && i.verifiedBy !== "archive")
    );
  }
}

/** `list failed mastodon`, in the person's words. */
export function listFailedCommand(locale: Locale, platform: TargetPlatform): string {
  return `${locale.commands.list.words[0]} ${locale.keywords.failed[0]} ${locale.keywords[platform][0]}`;
}
