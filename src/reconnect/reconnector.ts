/**
 * Reconnection jobs on PostgreSQL: requests become `reconnect_job` rows and
 * pg-boss jobs; workers run one writer per job, record every outcome as it
 * is known, wait out budgets and rate limits by re-queueing themselves, and
 * end with one summary DM.
 *
 *   const reconnector = new Reconnector({ store, databaseUrl, config, log, writers, messenger });
 *   await reconnector.start();           // workers on; `{ work: false }` only enqueues
 *   await reconnector.request({ … });    // from the `reconnect` command
 *   await reconnector.stop();
 *
 * Exactly once: a session advisory lock on the account the job follows from,
 * held for the whole run on its own connection, keeps two runs (of one job,
 * or of a cancelled job still finishing its last write and its successor)
 * off one account — a killed process's lock goes with its connection, so a
 * restart resumes at once; pg-boss's
 * `short` policy keeps at most one queued run per job; writers' markers (see
 * types.ts) recognise the follows a killed run already made.
 */
import { PgBoss } from "pg-boss";
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import type { Sql } from "../store/database.ts";
import type { Identity, ReconnectJob, Store, TargetPlatform } from "../store/index.ts";
import { ReconnectJobs, type JobRequest } from "../store/reconnect-jobs.ts";
import type { Messenger } from "./messenger.ts";
import { Reports } from "./reports.ts";
import { drainRevocations, type GrantRevoker } from "./revocations.ts";
import { AuthorizationExpiredError, RateLimitedError, type FollowWriter, type TargetResult } from "./types.ts";

const QUEUE = "reconnect";
/** Distinguishes our advisory locks from other users of pg_advisory_lock: runs on an account (identity id), runs of a job with no account. */
export const ACCOUNT_LOCK = 0x72656361; // "reca"
const JOB_LOCK = 0x7265636f; // "reco"
/** When another job holds the account (a cancelled one finishing its last write), try again after this long. */
const ACCOUNT_BUSY_RETRY_MS = 5_000;

/** Builds the writer that follows from a person's account, from its stored authorization. */
export type WriterFactory = (input: {
  platform: TargetPlatform;
  identity: Identity;
  store: Store;
}) => Promise<FollowWriter | undefined>;

export interface ReconnectorOptions {
  store: Store;
  /** The pool the store uses: advisory locks are taken on one of its connections. */
  sql: Sql;
  /** pg-boss connects on its own (it uses node-postgres). */
  databaseUrl: string;
  config: Config;
  log: Logger;
  writers: WriterFactory;
  messenger: Messenger;
  /** Run workers (default true); false only enqueues (the terminal chat). */
  work?: boolean;
  /** Jobs run at once in this process (default 2). */
  concurrency?: number;
  /** At most one progress DM per this many seconds (default 300). */
  progressSeconds?: number;
  /** How often a running job checks whether it was cancelled (`stop`), ms (default 1,000). */
  cancelCheckMs?: number;
  /** pg-boss: a worker silent this long is presumed dead and its job retried (default 30, minimum 10). */
  heartbeatSeconds?: number;
  /** pg-boss's monitor pass, which notices dead workers (default 60). */
  monitorSeconds?: number;
  /** How long one-time connect and export links work (default 24 h). */
  linkTtlSeconds?: number;
  /** How often people with automatic reconnection are checked for new matches (default 10 min; 0: never). */
  autoSweepSeconds?: number;
  /** First pause before a run that failed unexpectedly is tried again; doubles up to an hour (default 30 s). */
  retryDelaySeconds?: number;
  /** Runs in a row that may end in an unexpected error before the job gives up its remaining targets (default 10). */
  maxFailures?: number;
  /** How often unfinished jobs are queued again, in case a wake-up was lost (a stopped replica, a dropped send; default 60 s). */
  rescanSeconds?: number;
  /**
   * Revokes a grant at its server: those the person gives up (`forget`,
   * `unlink`) at once, and the outbox's (a Move, a registry replacement,
   * a failed attempt) at each rescan. Absent (a reconnector that only
   * queues): grants wait in the outbox for the service.
   */
  revokeGrant?: GrantRevoker;
}

export type RequestResult =
  | { status: "queued"; job: ReconnectJob; added: number; total: number }
  | { status: "needs_authorization"; job: ReconnectJob; added: number; total: number; connectUrl: string; exportUrl: string | null }
  | { status: "nothing" }
  | { status: "no_identity" };

