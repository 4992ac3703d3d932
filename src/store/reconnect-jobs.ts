/**
 * Reconnection jobs and their targets' outcomes. A job is one (person,
 * platform) request; a new request while one is open joins it. Every
 * outcome is written here, with the match it settles, in one transaction.
 */
import type { MatchState, Queryable, TargetPlatform } from "./types.ts";

export type JobState = "queued" | "running" | "waiting" | "needs_authorization" | "done" | "cancelled";
export type JobRequest = "all" | "first" | "named";
/**
 * What happened to one account a person asked to follow: `followed` (by us),
 * `requested` (a locked account, awaiting its owner), `already_following`
 * (before we came), `not_found`, `gone` (deleted, suspended), `blocked`
 * (either way), `failed` (with a reason).
 */
export type TargetOutcome = "followed" | "requested" | "already_following" | "not_found" | "gone" | "blocked" | "failed";
export const TARGET_OUTCOMES: readonly TargetOutcome[] = ["followed", "requested", "already_following", "not_found", "gone", "blocked", "failed"];
const OUTCOMES = TARGET_OUTCOMES;

export interface ReconnectJob {
  id: number;
  personId: number;
  platform: TargetPlatform;
  state: JobState;
  request: JobRequest;
  notifyIdentityId: number | null;
  reason: string | null;
  waitUntil: Date | null;
  attempts: number;
  progressSentAt: Date | null;
  summarySentAt: Date | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
}

/** Targets per outcome, plus `todo` (no outcome yet) and `total`. */
export type JobCounts = Record<TargetOutcome, number> & { todo: number; total: number };

export interface JobTarget {
  personId: number;
  stableId: string | null;
  handle: string | null;
  marker: string | null;
}

export interface RecordedOutcome {
  personId: number;
  outcome: TargetOutcome;
  reason?: string | null | undefined;
}

interface JobRow {
  id: number;
  person_id: number;
  platform: TargetPlatform;
  state: JobState;
  request: JobRequest;
  notify_identity_id: number | null;
  reason: string | null;
  wait_until: Date | null;
  attempts: number;
  progress_sent_at: Date | null;
  summary_sent_at: Date | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
}

