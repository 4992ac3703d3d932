/**
 * Matches: person P followed person T on X, and T is verified on a platform
 * where P can follow them. Kept materialized in `match` (with per-target
 * state) so reading them never scans follow edges; the refresh functions are
 * called whenever identities or edges change.
 */
import type postgres from "postgres";
import type { MatchState, Queryable, TargetPlatform } from "./types.ts";
import { MATCH_STATES, TARGET_PLATFORMS } from "./types.ts";
import { withIndexesDeferred } from "./deferred-indexes.ts";

// A refresh adding at least this many matches, and at least this share of
// those already there, rebuilds the indexes rather than updating them.
const BULK_MATCHES = 100_000;
const BULK_SHARE = 0.2;

export type MatchCounts = Record<TargetPlatform, Record<MatchState, number> & { total: number }>;

export interface MatchEntry {
  targetPersonId: number;
  platform: TargetPlatform;
  /** The target's handle on that platform (fediverse acct or Bluesky handle). */
  handle: string | null;
  /** Actor URI or DID. */
  stableId: string | null;
  /** The target's X username, when known. */
  xUsername: string | null;
  state: MatchState;
  reason: string | null;
  updatedAt: Date;
}

export interface MatchPage {
  entries: MatchEntry[];
  total: number;
  page: number;
  pages: number;
}

function emptyCounts(): MatchCounts {
  const one = () =>
    Object.assign(Object.fromEntries(MATCH_STATES.map((s) => [s, 0])) as Record<MatchState, number>, {
      total: 0,
    });
  return { bluesky: one(), fediverse: one() };
}

/** Mastodon's follow limit: its importer takes no longer following list (fewer rows if the account already follows some). */
export const EXPORT_LIMIT = 7_500;

export class Matches {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /**
   * Adds the matches these people have as followers (after they registered,
   * linked an X identity or uploaded an archive): from their X identities'
   * edges in the shared graph, and from their own uploaded archive. Returns
   * rows added.
   */
  async refreshForFollowers(personIds: readonly number[]): Promise<number> {
    if (personIds.length === 0) return 0;
    const mine = this.db`f.person_id = any(${personIds as number[]}::int[])`;
    return (await this.addMatches(this.graphFollows(), mine)) + (await this.addMatches(this.uploadedFollows(), mine));
  }

  /**
   * Adds the matches that point at these people (after they became verified
   * on X and on Bluesky or the fediverse): the fan-out of an arrival, to the
   * people whose X identities or uploaded archives followed them.
   */
  async refreshForTargets(personIds: readonly number[]): Promise<number> {
    if (personIds.length === 0) return 0;
    const theirs = this.db`xt.person_id = any(${personIds as number[]}::int[])`;
    return (await this.addMatches(this.graphFollows(), theirs)) + (await this.addMatches(this.uploadedFollows(), theirs));
  }

  /** Who followed whom on X by the shared graph: (person_id, followed, since) for each person's X identity. */
  private graphFollows() {
    return this.db`
      select p.person_id, e.followed, p.created_at as since
      from identity p join x_follow e on e.follower = p.x_id`;
  }

  /** Who followed whom on X by the archives people uploaded: (person_id, followed, since). */
  private uploadedFollows() {
    return this.db`
      select u.person_id, u.followed, a.uploaded_at as since
      from uploaded_follow u join uploaded_archive a on a.person_id = u.person_id`;
  }

  /**
   * Inserts the matches that `follows` (person_id, followed, since) make
   * with verified people, restricted by `where` (on follows `f` or the
   * target's X identity `xt`); a plain subquery, so the planner joins it as
   * if written inline and drives it from the restricted side's index.
   */
  private async addMatches(follows: postgres.PendingQuery<postgres.Row[]>, where: postgres.PendingQuery<postgres.Row[]>): Promise<number> {
    const result = await this.db`
      insert into match (person_id, platform, target_person_id, notified_at)
      select distinct f.person_id, t.platform, xt.person_id, ${this.toldUnlessArrival(this.db`f.since`)}
      from (${follows}) f
      join identity xt on xt.x_id = f.followed and xt.verified_by <> 'archive'
      join identity t on t.person_id = xt.person_id
        and t.platform in ('bluesky', 'fediverse') and t.verified_by <> 'archive'
      where ${where} and xt.person_id <> f.person_id
      on conflict do nothing`;
    return result.count;
  }