export class Reconnector {
  private readonly o: ReconnectorOptions;
  private readonly boss: PgBoss;
  private readonly reports: Reports;
  private readonly abort = new AbortController();
  private sweepTimer: NodeJS.Timeout | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private draining: Promise<unknown> | undefined;
  private started = false;

  constructor(options: ReconnectorOptions) {
    this.o = options;
    this.reports = new Reports({ store: options.store, config: options.config, messenger: options.messenger, log: options.log });
    const monitor = options.monitorSeconds ?? 60;
    this.boss = new PgBoss({
      connectionString: options.databaseUrl,
      schema: "pgboss",
      max: 4,
      supervise: options.work !== false,
      schedule: false,
      monitorIntervalSeconds: monitor,
      superviseIntervalSeconds: monitor,
    });
    // Its errors carry the whole pg client: the message is what helps.
    this.boss.on("error", (error: unknown) => options.log.warn({ err: describe(error) }, "reconnect: job queue error"));
  }

  /**
   * A reconnector that only queues requests for the service's workers (the
   * terminal chat, tests of the commands): it runs no job, sends no DM.
   */
  static enqueueOnly(options: Pick<ReconnectorOptions, "store" | "sql" | "databaseUrl" | "config" | "log">): Reconnector {
    return new Reconnector({ ...options, writers: async () => undefined, messenger: { send: async () => false }, work: false });
  }

  private get store(): Store {
    return this.o.store;
  }

  async start(): Promise<void> {
    await this.boss.start();
    await this.boss.createQueue(QUEUE, {
      policy: "short",
      retryLimit: 20,
      retryDelay: this.o.retryDelaySeconds ?? 30,
      retryBackoff: true,
      retryDelayMax: 3600,
      expireInSeconds: 6 * 3600,
      heartbeatSeconds: Math.max(10, this.o.heartbeatSeconds ?? 30),
    });
    this.started = true;
    if (this.o.work === false) return;
    await this.boss.work<{ jobId: number }>(
      QUEUE,
      { localConcurrency: this.o.concurrency ?? 2, pollingIntervalSeconds: 2 },
      async ([job]) => {
        if (job) await this.process(job.data.jobId);
      },
    );
    // Jobs left by a stopped or killed process, and waits that are over; again
    // every minute, so that no wake-up lost anywhere leaves a job asleep.
    await this.rescan();
    const rescan = this.o.rescanSeconds ?? 60;
    if (rescan > 0) {
      this.rescanTimer = setInterval(() => void this.rescan().catch((e: unknown) => this.o.log.warn({ err: e }, "reconnect: rescan failed")), rescan * 1000);
      this.rescanTimer.unref();
    }
    const sweep = this.o.autoSweepSeconds ?? 600;
    if (sweep > 0) {
      this.sweepTimer = setInterval(() => void this.sweepAuto().catch((e: unknown) => this.o.log.warn({ err: e }, "reconnect: auto sweep failed")), sweep * 1000);
      this.sweepTimer.unref();
    }
  }

  async stop(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    this.abort.abort();
    await this.draining;
    if (this.started) await this.boss.stop({ graceful: true, timeout: 10_000, close: true });
    this.started = false;
  }

  /**
   * A person asks to follow targets on a platform: opens (or joins) their
   * job, and queues it when an authorization is stored, else answers with a
   * one-time connect link (and, for Mastodon, an export link).
   */
  async request(input: {
    personId: number;
    platform: TargetPlatform;
    request: JobRequest;
    /** Target person ids (from `selectTargets`, or named matches). */
    targets: readonly number[];
    /** Whose DM channel gets progress and summary. */
    notifyIdentityId: number | null;
  }): Promise<RequestResult> {
    const identity = await this.identityFor(input.personId, input.platform);
    if (!identity) return { status: "no_identity" };
    if (input.targets.length === 0) return { status: "nothing" };
    const authorized = (await this.store.authorizations.get(identity.id).catch(() => undefined)) !== undefined;
    const { job, added } = await this.store.transaction(async (s) => {
      const opened = await s.reconnectJobs.open(input.personId, input.platform, input.request, input.targets, input.notifyIdentityId);
      if (!authorized) await s.reconnectJobs.setState(opened.job.id, "needs_authorization");
      else if (opened.job.state === "needs_authorization" || opened.job.state === "done") await s.reconnectJobs.setState(opened.job.id, "queued");
      return opened;
    });
    const total = (await this.store.reconnectJobs.counts(job.id)).todo;
    if (!authorized) {
      return {
        status: "needs_authorization",
        job,
        added,
        total,
        connectUrl: await this.connectLink(input.personId, identity.id),
        exportUrl: input.platform === "fediverse" ? await this.exportLink(input.personId, identity.id) : null,
      };
    }
    if (job.state !== "running") await this.enqueue(job.id, job.state === "waiting" ? job.waitUntil : null);
    return { status: "queued", job, added, total };
  }

