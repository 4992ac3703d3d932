/**
 * `reconnexion import archive <zip|folder|file>`: a real X archive. The
 * account comes from data/account.js; followings and followers stream from
 * their (possibly split) data files straight into COPY, one entry in memory
 * at a time. Everything lands in one transaction.
 */
import { Readable } from "node:stream";
import postgres from "postgres";
import { pipeline } from "node:stream/promises";
import { ArchiveError, openArchiveSource, type ArchiveFile, type ArchiveLimits } from "../archive/source.ts";
import { readYtd, readYtdBatches, YtdFormatError } from "../archive/ytd-parser.ts";
import type { Sql } from "../store/database.ts";
import { isXAccountId, normalizeXUsername } from "../store/handles.ts";
import { Identities, IdentityTakenError } from "../store/identities.ts";
import { Matches } from "../store/matches.ts";
import { People } from "../store/people.ts";
import { ImportError, silentProgress, type ArchiveImportSummary, type Progress } from "./types.ts";

export interface ArchiveImportOptions {
  progress?: Progress;
  /** Attach the archive to this person (an upload by someone the bot knows). */
  personId?: number;
  /** Whose archive it is, when only a following.js/follower.js is given. */
  xAccountId?: string;
  limits?: ArchiveLimits;
  /**
   * Sent by the person through the upload page, not by the operator: an
   * archive proves nothing (anyone can write one), so it may not claim an
   * X account the store already knows follows of from other data (that
   * would read them), nor give a person a second X account, and its
   * follower.js is left out (those edges only ever serve other people).
   */
  selfService?: boolean;
}

interface AccountInfo {
  accountId: string;
  username: string | null;
}

/**
 * An X account the archive may not claim. The operator is told why; a
 * person on the upload page gets one answer for every reason, so the page
 * cannot be used to learn which X accounts the store knows.
 */
function claimRefused(input: string, accountId: string, why: string, options: ArchiveImportOptions): ImportError {
  return options.selfService
    ? new ImportError(input, undefined, `names X account ${accountId}, which cannot be attached to you from an upload: only the registration platform can confirm it is yours.`)
    : new ImportError(input, undefined, `is the archive of X account ${accountId}, which ${why}.`);
}