  /**
   * Adds the matches that the follow edges in `table` create between
   * registered people (after a bulk edge import; `table` has the columns
   * follower, followed). Inside a transaction. From a table of new edges
   * (an increment), they go straight in. From the whole `x_follow` (after a
   * rebuild), the candidates are gathered first; when the new ones are many
   * against the matches already there (a bulk load), they go in with the
   * table's indexes set aside and rebuilt (withIndexesDeferred), else one by
   * one into the indexed table. Inserted
   * in primary-key order: measured 17% faster at 4.7M edges.
   * `bulkMinimum`: the fewest candidates worth a rebuild (tests lower it).
   */
  async refreshForEdges(table: "x_follow" | "x_follow_next" | "edge_import", bulkMinimum = BULK_MATCHES): Promise<number> {
    // Matches that follow from edges are never arrivals (the people were
    // here already): they go in told, for the arrival digests (src/announce).
    if (table !== "x_follow") {
      // An increment: few matches, straight into the indexed table.
      const result = await this.db`
        insert into match (person_id, platform, target_person_id, notified_at)
        select m.*, now() from (${this.matchesOfEdges(table)}) m
        order by 1, 2, 3
        on conflict do nothing`;
      return result.count;
    }
    // Serial, as every query here (connect() turns parallel plans off): the
    // plan walks the (followed, follower) index from the registered people,
    // 2.1 s at 15.7M edges, no faster with a worker.
    await this.db`create temporary table match_candidate on commit drop as ${this.matchesOfEdges(table)}`;
    // Only the new ones count: re-importing known edges must not rebuild anything.
    const [sizes] = await this.db<{ candidates: number; existing: number }[]>`
      select (select count(*) from match_candidate c where ${this.notYetMatched()})::float8 as candidates,
             (select greatest(reltuples, 0) from pg_class where oid = 'match'::regclass)::float8 as existing`;
    const { candidates, existing } = sizes ?? { candidates: 0, existing: 0 };
    let added: number;
    if (candidates < bulkMinimum || candidates < existing * BULK_SHARE) {
      added = (await this.insertCandidates(true)).count;
    } else {
      // Without its unique index the table cannot skip conflicts; the
      // anti-join runs under the rebuild's lock, so nothing slips in between.
      const bulk = await withIndexesDeferred(this.transaction(), "match", () => this.insertCandidates(false));
      // Undefined when matches are in use right now: then the usual way.
      added = bulk ? bulk.result.count : (await this.insertCandidates(true)).count;
    }
    // Left in place on an error: the transaction is aborted then, and drops it.
    await this.db`drop table match_candidate`;
    return added;
  }

  /** The transaction this instance runs in (bulk refreshes need one). */
  private transaction(): postgres.TransactionSql<{}> {
    if (!("savepoint" in this.db)) throw new Error("Matches.refreshForEdges must run inside a transaction.");
    return this.db;
  }

  /**
   * `match.notified_at` for a new match to target identities `xt` (X) and
   * `t` (platform) of a follower who came at `followerSince` (their X
   * identity, or their upload): untold (null) only when the target arrived
   * after that, i.e. news for the arrival digests (src/store/arrivals.ts);
   * else told already, so the next digest run has nothing to update (a
   * first registry load makes millions).
   */
  private toldUnlessArrival(followerSince: postgres.PendingQuery<postgres.Row[]>) {
    return this.db`case when greatest(xt.verified_at, t.verified_at) > ${followerSince} then null else now() end`;
  }