  /** A one-time link to the page where the person authorizes `identityId`. */
  async connectLink(personId: number, identityId: number): Promise<string> {
    const token = await this.store.webLinks.create("connect", personId, identityId, this.o.linkTtlSeconds ?? 86_400);
    return new URL(`/connect/${token}`, this.o.config.publicUrl).href;
  }

  /** A one-time link to the person's `following_accounts.csv` (Mastodon's import format). */
  async exportLink(personId: number, identityId: number): Promise<string> {
    const token = await this.store.webLinks.create("export", personId, identityId, this.o.linkTtlSeconds ?? 86_400);
    return new URL(`/export/${token}/following_accounts.csv`, this.o.config.publicUrl).href;
  }

  /**
   * Called once an authorization is stored (web callback): tells the person
   * in their DM channel and resumes the jobs that waited for it.
   */
  async authorized(personId: number, platform: TargetPlatform): Promise<number> {
    const jobs = await this.store.reconnectJobs.awaitingAuthorization(personId, platform);
    for (const job of jobs) {
      await this.store.reconnectJobs.setState(job.id, "queued");
      await this.enqueue(job.id, null);
    }
    const identity = await this.identityFor(personId, platform);
    let started = jobs.length;
    // Automatic reconnection was waiting for this authorization too.
    if (started === 0 && identity && (await this.store.people.get(personId))?.autoReconnect) {
      const targets = await this.store.reconnectJobs.selectTargets(personId, platform);
      const result = await this.request({ personId, platform, request: "all", targets, notifyIdentityId: identity.id });
      if (result.status === "queued") started++;
    }
    await this.reports.authorized(personId, platform, jobs[0]?.notifyIdentityId ?? identity?.id ?? null, started > 0);
    return started;
  }

  /**
   * Revokes what these identities of the person authorized, at each server,
   * before they are forgotten or unlinked. The grants leave the identities
   * first (to the revocation outbox), so a server that does not answer now
   * is tried again later, after the identities are gone.
   */
  async revokeAuthorizations(personId: number, identityIds: readonly number[]): Promise<void> {
    const mine = (await this.store.identities.listForPerson(personId)).filter((i) => identityIds.includes(i.id)).map((i) => i.id);
    const queued = await this.store.revocations.retire(mine);
    if (queued.length > 0 && this.o.revokeGrant) await drainRevocations(this.store.revocations, this.o.revokeGrant, this.o.log, { only: queued });
  }

  /**
   * Queues a run of every unfinished job (a running one's extra run finds its
   * lock taken and ends), and sends the summaries of jobs whose process died
   * between finishing them and telling the person (claimed: sent once).
   */
  private async rescan(): Promise<void> {
    const jobs = this.store.reconnectJobs;
    for (const job of await jobs.unfinished()) await this.enqueue(job.id, job.waitUntil);
    for (const job of await jobs.unreported()) await this.reports.summary(job, await jobs.counts(job.id));
    this.drainRevocations();
  }

  /** Revokes retired grants in the background: a server that does not answer holds up nothing else. */
  private drainRevocations(): void {
    const revoke = this.o.revokeGrant;
    if (!revoke || this.draining) return;
    this.draining = drainRevocations(this.store.revocations, revoke, this.o.log)
      .catch((e: unknown) => this.o.log.warn({ err: describe(e) }, "reconnect: revocations failed"))
      .finally(() => (this.draining = undefined));
  }

  /** Queues a run of a job (at most one queued per job: pg-boss's short policy). */
  private async enqueue(jobId: number, startAfter: Date | null): Promise<void> {
    await this.boss.send(QUEUE, { jobId }, {
      singletonKey: `job-${jobId}`,
      ...(startAfter && startAfter > new Date() ? { startAfter } : {}),
    });
  }

