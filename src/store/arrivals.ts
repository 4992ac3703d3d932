/**
 * Arrivals to tell: matches not yet told to their person (`match.notified_at`
 * is null). Telling is claimed row by row in one UPDATE, so two replicas
 * running the digest at once never tell the same match twice.
 *
 * A person *arrives* on a platform when a verified X identity and a verified
 * identity there (not from an archive; `verified_at`) first belong to them.
 * That moment is recorded once, as the identities are written (table
 * `arrival`, db/migrations/031), and kept: an account unlinked and linked
 * again is a new identity row verified anew, and its person does not arrive
 * again. Forgetting a person takes their record with them (someone
 * who registers again is a new person, and arrives anew).
 *
 * A match is news to its person when the target arrived after the person
 * joined with their own X identity or uploaded their archive, whichever
 * came first, and the person was not told that arrival yet (`arrival_told`:
 * a match unlinked and linked again is a new row, the telling stays).
 * Matches made by the person's own registration, an archive they imported,
 * or an edge load about people who were already here are not arrivals: they
 * are marked told without a word (the person sees them through `status` and
 * `list`).
 */
import type { Queryable, TargetPlatform } from "./types.ts";

export interface Arrival {
  platform: TargetPlatform;
  targetPersonId: number;
  /** The target's handle on that platform, when known. */
  handle: string | null;
}

export class Arrivals {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /**
   * Marks told, without telling, the untold matches of people who do not
   * want digests (notifications off, or `stop`). Returns rows marked.
   */
  async skipUnwanted(): Promise<number> {
    const result = await this.db`
      update match m set notified_at = now()
      from person p
      where m.person_id = p.id and m.notified_at is null and not p.notify`;
    return result.count;
  }

  /** Up to `limit` people with notifications on and untold matches made up to `until`, by id after `after`. */
  async peopleWithUntold(after: number, limit: number, until?: Date): Promise<number[]> {
    const rows = await this.db<{ id: number }[]>`
      select p.id from person p
      where p.notify and p.id > ${after}
        and exists (select 1 from match m where m.person_id = p.id and m.notified_at is null and m.created_at <= coalesce(${until ?? null}::timestamptz, 'infinity'))
      order by p.id limit ${limit}`;
    return rows.map((r) => r.id);
  }

  /**
   * Claims every untold match of `personId` (marks it told at `stamp`) and
   * returns the arrivals among them: pending, arrived (first, on that
   * platform) after the person joined, not told them before, and not on a
   * platform where automatic reconnection follows them anyway (its job
   * reports instead). The arrivals returned are recorded as told (at
   * `stamp`). Another claimant gets nothing. Only matches made up to
   * `until` (the run's tick, the same on every replica): one made during
   * the run waits for the next, so nobody gets two digests in one period.
   */
  async claim(personId: number, stamp: Date, until?: Date): Promise<Arrival[]> {
    const upTo = until ?? null;
    return this.atomically(async (db) => {
      // The person and the targets first, in id order, as every writer does (lock-order.ts):
      // a forget or a merge of one of them waits for this claim, or has happened.
      const held = await db<{ id: number }[]>`
        select id from person
        where id = ${personId}
          or id in (select m.target_person_id from match m
                    where m.person_id = ${personId} and m.notified_at is null
                      and m.created_at <= coalesce(${upTo}::timestamptz, 'infinity'))
        order by id for key share`;
      const targets = held.map((r) => r.id).filter((id) => id !== personId);
      if (targets.length === 0 || targets.length === held.length) return [];
      const rows = await db<{ platform: TargetPlatform; target_person_id: number; handle: string | null }[]>`
        with claimed as (
          update match m set notified_at = ${stamp}
          where m.person_id = ${personId} and m.notified_at is null and m.created_at <= coalesce(${upTo}::timestamptz, 'infinity')
            and m.target_person_id = any(${targets}::int[])
            -- Re-checked here: a stop sent while the run works through its list holds.
            and exists (select 1 from person p where p.id = ${personId} and p.notify)
          returning m.platform, m.target_person_id, m.state, m.created_at),
        news as (
          select c.platform, c.target_person_id, c.created_at,
            (select i.handle from identity i
             where i.person_id = c.target_person_id and i.platform = c.platform and i.verified_by <> 'archive'
             order by i.id limit 1) as handle
          from claimed c
          join arrival a on a.person_id = c.target_person_id and a.platform = c.platform
          where c.state = 'pending'
            and a.arrived_at
              > least((select min(x.created_at) from identity x where x.person_id = ${personId} and x.platform = 'x'),
                      (select u.uploaded_at from uploaded_archive u where u.person_id = ${personId}))
            and not exists (
              select 1 from arrival_told t
              where t.person_id = ${personId} and t.platform = c.platform and t.target_person_id = c.target_person_id)
            and not exists (
              select 1 from person p
              join identity mine on mine.person_id = p.id and mine.platform = c.platform
              join account_authorization a on a.identity_id = mine.id
              where p.id = ${personId} and p.auto_reconnect)),
        told as (
          insert into arrival_told (person_id, platform, target_person_id, told_at)
          select ${personId}, n.platform, n.target_person_id, ${stamp} from news n
          on conflict do nothing)
        select n.platform, n.target_person_id, n.handle from news n
        order by n.created_at, n.target_person_id`;
      return rows.map((r) => ({ platform: r.platform, targetPersonId: r.target_person_id, handle: r.handle }));
    });
  }

  /**
   * Gives back a claim that could not be delivered: those matches are untold
   * again, and their arrivals not told. `only`: just these arrivals of the
   * claim (what it returned), else all it marked.
   */
  async release(personId: number, stamp: Date, only?: readonly Pick<Arrival, "platform" | "targetPersonId">[]): Promise<number> {
    const these = only
      ? this.db`and (platform, target_person_id) in (
          select * from unnest(${only.map((a) => a.platform)}::text[], ${only.map((a) => a.targetPersonId)}::int[]))`
      : this.db``;
    const result = await this.db`
      with untold as (
        delete from arrival_told where person_id = ${personId} and told_at = ${stamp} ${these})
      update match set notified_at = null where person_id = ${personId} and notified_at = ${stamp} ${these}`;
    return result.count;
  }

  /**
   * For a merge of `dropId` into `keepId` (before `dropId` is deleted): the
   * kept person's first arrivals are the earlier of both, and what either
   * was told, or was told about either, stays told.
   */
  async merge(keepId: number, dropId: number): Promise<void> {
    if (keepId === dropId) return;
    await this.db`
      insert into arrival (person_id, platform, arrived_at)
      select ${keepId}, platform, arrived_at from arrival where person_id = ${dropId}
      on conflict (person_id, platform) do update set arrived_at = least(arrival.arrived_at, excluded.arrived_at)`;
    await this.db`
      insert into arrival_told (person_id, platform, target_person_id, told_at)
      select case when person_id = ${dropId} then ${keepId} else person_id end, platform,
        case when target_person_id = ${dropId} then ${keepId} else target_person_id end, told_at
      from arrival_told
      where (person_id = ${dropId} or target_person_id = ${dropId})
        and (case when person_id = ${dropId} then ${keepId} else person_id end)
          <> (case when target_person_id = ${dropId} then ${keepId} else target_person_id end)
      on conflict do nothing`;
  }

  /** Runs `fn` in this instance's transaction, or in one of its own. */
  private atomically<T>(fn: (db: Queryable) => Promise<T>): Promise<T> {
    if ("savepoint" in this.db) return fn(this.db);
    return this.db.begin((tx) => fn(tx)) as Promise<T>;
  }
}