  /** The matches the edges of `table` make: (person_id, platform, target_person_id), distinct. */
  private matchesOfEdges(table: "x_follow" | "x_follow_next" | "edge_import") {
    return this.db`
      select distinct p.person_id, t.platform, xt.person_id as target_person_id
      from ${this.db(table)} e
      join identity p on p.x_id = e.follower
      join identity xt on xt.x_id = e.followed and xt.verified_by <> 'archive'
      join identity t on t.person_id = xt.person_id
        and t.platform in ('bluesky', 'fediverse') and t.verified_by <> 'archive'
      where p.person_id <> xt.person_id`;
  }

  /** Candidate `c` is not in `match` yet. */
  private notYetMatched() {
    return this.db`not exists (
      select 1 from match m
      where m.person_id = c.person_id and m.platform = c.platform and m.target_person_id = c.target_person_id)`;
  }

  /**
   * Inserts the candidates not yet in `match`, in primary-key order;
   * `skipConflicts` where the unique index is in place (a concurrent insert).
   */
  private insertCandidates(skipConflicts: boolean) {
    return this.db`
      insert into match (person_id, platform, target_person_id, notified_at)
      select c.person_id, c.platform, c.target_person_id, now() from match_candidate c
      where ${this.notYetMatched()}
      order by 1, 2, 3
      ${skipConflicts ? this.db`on conflict do nothing` : this.db``}`;
  }

  /**
   * Removes pending matches of these people (either side) that no longer
   * hold, e.g. after an identity was unlinked. Matches already acted on stay
   * as history.
   */
  async prune(personIds: readonly number[]): Promise<number> {
    if (personIds.length === 0) return 0;
    const result = await this.db`
      delete from match m
      where (m.person_id = any(${personIds as number[]}::int[]) or m.target_person_id = any(${personIds as number[]}::int[]))
        and m.state = 'pending'
        and not exists (
          select 1 from identity xt
          where xt.person_id = m.target_person_id and xt.x_id is not null and xt.verified_by <> 'archive'
            and (exists (select 1 from identity p join x_follow e on e.follower = p.x_id and e.followed = xt.x_id
                         where p.person_id = m.person_id)
              or exists (select 1 from uploaded_follow u where u.person_id = m.person_id and u.followed = xt.x_id))
            and exists (select 1 from identity t where t.person_id = m.target_person_id
                          and t.platform = m.platform and t.verified_by <> 'archive'))`;
    return result.count;
  }

  /** A person's matches counted per platform and state (one index range). */
  async counts(personId: number): Promise<MatchCounts> {
    const rows = await this.db<{ platform: TargetPlatform; state: MatchState; n: number }[]>`
      select platform, state, count(*)::int as n from match
      where person_id = ${personId} group by platform, state`;
    const counts = emptyCounts();
    for (const r of rows) {
      counts[r.platform][r.state] = r.n;
      counts[r.platform].total += r.n;
    }
    return counts;
  }

  /**
   * One page of a person's matches on a platform, most recent arrivals first.
   * @param states which states to include (default: all but ignored)
   */
  async list(
    personId: number,
    platform: TargetPlatform,
    options: { page?: number; pageSize?: number; states?: readonly MatchState[] } = {},
  ): Promise<MatchPage> {
    const pageSize = Math.max(1, Math.min(options.pageSize ?? 20, 500));
    const states = options.states ?? MATCH_STATES.filter((s) => s !== "ignored");
    const [{ total } = { total: 0 }] = await this.db<{ total: number }[]>`
      select count(*)::int as total from match
      where person_id = ${personId} and platform = ${platform} and state = any(${states as string[]}::match_state[])`;
    const pages = Math.max(1, Math.ceil(total / pageSize));
    const page = Math.min(Math.max(1, options.page ?? 1), pages);
    // Pick the page from `match` alone (index match_person_page), then look
    // up the handles of those few targets only.
    const rows = await this.db<
      { target_person_id: number; handle: string | null; stable_id: string | null; x_username: string | null; state: MatchState; reason: string | null; updated_at: Date }[]
    >`
      select m.target_person_id, t.handle, t.stable_id, x.handle as x_username, m.state, m.reason, m.updated_at
      from (
        select target_person_id, platform, state, reason, created_at, updated_at from match
        where person_id = ${personId} and platform = ${platform}
          and state = any(${states as string[]}::match_state[])
        order by created_at desc, target_person_id
        limit ${pageSize} offset ${(page - 1) * pageSize}) m
      left join lateral (
        select handle, stable_id from identity
        where person_id = m.target_person_id and platform = m.platform and verified_by <> 'archive'
        order by updated_at desc limit 1) t on true
      left join lateral (
        select handle from identity where person_id = m.target_person_id and platform = 'x'
        order by updated_at desc limit 1) x on true
      order by m.created_at desc, m.target_person_id`;
    return {
      entries: rows.map((r) => ({
        targetPersonId: r.target_person_id,
        platform,
        handle: r.handle,
        stableId: r.stable_id,
        xUsername: r.x_username,
        state: r.state,
        reason: r.reason,
        updatedAt: r.updated_at,
      })),
      total,
      page,
      pages,
    };
  }