  /**
   * One run of a job, under the advisory lock of the account it follows from.
   * The lock lives with one reserved connection; markers are written through
   * that same connection, so a run whose connection (and lock) died can
   * write nothing more.
   */
  private async process(jobId: number): Promise<void> {
    const job = await this.store.reconnectJobs.get(jobId);
    if (!job) return;
    const identity = await this.identityFor(job.personId, job.platform);
    const [lockClass, key] = identity ? [ACCOUNT_LOCK, identity.id] : [JOB_LOCK, jobId];
    const reserved = await this.o.sql.reserve();
    try {
      const [{ locked } = { locked: false }] = await reserved<{ locked: boolean }[]>`
        select pg_try_advisory_lock(${lockClass}, ${key}) as locked`;
      if (!locked) {
        // Held by this job's own run (it is running: that run finishes it), or by
        // another job on the account, e.g. a cancelled one whose last write is in flight.
        const now = await this.store.reconnectJobs.get(jobId);
        if (now?.state === "queued" || now?.state === "waiting") {
          const soon = Date.now() + ACCOUNT_BUSY_RETRY_MS;
          await this.enqueue(jobId, new Date(Math.max(soon, now.waitUntil?.getTime() ?? 0)));
        }
        return;
      }
      try {
        await this.runLocked(jobId, identity, new ReconnectJobs(reserved), { lockClass, key });
      } finally {
        await reserved`select pg_advisory_unlock(${lockClass}, ${key})`;
      }
    } finally {
      reserved.release();
    }
  }

  /** `identity`: the account the job follows from (its lock is held), if it has one. */
  private async runLocked(jobId: number, identity: Identity | undefined, locked: ReconnectJobs, fence: { lockClass: number; key: number }): Promise<void> {
    const jobs = this.store.reconnectJobs;
    const job = await jobs.get(jobId);
    if (!job || job.state === "done" || job.state === "cancelled" || job.state === "needs_authorization") return;
    if (job.state === "waiting" && job.waitUntil && job.waitUntil > new Date()) {
      await this.enqueue(job.id, job.waitUntil);
      return;
    }
    const log = this.o.log.child({ job: job.id, platform: job.platform });
    // Which grant this run acts with: a dead one is removed only if no newer came meanwhile.
    const grant = identity && (await this.store.authorizations.grant(identity.id));
    let writer: FollowWriter | undefined;
    try {
      writer = identity && (await this.o.writers({ platform: job.platform, identity, store: this.store }));
    } catch (error) {
      if (error instanceof AuthorizationExpiredError) await this.authorizationExpired(job, identity!, grant);
      // No session yet (a PDS or instance that does not answer): counted like a failed run.
      else if (!(await this.failedRun(job, error, log))) await this.finish(job, log);
      return;
    }
    if (!identity || !writer) {
      await this.pauseForAuthorization(job, identity);
      return;
    }
    if (!(await jobs.setState(job.id, "running"))) return; // cancelled meanwhile
    const todo = await jobs.todo(job.id);
    const inFlight = new Map(todo.filter((t) => t.marker).map((t) => [t.personId, t.marker!]));
    // `stop` cancels the job from any process: watched here, it aborts the run
    // between requests (a write already sent may still land).
    const cancelled = new AbortController();
    const watch = setInterval(() => {
      jobs.get(job.id).then((j) => (!j || j.state === "cancelled") && cancelled.abort(), () => {});
    }, this.o.cancelCheckMs ?? 1_000);
    watch.unref();
    try {
      await writer.run({
        targets: todo.map(({ personId, stableId, handle }) => ({ personId, stableId, handle })),
        inFlight,
        markInFlight: async (entries) => {
          // Fewer rows than entries: the person was forgotten, the job cancelled, or this run lost its lock meanwhile. Stop before writing.
          if ((await locked.markInFlight(job.id, entries, fence)) < entries.length) throw new JobGoneError();
        },
        record: async (results: readonly TargetResult[]) => {
          await this.store.transaction((s) => s.reconnectJobs.record(job, results));
          await this.reports.progress(job, this.o.progressSeconds ?? 300);
        },
        signal: AbortSignal.any([this.abort.signal, cancelled.signal]),
      });
    } catch (error) {
      if (cancelled.signal.aborted && !this.abort.signal.aborted) {
        log.info("reconnect: the job was cancelled; stopping");
        return;
      }
      if (error instanceof RateLimitedError) {
        log.info({ until: error.until.toISOString() }, "reconnect: waiting for the rate limit");
        await jobs.setState(job.id, "waiting", { waitUntil: error.until, reason: "rate_limited" });
        await this.enqueue(job.id, error.until);
        return;
      }
      if (error instanceof AuthorizationExpiredError) {
        log.info("reconnect: authorization expired");
        await this.authorizationExpired(job, identity, grant);
        return;
      }
      if (error instanceof JobGoneError) {
        log.info("reconnect: the job or its person is gone; stopping");
        return;
      }
      if (this.abort.signal.aborted) {
        // Stopping: another worker (or this one at its next start) resumes it.
        await jobs.setState(job.id, "queued", { reason: "stopped" });
        return;
      }
      if (await this.failedRun(job, error, log)) return;
    } finally {
      clearInterval(watch);
    }
    await this.finish(job, log);
  }