export async function importArchive(sql: Sql, input: string, options: ArchiveImportOptions = {}): Promise<ArchiveImportSummary> {
  const progress = options.progress ?? silentProgress;
  const started = performance.now();
  let source;
  try {
    source = await openArchiveSource(input, options.limits);
  } catch (error) {
    throw asImportError(error, input);
  }
  try {
    const accountFile = source.files.find((f) => f.kind === "account");
    const account = accountFile ? await readAccount(accountFile) : undefined;
    const accountId = account?.accountId ?? options.xAccountId;
    if (!accountId) {
      throw new ImportError(input, undefined, "has no data/account.js, so it does not say whose archive it is (give the whole archive, or --x-id).");
    }
    if (!isXAccountId(accountId)) throw new ImportError(input, undefined, `names an invalid X account id "${accountId}".`);
    if (account && options.xAccountId && options.xAccountId !== account.accountId) {
      throw new ImportError(input, undefined, `belongs to X account ${account.accountId}, not ${options.xAccountId}.`);
    }
    const dataFiles = source.files.filter((f) => f.kind === "following" || (f.kind === "follower" && !options.selfService));
    const totalBytes = dataFiles.reduce((n, f) => n + f.size, 0);

    const result = await sql.begin(async (tx) => {
      await tx`set local synchronous_commit = off`;
      const people = new People(tx);
      const identities = new Identities(tx);
      // Whose archive: the person holding this X id, else the uploader, else someone new.
      const existing = await identities.find({ platform: "x", stableId: accountId });
      let personId: number;
      let personCreated = false;
      if (existing) {
        if (options.personId !== undefined && existing.personId !== options.personId && existing.verifiedBy !== "archive") {
          throw claimRefused(input, accountId, "belongs to another person", options);
        }
        personId = options.personId ?? existing.personId;
      } else if (options.personId !== undefined) {
        if (!(await people.get(options.personId))) throw new ImportError(input, undefined, `--person ${options.personId}: no such person in the store.`);
        personId = options.personId;
      } else {
        personId = (await people.create()).id;
        personCreated = true;
      }
      if (options.selfService && existing?.personId !== personId) {
        const otherX = (await identities.listForPerson(personId)).find((i) => i.platform === "x");
        if (otherX) throw new ImportError(input, undefined, `names X account ${accountId}, but you already have X account ${otherX.handle ? `@${otherX.handle}` : otherX.stableId}: one X account per person.`);
        const [known] = await tx`select 1 from x_follow where follower = ${accountId}::bigint limit 1`;
        if (known) {
          throw claimRefused(input, accountId, "is already known from other data", options);
        }
      }
      try {
        await identities.attach(personId, {
          platform: "x",
          stableId: accountId,
          handle: account?.username ?? null,
          verifiedBy: "archive",
        });
      } catch (error) {
        if (error instanceof IdentityTakenError) {
          throw claimRefused(input, accountId, "belongs to another person", options);
        }
        throw error;
      }

      await tx`create temporary table archive_edge (follower bigint not null, followed bigint not null) on commit drop`;
      progress.phase("reading", totalBytes);
      const counts = { following: 0, follower: 0 };
      let bytesBefore = 0;
      for (const file of dataFiles) {
        const stream = await file.open().catch((e: unknown) => {
          throw asImportError(e, file.name);
        });
        const offset = bytesBefore;
        const rows = edgeRows(file, counted(stream, (read) => progress.tick(offset + read)), accountId, counts);
        const copy = await tx`copy archive_edge from stdin`.writable();
        try {
          await pipeline(Readable.from(rows), copy);
        } catch (error) {
          throw asImportError(error, file.name);
        }
        bytesBefore += file.size;
      }
      progress.phase("merging");
      const added = await mergeEdges(tx, accountId);
      progress.phase("matching");
      const matches = new Matches(tx);
      const matchesAdded = (await matches.refreshForFollowers([personId])) + (await matches.refreshForTargets([personId]));
      progress.end();
      return { personId, personCreated, edgesAdded: added, matchesAdded, ...counts };
    });
    return {
      source: input,
      xAccountId: accountId,
      xUsername: account?.username ?? null,
      personId: result.personId,
      personCreated: result.personCreated,
      followings: result.following,
      followers: result.follower,
      edgesAdded: result.edgesAdded,
      matchesAdded: result.matchesAdded,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await source.close();
  }
}

/**
 * Adds the edges of `archive_edge` that `x_follow` lacks. Every edge of an
 * archive touches its owner, so the ones already known (a re-upload) come
 * from two index range scans, and the rest go in by plain insert: measured
 * 0.45 s for 120k edges at 47M, against 0.7 s for INSERT … ON CONFLICT,
 * which probes the unique index once per row. An edge inserted by someone
 * else in between (a concurrent import) makes the plain insert fail: then
 * the probing insert runs instead.
 */
async function mergeEdges(tx: postgres.TransactionSql<{}>, accountId: string): Promise<number> {
  // The write lock first: taking the read lock first (for `known`) and then
  // waiting for the write lock behind a bulk edge import would deadlock with
  // that import's table swap.
  await tx`lock table x_follow in row exclusive mode`;
  try {
    const result = await tx.savepoint((sp) => sp`
      with known as materialized (
        select follower, followed from x_follow where follower = ${accountId}
        union all
        select follower, followed from x_follow where followed = ${accountId}
      )
      insert into x_follow (follower, followed)
      select distinct a.follower, a.followed from archive_edge a
      where not exists (select 1 from known k where k.follower = a.follower and k.followed = a.followed)
      order by 1, 2`);
    return result.count;
  } catch (error) {
    if ((error as { code?: string }).code !== "23505") throw error;
    const result = await tx`
      insert into x_follow (follower, followed)
      select distinct follower, followed from archive_edge
      order by 1, 2
      on conflict do nothing`;
    return result.count;
  }
}

/** COPY text rows (`follower\tfollowed\n`) for one data file, in batches. */
async function* edgeRows(
  file: ArchiveFile,
  stream: AsyncIterable<Buffer>,
  accountId: string,
  counts: { following: number; follower: number },
): AsyncGenerator<string> {
  const kind = file.kind as "following" | "follower";
  let batch = "";
  let n = 0;
  for await (const elements of readYtdBatches(stream, kind)) {
    for (const element of elements) {
      n++;
      const entry = (element as Record<string, unknown>)[kind] as { accountId?: unknown } | undefined;
      const id = entry && typeof entry === "object" ? entry.accountId : undefined;
      if (typeof id !== "string" || !isXAccountId(id)) {
        throw new ArchiveError(file.name, `entry ${n} has no valid "accountId".`);
      }
      if (id === accountId) continue; // nobody follows themselves on X: a wrong --x-id, or a damaged file
      batch += kind === "following" ? `${accountId}\t${id}\n` : `${id}\t${accountId}\n`;
      counts[kind]++;
    }
    if (batch.length >= 256 * 1024) {
      yield batch;
      batch = "";
    }
  }
  if (batch) yield batch;
}

/** Passes chunks through, reporting bytes read so far. */
async function* counted(stream: Readable, onBytes: (bytes: number) => void): AsyncGenerator<Buffer> {
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    onBytes(bytes);
    yield chunk;
  }
}

async function readAccount(file: ArchiveFile): Promise<AccountInfo> {
  try {
    for await (const element of readYtd(await file.open(), "account")) {
      const account = (element as { account?: { accountId?: unknown; username?: unknown } }).account;
      if (account && typeof account.accountId === "string") {
        const username = typeof account.username === "string" ? normalizeXUsername(account.username) : null;
        return { accountId: account.accountId, username };
      }
    }
  } catch (error) {
    throw asImportError(error, file.name);
  }
  throw new ImportError(file.name, undefined, "has no account entry with an accountId.");
}

/**
 * Errors met while reading one file of the archive, as one sentence naming
 * it. Database errors are not about the file and pass through unchanged.
 */
function asImportError(error: unknown, file: string): unknown {
  if (error instanceof ImportError) return error;
  if (error instanceof ArchiveError) return new ImportError(error.file, error.line, error.message);
  if (error instanceof YtdFormatError) return new ImportError(file, error.line, error.message);
  if (error instanceof postgres.PostgresError || !(error instanceof Error)) return error;
  // zlib and yauzl report damage in the stream itself (bad deflate data, a
  // size that does not match the header, a file cut short).
  return new ImportError(file, undefined, `cannot be unpacked (${error.message}); the archive may be truncated or damaged.`);
}
