/** People and their settings; merging two people into one; forgetting one. */
import { Announcements } from "./announcements.ts";
import { Arrivals } from "./arrivals.ts";
import { lockEdgesBeforePeople } from "./lock-order.ts";
import type { Person, PersonSettings, Queryable } from "./types.ts";
import { UploadedArchives } from "./uploaded-archives.ts";

interface PersonRow {
  id: number;
  language: string | null;
  written_language: string | null;
  notify: boolean;
  auto_reconnect: boolean;
  announce_me: boolean;
  created_at: Date;
  updated_at: Date;
}

export function toPerson(r: PersonRow): Person {
  return {
    id: r.id,
    language: r.language,
    writtenLanguage: r.written_language,
    notify: r.notify,
    autoReconnect: r.auto_reconnect,
    announceMe: r.announce_me,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export class People {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  async create(settings: Partial<PersonSettings> = {}): Promise<Person> {
    const [row] = await this.db<PersonRow[]>`
      insert into person (language, notify, auto_reconnect, announce_me)
      values (${settings.language ?? null}, ${settings.notify ?? true},
              ${settings.autoReconnect ?? false}, ${settings.announceMe ?? false})
      returning *`;
    return toPerson(row!);
  }

  async get(id: number): Promise<Person | undefined> {
    const [row] = await this.db<PersonRow[]>`select * from person where id = ${id}`;
    return row && toPerson(row);
  }

  /** Changes only the settings given; returns the person as saved. */
  async updateSettings(id: number, settings: Partial<PersonSettings>): Promise<Person | undefined> {
    // Turning something back on is a choice made since a `stop`: it no longer holds in a merge.
    const optIn = settings.notify === true || settings.autoReconnect === true || settings.announceMe === true;
    const [row] = await this.db<PersonRow[]>`
      update person set
        language = case when ${settings.language !== undefined} then ${settings.language ?? null} else language end,
        notify = coalesce(${settings.notify ?? null}::boolean, notify),
        auto_reconnect = coalesce(${settings.autoReconnect ?? null}::boolean, auto_reconnect),
        announce_me = coalesce(${settings.announceMe ?? null}::boolean, announce_me),
        stopped_at = case when ${optIn} then null else stopped_at end,
        updated_at = now()
      where id = ${id}
      returning *`;
    return row && toPerson(row);
  }

  /**
   * `stop`: the bot never writes first again — no notifications, no
   * automatic reconnection, never named in public — and a merge with
   * another person keeps it so (see `merge`).
   */
  async stop(id: number): Promise<void> {
    await this.db`
      update person set notify = false, auto_reconnect = false, announce_me = false, stopped_at = now(), updated_at = now()
      where id = ${id}`;
  }

  /** Notes the language the person just wrote in (a no-op when it is the one noted). */
  async noteWrittenLanguage(id: number, language: string): Promise<void> {
    await this.db`update person set written_language = ${language} where id = ${id} and written_language is distinct from ${language}`;
  }

  /**
   * Waits for, and then keeps out until the transaction ends, everything
   * else that holds several people (merges, links, uploads, imports, a
   * forget): the `x_follow` lock of lock-order.ts. Before any person lock.
   */
  async holdPeopleChanges(): Promise<void> {
    await lockEdgesBeforePeople(this.db);
  }

  /**
   * Locks these people, in id order (as merges do), for the rest of the
   * transaction, after `x_follow` (lock-order.ts); the ones that exist.
   */
  async lockAll(ids: readonly number[]): Promise<number[]> {
    await this.holdPeopleChanges();
    const rows = await this.db<{ id: number }[]>`select id from person where id = any(${[...ids]}::int[]) order by id for update`;
    return rows.map((r) => r.id);
  }

  /**
   * Holds the person's row until the transaction ends, so that a merge or
   * a `forget` waits for what is being written for them. False when they
   * are no longer in the store. Inside a transaction.
   */
  async lockForUpdate(id: number): Promise<boolean> {
    const rows = await this.db`select 1 from person where id = ${id} for update`;
    return rows.length > 0;
  }

  /**
   * Deletes everything about a person: identities, settings, matches both
   * ways, codes, authorizations, uploaded archives (by cascade), and the X
   * follow edges that are theirs (their own followings). Run inside a transaction.
   */
  async delete(id: number): Promise<boolean> {
    // Before the person: see lock-order.ts.
    await lockEdgesBeforePeople(this.db);
    // Held first: a post being recorded as naming them (Announcements.posted)
    // either lands before, and is taken back below, or sees them gone.
    await this.lockForUpdate(id);
    await this.db`
      delete from x_follow f using identity i
      where i.person_id = ${id} and i.x_id is not null and f.follower = i.x_id`;
    // The public posts that named them are taken back: deleted at the next
    // announcement run on their platform, and the fediverse bot's copy is
    // no longer served from now (kept until its Delete is out).
    await new Announcements(this.db).retractNaming(id);
    await this.db`
      update fediverse_public_note n set withdrawn_at = now()
      from identity i
      where i.person_id = ${id} and i.platform = 'fediverse' and i.stable_id is not null
        and n.mentions @> jsonb_build_array(jsonb_build_object('href', i.stable_id)) and n.withdrawn_at is null`;
    const result = await this.db`delete from person where id = ${id}`;
    return result.count > 0;
  }

  /** How many X accounts the person followed: their X identities' edges and their uploaded archive's. */
  async followingCount(id: number): Promise<number> {
    const [row] = await this.db<{ n: number }[]>`
      select count(*)::float8 as n from (
        select f.followed from x_follow f join identity i on f.follower = i.x_id
        where i.person_id = ${id} and i.x_id is not null
        union
        select followed from uploaded_follow where person_id = ${id}) f`;
    return row?.n ?? 0;
  }

  /** Deletes X account `xId`'s own follow edges (what it followed), as `delete` does for a person. */
  async deleteEdgesOf(xId: string): Promise<void> {
    await this.db`delete from x_follow where follower = ${xId}::bigint`;
  }

  /**
   * Folds person `dropId` into `keepId`: identities, codes and matches move
   * over; where both had a match, the further-along state wins. Settings merge
   * without losing a choice: a language set on either is kept; notifications
   * stay on only if both had them on (a `stop` anywhere holds); an
   * auto-reconnect opt-in on either side is kept, unless the other side
   * said `stop` and has turned nothing on since; being named in public
   * announcements needs the consent of both sides (a public post is read
   * the moment it is made, and `stop` on one account must not be undone by linking
   * another). Run inside a transaction, then refresh the kept person's matches.
   */
  async merge(keepId: number, dropId: number): Promise<void> {
    if (keepId === dropId) return;
    // The callers derive matches from the edges next: see lock-order.ts.
    await lockEdgesBeforePeople(this.db);
    // Both held first, in id order: an upload under way for either (which
    // holds its person, lockForUpdate) lands before they merge, not lost.
    await this.db`select id from person where id in (${keepId}, ${dropId}) order by id for update`;
    await this.db`
      update person k set
        language = coalesce(k.language, d.language),
        written_language = coalesce(k.written_language, d.written_language),
        notify = k.notify and d.notify,
        auto_reconnect = case when k.stopped_at is null and d.stopped_at is null
                              then k.auto_reconnect or d.auto_reconnect
                              else k.auto_reconnect and d.auto_reconnect end,
        stopped_at = greatest(k.stopped_at, d.stopped_at),
        announce_me = k.announce_me and d.announce_me,
        created_at = least(k.created_at, d.created_at),
        updated_at = now()
      from person d where k.id = ${keepId} and d.id = ${dropId}`;
    await this.db`update identity set person_id = ${keepId}, updated_at = now() where person_id = ${dropId}`;
    await this.db`update link_code set person_id = ${keepId} where person_id = ${dropId}`;
    // Matches the dropped person had: keep the most advanced state per target.
    await this.db`
      insert into match (person_id, platform, target_person_id, state, reason, created_at, updated_at, notified_at)
      select ${keepId}, platform, target_person_id, state, reason, created_at, updated_at, notified_at
      from match where person_id = ${dropId} and target_person_id <> ${keepId}
      on conflict (person_id, platform, target_person_id) do update set
        state = excluded.state, reason = excluded.reason, updated_at = excluded.updated_at
      where (case excluded.state when 'followed' then 5 when 'already_following' then 4 when 'ignored' then 3 when 'failed' then 2 else 1 end)
        > (case match.state when 'followed' then 5 when 'already_following' then 4 when 'ignored' then 3 when 'failed' then 2 else 1 end)`;
    // Matches pointing at the dropped person now point at the kept one.
    await this.db`
      insert into match (person_id, platform, target_person_id, state, reason, created_at, updated_at, notified_at)
      select person_id, platform, ${keepId}, state, reason, created_at, updated_at, notified_at
      from match where target_person_id = ${dropId} and person_id <> ${keepId}
      on conflict (person_id, platform, target_person_id) do update set
        state = excluded.state, reason = excluded.reason, updated_at = excluded.updated_at
      where (case excluded.state when 'followed' then 5 when 'already_following' then 4 when 'ignored' then 3 when 'failed' then 2 else 1 end)
        > (case match.state when 'followed' then 5 when 'already_following' then 4 when 'ignored' then 3 when 'failed' then 2 else 1 end)`;
    // A match told on either side stays told (arrival digests never repeat it).
    await this.db`
      update match k set notified_at = d.notified_at
      from match d
      where d.person_id = ${dropId} and d.notified_at is not null
        and k.person_id = ${keepId} and k.platform = d.platform and k.target_person_id = d.target_person_id and k.notified_at is null`;
    await this.db`
      update match k set notified_at = d.notified_at
      from match d
      where d.target_person_id = ${dropId} and d.notified_at is not null
        and k.target_person_id = ${keepId} and k.platform = d.platform and k.person_id = d.person_id and k.notified_at is null`;
    await this.mergeReconnections(keepId, dropId);
    await new UploadedArchives(this.db).merge(keepId, dropId);
    // Posts that named the merged person name the kept one: forgetting them takes those back too.
    await this.db`
      update announcement set named_people = array_replace(named_people, ${dropId}::int, ${keepId}::int)
      where named_people @> array[${dropId}]::int[]`;
    // Arrivals told (and first arrivals) carry over: a merged person who links again is no news twice.
    await new Arrivals(this.db).merge(keepId, dropId);
    await this.db`delete from person where id = ${dropId}`;
  }

  /**
   * Reconnection jobs follow their person. Where both have an open job on a
   * platform, the dropped one's remaining targets join the kept one's, with
   * their markers (a write in flight is then recognised when it lands).
   * Other people's jobs that target the dropped person go on with the kept one.
   */
  private async mergeReconnections(keepId: number, dropId: number): Promise<void> {
    // Their jobs' targets that are the other: the kept person would follow themselves.
    await this.db`
      delete from reconnect_target t using reconnect_job j
      where j.id = t.job_id and j.person_id in (${keepId}, ${dropId})
        and t.target_person_id in (${keepId}, ${dropId}) and t.outcome is null`;
    // A job that targets both keeps one row, the kept person's: it takes the
    // dropped row's outcome if it had none (the follow was made), else its
    // marker (a write in flight is recognised when it lands).
    await this.db`
      update reconnect_target k set
        outcome = d.outcome, reason = d.reason, done_at = d.done_at,
        marker = coalesce(k.marker, d.marker)
      from reconnect_target d, reconnect_job j
      where d.target_person_id = ${dropId} and k.job_id = d.job_id and k.target_person_id = ${keepId}
        and j.id = d.job_id and j.person_id not in (${keepId}, ${dropId})
        and k.outcome is null and (d.outcome is not null or (k.marker is null and d.marker is not null))`;
    // Other people's jobs that target the dropped person target the kept one
    // (outcomes too: reports keep counting them), unless they do already.
    await this.db`
      update reconnect_target t set target_person_id = ${keepId}
      from reconnect_job j
      where t.target_person_id = ${dropId} and j.id = t.job_id and j.person_id not in (${keepId}, ${dropId})
        and not exists (select 1 from reconnect_target k where k.job_id = t.job_id and k.target_person_id = ${keepId})`;
    await this.db`
      with pairs as (
        select d.id as drop_job, k.id as keep_job from reconnect_job d
        join reconnect_job k on k.person_id = ${keepId} and k.platform = d.platform and k.state not in ('done', 'cancelled')
        where d.person_id = ${dropId} and d.state not in ('done', 'cancelled')),
      moved as (
        insert into reconnect_target (job_id, target_person_id, position, marker)
        select p.keep_job, t.target_person_id, 1000000 + t.position, t.marker
        from pairs p join reconnect_target t on t.job_id = p.drop_job
        where t.outcome is null and t.target_person_id <> ${keepId}
        on conflict do nothing)
      update reconnect_job set state = 'cancelled', reason = 'merged', finished_at = now(), updated_at = now()
      where id in (select drop_job from pairs)`;
    await this.db`update reconnect_job set person_id = ${keepId} where person_id = ${dropId}`;
    await this.db`update web_link set person_id = ${keepId} where person_id = ${dropId}`;
  }
}

