/**
 * X archives that people upload themselves through the archive page. An
 * upload proves nothing (anyone can make a file that names an X account), so
 * it is kept apart from the shared graph: its follows serve its uploader's
 * own matching (src/store/matches.ts reads them), it claims no X identity,
 * and nothing the store learns about the account it names reaches the
 * uploader.
 */
import type { Queryable } from "./types.ts";

export interface UploadedArchive {
  personId: number;
  /** The X account the archive names (unverified). */
  xAccountId: string;
  xUsername: string | null;
  /** Whom it says the person followed on X. */
  followings: number;
  uploadedAt: Date;
}

export class UploadedArchives {
  private readonly db: Queryable;
  constructor(db: Queryable) {
    this.db = db;
  }

  /** The person's uploaded archive, if any. */
  async get(personId: number): Promise<UploadedArchive | undefined> {
    const [row] = await this.db<{ x_id: string; x_username: string | null; uploaded_at: Date; followings: number }[]>`
      select a.x_id::text, a.x_username, a.uploaded_at,
             (select count(*)::int from uploaded_follow f where f.person_id = a.person_id) as followings
      from uploaded_archive a where a.person_id = ${personId}`;
    return row && { personId, xAccountId: row.x_id, xUsername: row.x_username, followings: row.followings, uploadedAt: row.uploaded_at };
  }

  /**
   * Makes `archive` the person's upload, replacing any earlier one whole
   * (a newer archive, or the right file after a wrong one), with the
   * followed X ids of `table`'s column `followed`. Returns how many follows
   * it holds. Run inside a transaction, then refresh and prune the person's
   * matches.
   */
  async replace(personId: number, archive: { xAccountId: string; xUsername: string | null }, table: string): Promise<number> {
    await this.db`delete from uploaded_archive where person_id = ${personId}`;
    await this.db`
      insert into uploaded_archive (person_id, x_id, x_username)
      values (${personId}, ${archive.xAccountId}::bigint, ${archive.xUsername})`;
    const result = await this.db`
      insert into uploaded_follow (person_id, followed)
      select distinct ${personId}::int, followed from ${this.db(table)}
      order by 2`;
    return result.count;
  }

  /** Deletes the person's upload and its follows. Then prune their matches. */
  async remove(personId: number): Promise<boolean> {
    const result = await this.db`delete from uploaded_archive where person_id = ${personId}`;
    return result.count > 0;
  }

  /**
   * Moves person `dropId`'s upload to `keepId` when merging them: the kept
   * person's archive row stays if they had one, and the follows of both are
   * kept (nothing a person uploaded is lost by linking accounts).
   */
  async merge(keepId: number, dropId: number): Promise<void> {
    await this.db`
      insert into uploaded_archive (person_id, x_id, x_username, uploaded_at)
      select ${keepId}, x_id, x_username, uploaded_at from uploaded_archive where person_id = ${dropId}
      on conflict (person_id) do nothing`;
    await this.db`
      insert into uploaded_follow (person_id, followed)
      select ${keepId}, followed from uploaded_follow where person_id = ${dropId}
      on conflict do nothing`;
    await this.db`delete from uploaded_archive where person_id = ${dropId}`;
  }
}