  /**
   * A run that failed unexpectedly: tried again later, with a growing pause
   * (true), or — after `maxFailures` in a row — its remaining targets
   * recorded as given up (false: the job is to be finished).
   */
  private async failedRun(job: ReconnectJob, error: unknown, log: Logger): Promise<boolean> {
    const jobs = this.store.reconnectJobs;
    // The wait is the job's own (state `waiting`), so the rescan, which re-queues
    // unfinished jobs, respects it: a queue-level retry delay would not be.
    const base = this.o.retryDelaySeconds ?? 30;
    const { failures, waitUntil } = await jobs.countFailure(job.id, describe(error), (n) => Math.min(3600, base * 2 ** (n - 1)));
    if (failures < (this.o.maxFailures ?? 10)) {
      log.warn({ err: describe(error), failures, until: waitUntil.toISOString() }, "reconnect: the run failed; trying again later");
      await this.enqueue(job.id, waitUntil);
      return true;
    }
    log.error({ err: describe(error), failures }, "reconnect: giving up on the job's remaining targets");
    const rest = await jobs.todo(job.id);
    await this.store.transaction((s) =>
      s.reconnectJobs.record(job, rest.map((t) => ({ personId: t.personId, outcome: "failed" as const, reason: "gave_up" }))),
    );
    return false;
  }

  /** After a run: the job done (and its summary sent), or queued again for what is left. */
  private async finish(job: ReconnectJob, log: Logger): Promise<void> {
    if (this.abort.signal.aborted) return;
    // Finish under the job's row lock: a request joining the job meanwhile either
    // committed its targets (then they are counted) or waits and opens a new job.
    const counts = await this.store.transaction(async (s) => {
      // Cancelled meanwhile (`stop`): it stays so, and says nothing more.
      if ((await s.reconnectJobs.lock(job.id))?.state === "cancelled") return undefined;
      const c = await s.reconnectJobs.counts(job.id);
      await s.reconnectJobs.setState(job.id, c.todo > 0 ? "queued" : "done");
      return c;
    });
    if (!counts) return;
    if (counts.todo > 0) {
      await this.enqueue(job.id, null);
      return;
    }
    log.info({ counts }, "reconnect: job done");
    await this.reports.summary(job, counts);
  }

  /**
   * The server refused `grant`: removed, and the job waits
   * for the person — unless they granted again meanwhile (the connect page
   * found this job running and left it): then it runs again with the new grant.
   */
  private async authorizationExpired(job: ReconnectJob, identity: Identity, grant: string | undefined): Promise<void> {
    if (grant) await this.store.authorizations.deleteGrant(identity.id, grant);
    await this.pauseForAuthorization(job, identity, { unlessGranted: true });
  }

  /**
   * Waits for the person to authorize, and asks them; with `unlessGranted`,
   * an authorization there already (given while this run held the job) runs it again instead.
   */
  private async pauseForAuthorization(job: ReconnectJob, identity: Identity | undefined, options: { unlessGranted?: boolean } = {}): Promise<void> {
    if (!(await this.store.reconnectJobs.setState(job.id, "needs_authorization"))) return; // cancelled
    if (options.unlessGranted && identity && (await this.store.authorizations.grant(identity.id))) {
      if (await this.store.reconnectJobs.setState(job.id, "queued")) await this.enqueue(job.id, null);
      return;
    }
    if (identity) await this.reports.authorizationNeeded(job, await this.connectLink(job.personId, identity.id));
  }

  /** People with automatic reconnection get their new matches followed. */
  async sweepAuto(): Promise<number> {
    let queued = 0;
    for (const c of await this.store.reconnectJobs.autoCandidates()) {
      const targets = await this.store.reconnectJobs.selectTargets(c.personId, c.platform);
      const result = await this.request({ personId: c.personId, platform: c.platform, request: "all", targets, notifyIdentityId: c.identityId });
      if (result.status === "queued") queued++;
    }
    return queued;
  }

  /** The person's account on `platform` (the one reconnection acts on). */
  private async identityFor(personId: number, platform: TargetPlatform): Promise<Identity | undefined> {
    const identities = await this.store.identities.listForPerson(personId);
    return identities.find((i) => i.platform === platform && i.stableId && i.verifiedBy !== "archive");
  }
}

/** The job's rows went away during a run (the person forgot everything, the job was cancelled). */
class JobGoneError extends Error {}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}`.slice(0, 200) : String(error).slice(0, 200);
}