  /**
   * The handles a person still has to follow on a platform, for the export
   * file (Mastodon's "following list" import): pending matches, and failed
   * ones a retry may settle (the run's failures: `failed: http_502`,
   * `failed: gave_up`, `failed: follow_limit`…), not those the target itself
   * ended (`not_found`, `gone`, `blocked`, `failed: self`). Most recent
   * first, at most `limit` (Mastodon's importer refuses a whole file longer
   * than the follows left under its limit); `total` counts them all.
   */
  async handles(personId: number, platform: TargetPlatform, limit = EXPORT_LIMIT): Promise<{ handles: string[]; total: number }> {
    const rows = await this.db<{ handle: string; total: number }[]>`
      select t.handle, count(*) over ()::int as total from match m
      join lateral (
        select handle from identity
        where person_id = m.target_person_id and platform = m.platform and verified_by <> 'archive' and handle is not null
        order by updated_at desc limit 1) t on true
      where m.person_id = ${personId} and m.platform = ${platform}
        and (m.state = 'pending'
          or (m.state = 'failed' and (m.reason is null or (m.reason like 'failed%' and m.reason <> 'failed: self'))))
      order by m.created_at desc, m.target_person_id
      limit ${limit}`;
    return { handles: rows.map((r) => r.handle), total: rows[0]?.total ?? 0 };
  }

  /** Records what happened to one match. */
  async setState(
    personId: number,
    platform: TargetPlatform,
    targetPersonId: number,
    state: MatchState,
    reason: string | null = null,
  ): Promise<boolean> {
    const result = await this.db`
      update match set state = ${state}, reason = ${reason}, updated_at = now()
      where person_id = ${personId} and platform = ${platform} and target_person_id = ${targetPersonId}`;
    return result.count > 0;
  }

  /**
   * The registered people who followed an X account (by their X identity or
   * their uploaded archive), excluding its owner. Probes the x_id index once
   * per follower, so the cost follows the account's follower count, not the
   * number of registered people.
   */
  async registeredFollowersOf(xAccountId: string): Promise<number[]> {
    const rows = await this.db<{ person_id: number }[]>`
      with owner as (select person_id from identity where x_id = ${xAccountId}::bigint)
      select person_id from identity
      where x_id = any(array(select follower from x_follow where followed = ${xAccountId}::bigint))
        and person_id is distinct from (select person_id from owner)
      union
      select person_id from uploaded_follow
      where followed = ${xAccountId}::bigint and person_id is distinct from (select person_id from owner)`;
    return rows.map((r) => r.person_id);
  }

  /**
   * The fan-out of an arrival: the people with a match to `targetPersonId`
   * (run `refreshForTargets` first). Index-only on match_target.
   */
  async arrivalFollowers(targetPersonId: number): Promise<number[]> {
    const rows = await this.db<{ person_id: number }[]>`
      select distinct person_id from match where target_person_id = ${targetPersonId}`;
    return rows.map((r) => r.person_id);
  }
}

export { TARGET_PLATFORMS };
