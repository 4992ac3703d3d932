/**
 * Public announcements' bookkeeping: which windows of time each bot has
 * announced, and the arrivals of a window. A window is claimed by inserting
 * its row (the primary key keeps a second replica out); the first window of
 * a platform is empty, so nothing from before the first run is announced.
 */
import type { Queryable, TargetPlatform } from "./types.ts";

export interface AnnouncementWindow {
  platform: TargetPlatform;
  since: Date;
  until: Date;
}

/** Arrivals of a window: how many, and the first of those who agreed to be named. */
export interface ArrivalTally {
  count: number;
  named: { personId: number; stableId: string; handle: string }[];
}

export class Announcements {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /**
   * Claims the window from the end of the last one to `until`. Undefined
   * when another replica holds it, or less than `minMs` has passed since
   * (a replica whose clock put it a minute later does not post again).
   */
  async open(platform: TargetPlatform, until: Date, minMs = 10 * 60_000): Promise<AnnouncementWindow | undefined> {
    // The first window starts at -infinity and is not announced: it only
    // marks where announcing began.
    const rows = await this.db<{ since: Date; until: Date; first: boolean }[]>`
      insert into announcement (platform, since, until)
      select ${platform}, coalesce(last.until, '-infinity'), ${until}
      from (select max(until) as until from announcement where platform = ${platform}) last
      where last.until is null or last.until <= ${until}::timestamptz - ${minMs} * interval '1 millisecond'
      on conflict do nothing
      returning until, since = '-infinity' as first, case when since = '-infinity' then until else since end as since`;
    const row = rows[0];
    if (!row || row.first) return undefined;
    return { platform, since: row.since, until: row.until };
  }

  /**
   * The people who arrived on the window's platform within it: whose first
   * arrival there (src/store/arrivals.ts: their X identity and their
   * identity there both verified, not from an archive; recorded once, so an
   * account unlinked and linked again does not count again) is inside
   * (since, until]. Named: those who agreed, by their account there.
   */
  async tally(window: AnnouncementWindow, maxNamed: number): Promise<ArrivalTally> {
    const { platform, since, until } = window;
    const rows = await this.db<{ count: number; named: ArrivalTally["named"] | null }[]>`
      with arrived as (
        select a.person_id, a.arrived_at as at, p.announce_me
        from arrival a join person p on p.id = a.person_id
        where a.platform = ${platform} and a.arrived_at > ${since} and a.arrived_at <= ${until})
      select count(*)::int as count,
        (select json_agg(json_build_object('personId', n.person_id, 'stableId', n.stable_id, 'handle', n.handle) order by n.at, n.person_id)
         from (select a.person_id, a.at, there.stable_id, there.handle
               from arrived a
               cross join lateral (
                 select stable_id, handle from identity
                 where person_id = a.person_id and platform = ${platform} and verified_by <> 'archive'
                   and stable_id is not null and handle is not null
                 order by verified_at, id limit 1) there
               where a.announce_me
               order by a.at, a.person_id limit ${maxNamed}) n) as named
      from arrived`;
    const row = rows[0];
    return { count: row?.count ?? 0, named: row?.named ?? [] };
  }

  /**
   * Records what was posted for the window (`uri` null: nothing to
   * announce) and whom it named. Someone forgotten while it was being
   * posted is not in the store any more: the post is queued to be taken
   * back. Run in a transaction: the people named are held (key share) until
   * it ends, so a `forget` (which holds its person first) either finishes
   * before this looks, or waits and then finds the post to take back.
   */
  async posted(window: AnnouncementWindow, tally: { count: number; named: readonly number[] }, uri: string | null): Promise<void> {
    const named = [...tally.named];
    const present = named.length === 0 ? [] : await this.db<{ id: number }[]>`select id from person where id = any(${named}::int[]) order by id for key share`;
    await this.db`
      update announcement set arrivals = ${tally.count}, named = ${named.length}, named_people = ${named}::int[],
        post_uri = ${uri}, posted_at = now()
      where platform = ${window.platform} and since = ${window.since}`;
    if (uri !== null && present.length < named.length) {
      await this.db`insert into announcement_retraction (platform, post_uri) values (${window.platform}, ${uri}) on conflict do nothing`;
    }
  }

  /** Queues the deletion of every post that named `personId` (who is being forgotten). */
  async retractNaming(personId: number): Promise<void> {
    await this.db`
      insert into announcement_retraction (platform, post_uri)
      select platform, post_uri from announcement
      where named_people @> array[${personId}]::int[] and post_uri is not null
      on conflict do nothing`;
  }

  /**
   * Takes one post of `platform` to delete, for `leaseMinutes` (a run that
   * dies leaves it to a later one); `retracted` then removes it.
   */
  async claimRetraction(platform: AnnouncementWindow["platform"], leaseMinutes = 10): Promise<string | undefined> {
    const [row] = await this.db<{ post_uri: string }[]>`
      update announcement_retraction r set claimed_at = now()
      from (select post_uri from announcement_retraction
            where platform = ${platform} and (claimed_at is null or claimed_at < now() - ${leaseMinutes} * interval '1 minute')
            order by requested_at, post_uri limit 1 for update skip locked) next
      where r.platform = ${platform} and r.post_uri = next.post_uri
      returning r.post_uri`;
    return row?.post_uri;
  }

  async retracted(platform: AnnouncementWindow["platform"], uri: string): Promise<void> {
    await this.db`delete from announcement_retraction where platform = ${platform} and post_uri = ${uri}`;
  }

  /** Gives the window up (its post failed): the next one starts where the last posted one ended. */
  async abandon(window: AnnouncementWindow): Promise<void> {
    await this.db`delete from announcement where platform = ${window.platform} and since = ${window.since}`;
  }
}