const toJob = (r: JobRow): ReconnectJob => ({
  id: r.id,
  personId: r.person_id,
  platform: r.platform,
  state: r.state,
  request: r.request,
  notifyIdentityId: r.notify_identity_id,
  reason: r.reason,
  waitUntil: r.wait_until,
  attempts: r.attempts,
  progressSentAt: r.progress_sent_at,
  summarySentAt: r.summary_sent_at,
  createdAt: r.created_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

/** The match state an outcome settles. */
export function matchStateFor(outcome: TargetOutcome): MatchState {
  if (outcome === "followed" || outcome === "requested") return "followed";
  if (outcome === "already_following") return "already_following";
  return "failed";
}

export class ReconnectJobs {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /**
   * The matches a request selects, in list order (most recent arrivals
   * first): those still to follow, and earlier failures, which are retried.
   */
  async selectTargets(personId: number, platform: TargetPlatform, limit: number | null = null): Promise<number[]> {
    const rows = await this.db<{ target_person_id: number }[]>`
      select target_person_id from match
      where person_id = ${personId} and platform = ${platform} and state in ('pending', 'failed')
      order by created_at desc, target_person_id
      limit ${limit ?? null}`;
    return rows.map((r) => r.target_person_id);
  }

  /**
   * Opens a job (or joins the open one) with these targets. Returns the job
   * and how many targets were new to it. Run inside a transaction.
   */
  async open(
    personId: number,
    platform: TargetPlatform,
    request: JobRequest,
    targetPersonIds: readonly number[],
    notifyIdentityId: number | null,
  ): Promise<{ job: ReconnectJob; added: number; created: boolean }> {
    // The people first, in id order, as `record` does: the inserts' foreign
    // keys would otherwise lock them in list order, crossing a merge of two
    // of them (src/store/lock-order.test.ts). Targets forgotten since they
    // were listed are left out.
    const present = await this.db<{ id: number }[]>`
      select id from person where id = any(${[personId, ...targetPersonIds]}::int[]) order by id for key share`;
    const here = new Set(present.map((p) => p.id));
    const targets = targetPersonIds.filter((id) => here.has(id));
    let row: JobRow | undefined;
    let created = false;
    // The open job may finish between the insert's conflict and the update: then insert again.
    for (let attempt = 0; !row && attempt < 5; attempt++) {
      const inserted = await this.db<JobRow[]>`
        insert into reconnect_job (person_id, platform, request, notify_identity_id)
        values (${personId}, ${platform}, ${request}, ${notifyIdentityId})
        on conflict (person_id, platform) where state not in ('done', 'cancelled') do nothing
        returning *`;
      row = inserted[0];
      created = row !== undefined;
      if (!row) {
        // Locks the open job's row: a worker finishing it waits, then sees the new targets.
        [row] = await this.db<JobRow[]>`
          update reconnect_job set
            notify_identity_id = coalesce(${notifyIdentityId}, notify_identity_id),
            request = case when request = ${request} then request when 'all' in (request, ${request}) then 'all' else 'named' end,
            summary_sent_at = null, updated_at = now()
          where person_id = ${personId} and platform = ${platform} and state not in ('done', 'cancelled')
          returning *`;
      }
    }
    if (!row) throw new Error(`could not open a reconnection job for person ${personId} on ${platform}`);
    const job = toJob(row);
    const result = await this.db`
      insert into reconnect_target (job_id, target_person_id, position)
      select ${job.id}, t.id, coalesce((select max(position) from reconnect_target where job_id = ${job.id}), 0) + t.n
      from unnest(${targets}::int[]) with ordinality as t(id, n)
      on conflict do nothing`;
    return { job, added: result.count, created };
  }

  /** Locks the job's row until the end of the current transaction (finishing vs joining). */
  async lock(id: number): Promise<ReconnectJob | undefined> {
    const [row] = await this.db<JobRow[]>`select * from reconnect_job where id = ${id} for update`;
    return row && toJob(row);
  }

  /**
   * Counts an unexpected failure of a run and makes the job wait
   * `delaySeconds(failures)` before the next: returns how many in a row, and until when.
   */
  async countFailure(id: number, reason: string, delaySeconds: (failures: number) => number): Promise<{ failures: number; waitUntil: Date }> {
    const [row] = await this.db<{ failures: number }[]>`select failures + 1 as failures from reconnect_job where id = ${id}`;
    const failures = row?.failures ?? 1;
    const waitUntil = new Date(Date.now() + delaySeconds(failures) * 1000);
    // A cancelled job stays so.
    await this.db`
      update reconnect_job set failures = ${failures}, reason = ${reason.slice(0, 200)}, state = 'waiting', wait_until = ${waitUntil}, updated_at = now()
      where id = ${id} and state <> 'cancelled'`;
    return { failures, waitUntil };
  }

  async get(id: number): Promise<ReconnectJob | undefined> {
    const [row] = await this.db<JobRow[]>`select * from reconnect_job where id = ${id}`;
    return row && toJob(row);
  }

  /** The person's open job on a platform, if any. */
  async openFor(personId: number, platform: TargetPlatform): Promise<ReconnectJob | undefined> {
    const [row] = await this.db<JobRow[]>`
      select * from reconnect_job where person_id = ${personId} and platform = ${platform} and state not in ('done', 'cancelled')`;
    return row && toJob(row);
  }

  /** The person's open jobs and their latest finished one per platform (for `status`). */
  async recentFor(personId: number): Promise<ReconnectJob[]> {
    const rows = await this.db<JobRow[]>`
      select distinct on (platform) * from reconnect_job where person_id = ${personId}
      order by platform, (state in ('done', 'cancelled')), id desc`;
    return rows.map(toJob);
  }

  /** Jobs a worker should pick up (after a restart, or when their wait is over). */
  async unfinished(): Promise<ReconnectJob[]> {
    const rows = await this.db<JobRow[]>`
      select * from reconnect_job where state in ('queued', 'running', 'waiting') order by id`;
    return rows.map(toJob);
  }

  /** Jobs finished lately whose summary was never claimed (their process died in between). */
  async unreported(): Promise<ReconnectJob[]> {
    const rows = await this.db<JobRow[]>`
      select * from reconnect_job
      where state = 'done' and summary_sent_at is null and finished_at > now() - interval '1 day'
        and finished_at < now() - interval '5 seconds'
      order by id`;
    return rows.map(toJob);
  }

  /** The person's jobs paused for authorization on a platform. */
  async awaitingAuthorization(personId: number, platform: TargetPlatform): Promise<ReconnectJob[]> {
    const rows = await this.db<JobRow[]>`
      select * from reconnect_job
      where person_id = ${personId} and platform = ${platform} and state = 'needs_authorization'`;
    return rows.map(toJob);
  }

  /** Moves a job to `state`; false when it was cancelled (a cancelled job stays so). */
  async setState(id: number, state: JobState, options: { reason?: string | null; waitUntil?: Date | null } = {}): Promise<boolean> {
    const finished = state === "done" || state === "cancelled";
    const result = await this.db`
      update reconnect_job set
        state = ${state}, reason = ${options.reason ?? null}, wait_until = ${options.waitUntil ?? null},
        attempts = attempts + ${state === "running" ? 1 : 0},
        failures = case when ${state} = 'running' then failures else 0 end,
        started_at = case when ${state} = 'running' then coalesce(started_at, now()) else started_at end,
        finished_at = case when ${finished} then now() else null end,
        updated_at = now()
      where id = ${id} and state <> 'cancelled'`;
    return result.count > 0;
  }

  /** Targets without an outcome, in the order asked, with their identity on the job's platform. */
  async todo(jobId: number): Promise<JobTarget[]> {
    const rows = await this.db<{ target_person_id: number; stable_id: string | null; handle: string | null; marker: string | null }[]>`
      select t.target_person_id, i.stable_id, i.handle, t.marker
      from reconnect_target t
      join reconnect_job j on j.id = t.job_id
      left join lateral (
        select stable_id, handle from identity
        where person_id = t.target_person_id and platform = j.platform and verified_by <> 'archive'
        order by updated_at desc limit 1) i on true
      where t.job_id = ${jobId} and t.outcome is null
      order by t.position`;
    return rows.map((r) => ({ personId: r.target_person_id, stableId: r.stable_id, handle: r.handle, marker: r.marker }));
  }

  /**
   * Saves writers' markers before their network write. Returns how many
   * targets were marked: fewer than asked means the job or its targets are
   * gone — or, with `fence`, that this session no longer holds the run's
   * advisory lock (its connection died and was replaced: another worker
   * may be running the account now), and nothing is marked.
   */
  async markInFlight(
    jobId: number,
    entries: readonly { personId: number; marker: string }[],
    fence?: { lockClass: number; key: number },
  ): Promise<number> {
    if (entries.length === 0) return 0;
    const held = fence
      ? this.db`and exists (
          select 1 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid() and granted
            and classid = ${fence.lockClass}::oid and objid = ${fence.key}::oid and objsubid = 2)`
      : this.db``;
    const result = await this.db`
      update reconnect_target t set marker = e.marker
      from unnest(${entries.map((e) => e.personId)}::int[], ${entries.map((e) => e.marker)}::text[]) as e(person_id, marker)
      where t.job_id = ${jobId} and t.target_person_id = e.person_id and t.outcome is null ${held}`;
    return result.count;
  }

  /**
   * Records outcomes and settles the matches they concern. Run inside a
   * transaction: a target's outcome and its match change together.
   */
  async record(job: Pick<ReconnectJob, "id" | "personId" | "platform">, results: readonly RecordedOutcome[]): Promise<void> {
    if (results.length === 0) return;
    for (const r of results) if (!OUTCOMES.includes(r.outcome)) throw new Error(`unknown outcome ${r.outcome}`);
    const ids = results.map((r) => r.personId);
    const outcomes = results.map((r) => r.outcome);
    const reasons = results.map((r) => r.reason?.slice(0, 200) ?? null);
    const states = results.map((r) => matchStateFor(r.outcome));
    const matchReasons = results.map((r) =>
      r.outcome === "followed" || r.outcome === "already_following" ? null : r.reason ? `${r.outcome}: ${r.reason}`.slice(0, 200) : r.outcome,
    );
    // The people first, as a forget or a merge locks them before the rows
    // that name them; locking a target row and then its match would cross
    // a forget's cascade (src/store/lock-order.test.ts). In id order, as
    // a merge takes its two.
    await this.db`select 1 from person where id = any(${[job.personId, ...ids]}::int[]) order by id for key share`;
    // One statement: only targets recorded now (not before) settle their
    // match; and a run that got somewhere ends the count of failed runs in a
    // row (a long job meets scattered 5xx; only a run stuck on them gives up).
    await this.db`
      with e as (
        select * from unnest(${ids}::int[], ${outcomes}::text[], ${reasons}::text[], ${states as string[]}::text[], ${matchReasons}::text[])
          as e(person_id, outcome, reason, state, match_reason)),
      recorded as (
        update reconnect_target t set outcome = e.outcome, reason = e.reason, done_at = now()
        from e where t.job_id = ${job.id} and t.target_person_id = e.person_id and t.outcome is null
        returning t.target_person_id),
      progressed as (
        update reconnect_job set failures = 0
        where id = ${job.id} and failures <> 0 and exists (select 1 from recorded))
      update match m set state = e.state::match_state, reason = e.match_reason, updated_at = now()
      from e join recorded r on r.target_person_id = e.person_id
      where m.person_id = ${job.personId} and m.platform = ${job.platform} and m.target_person_id = e.person_id
        and m.state <> 'ignored'`;
  }

  async counts(jobId: number): Promise<JobCounts> {
    const rows = await this.db<{ outcome: TargetOutcome | null; n: number }[]>`
      select outcome, count(*)::int as n from reconnect_target where job_id = ${jobId} group by outcome`;
    const counts = Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as JobCounts;
    counts.todo = 0;
    counts.total = 0;
    for (const r of rows) {
      if (r.outcome) counts[r.outcome] = r.n;
      else counts.todo = r.n;
      counts.total += r.n;
    }
    return counts;
  }

  /** Claims the right to send a progress message (at most one per `minSeconds`); true when granted. */
  async claimProgress(jobId: number, minSeconds: number): Promise<boolean> {
    const result = await this.db`
      update reconnect_job set progress_sent_at = now()
      where id = ${jobId} and state <> 'cancelled'
        and (progress_sent_at is null or progress_sent_at < now() - ${minSeconds} * interval '1 second')
        and started_at < now() - ${minSeconds} * interval '1 second'`;
    return result.count > 0;
  }

  /** Claims the summary: true once per job, however many workers finish it; never for a cancelled job. */
  async claimSummary(jobId: number): Promise<boolean> {
    const result = await this.db`
      update reconnect_job set summary_sent_at = now(), summary_tries = summary_tries + 1
      where id = ${jobId} and summary_sent_at is null and state <> 'cancelled'`;
    return result.count > 0;
  }

  /**
   * Gives back the claim on a summary that could not be delivered, so the
   * rescan tries again — unless it was tried `maxTries` times already.
   */
  async releaseSummary(jobId: number, maxTries: number): Promise<boolean> {
    const result = await this.db`
      update reconnect_job set summary_sent_at = null
      where id = ${jobId} and summary_sent_at is not null and summary_tries < ${maxTries}`;
    return result.count > 0;
  }

  /**
   * Cancels the person's open jobs (`stop`; `unlink` on their platforms): no
   * more follows, progress or summary. Targets not started are dropped, so a
   * worker running the job stops before its next write (markInFlight finds
   * fewer rows); those in flight keep their marker, outcomes recorded stay.
   * Returns how many jobs.
   */
  async cancelOpen(personId: number, platforms: readonly TargetPlatform[] = ["bluesky", "fediverse"]): Promise<number> {
    const cancelled = await this.db<{ id: number }[]>`
      update reconnect_job set state = 'cancelled', reason = 'stopped', wait_until = null, finished_at = now(), updated_at = now()
      where person_id = ${personId} and platform = any(${platforms as string[]}::text[]) and state not in ('done', 'cancelled')
      returning id`;
    if (cancelled.length === 0) return 0;
    await this.db`
      delete from reconnect_target
      where job_id = any(${cancelled.map((j) => j.id)}::int[]) and outcome is null and marker is null`;
    return cancelled.length;
  }

  /**
   * Takes a target out of the person's open jobs on these platforms (`ignore`),
   * unless its follow is in flight (then the run settles it). Returns how many jobs lost it.
   */
  async dropTarget(personId: number, targetPersonId: number, platforms: readonly TargetPlatform[]): Promise<number> {
    const result = await this.db`
      delete from reconnect_target t using reconnect_job j
      where j.id = t.job_id and j.person_id = ${personId} and j.platform = any(${platforms as string[]}::text[])
        and j.state not in ('done', 'cancelled')
        and t.target_person_id = ${targetPersonId} and t.outcome is null and t.marker is null`;
    return result.count;
  }

  /** People with automatic reconnection on, an authorization, and matches to follow with no open job. */
  async autoCandidates(limit = 100): Promise<{ personId: number; platform: TargetPlatform; identityId: number }[]> {
    const rows = await this.db<{ person_id: number; platform: TargetPlatform; identity_id: number }[]>`
      select distinct on (p.id, i.platform) p.id as person_id, i.platform, i.id as identity_id
      from person p
      join identity i on i.person_id = p.id and i.platform in ('bluesky', 'fediverse')
      join account_authorization a on a.identity_id = i.id
      where p.auto_reconnect
        and exists (select 1 from match m where m.person_id = p.id and m.platform = i.platform and m.state = 'pending')
        and not exists (select 1 from reconnect_job j where j.person_id = p.id and j.platform = i.platform
                        and j.state not in ('done', 'cancelled'))
      order by p.id, i.platform, i.id
      limit ${limit}`;
    return rows.map((r) => ({ personId: r.person_id, platform: r.platform, identityId: r.identity_id }));
  }
}
