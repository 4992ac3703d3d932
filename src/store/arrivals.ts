/**
 * Arrivals to tell: matches not yet told to their person (`match.notified_at`
 * is null). Telling is claimed row by row in one UPDATE, so two replicas
 * running the digest at once never tell the same match twice.
 *
 * A match is news to its person when the target *arrived* — got the X
 * identity and the platform identity the match rests on, verified (not
 * from an archive; `verified_at`) — after the person joined with their own
 * X identity or uploaded their archive, whichever came first. Matches made
 * by the person's own registration, an archive they imported, or an edge
 * load about people who were already here are not arrivals: they are marked told without a word
 * (the person sees them through `status` and `list`).
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
   * returns the arrivals among them: pending, arrived after the person
   * joined, and not on a platform where automatic reconnection follows them
   * anyway (its job reports instead). Another claimant gets nothing. Only
   * matches made up to `until` (the run's tick, the same on every replica):
   * one made during the run waits for the next, so nobody gets two digests
   * in one period.
   */
  async claim(personId: number, stamp: Date, until?: Date): Promise<Arrival[]> {
    const rows = await this.db<{ platform: TargetPlatform; target_person_id: number; handle: string | null }[]>`
      with claimed as (
        update match m set notified_at = ${stamp}
        where m.person_id = ${personId} and m.notified_at is null and m.created_at <= coalesce(${until ?? null}::timestamptz, 'infinity')
          -- Re-checked here: a stop sent while the run works through its list holds.
          and exists (select 1 from person p where p.id = ${personId} and p.notify)
        returning m.platform, m.target_person_id, m.state, m.created_at)
      select c.platform, c.target_person_id,
        (select i.handle from identity i
         where i.person_id = c.target_person_id and i.platform = c.platform and i.verified_by <> 'archive'
         order by i.id limit 1) as handle
      from claimed c
      where c.state = 'pending'
        and (select max(i.verified_at) from identity i
             where i.person_id = c.target_person_id and i.platform in ('x', c.platform) and i.verified_by <> 'archive')
          > least((select min(x.created_at) from identity x where x.person_id = ${personId} and x.platform = 'x'),
                  (select a.uploaded_at from uploaded_archive a where a.person_id = ${personId}))
        and not exists (
          select 1 from person p
          join identity mine on mine.person_id = p.id and mine.platform = c.platform
          join account_authorization a on a.identity_id = mine.id
          where p.id = ${personId} and p.auto_reconnect)
      order by c.created_at, c.target_person_id`;
    return rows.map((r) => ({ platform: r.platform, targetPersonId: r.target_person_id, handle: r.handle }));
  }

  /** Gives back a claim that could not be delivered: those matches are untold again. */
  async release(personId: number, stamp: Date): Promise<number> {
    const result = await this.db`
      update match set notified_at = null where person_id = ${personId} and notified_at = ${stamp}`;
    return result.count;
  }
}
