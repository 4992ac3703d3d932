/**
 * `reconnexion import archive <zip|folder|file>`: a real X archive. The
 * account comes from data/account.js; followings and followers stream from
 * their (possibly split) data files straight into COPY, one entry in memory
 * at a time. Everything lands in one transaction. Sent by a person through
 * the upload page (`selfService`), the follows become that person's uploaded
 * archive instead, apart from the shared graph (src/store/uploaded-archives.ts).
 */
import { Readable } from "node:stream";
import postgres from "postgres";
import { pipeline } from "node:stream/promises";
import { ArchiveError, openArchiveSource, type ArchiveFile, type ArchiveLimits } from "../archive/source.ts";
import { readYtd, readYtdEntries, YtdFormatError } from "../archive/ytd-parser.ts";
import type { Sql } from "../store/database.ts";
import type { Queryable } from "../store/types.ts";
import { isXAccountId, normalizeXUsername } from "../store/handles.ts";
import { Identities, IdentityTakenError } from "../store/identities.ts";
import { Matches } from "../store/matches.ts";
import { lockEdgesBeforePeople } from "../store/lock-order.ts";
import { People } from "../store/people.ts";
import { UploadedArchives } from "../store/uploaded-archives.ts";
import { ImportError, silentProgress, type ArchiveImportSummary, type Progress } from "./types.ts";

export interface ArchiveImportOptions {
  progress?: Progress;
  /** Attach the archive to this person (an upload by someone the bot knows). */
  personId?: number;
  /** Whose archive it is, when only a following.js/follower.js is given. */
  xAccountId?: string;
  limits?: ArchiveLimits;
  /**
   * Sent by person `personId` through the upload page, not by the operator:
   * an archive proves nothing (anyone can write one), so it claims no X
   * account and stays out of the shared graph. Its follows become the
   * person's uploaded archive (src/store/uploaded-archives.ts), replacing an
   * earlier one, for their own matching only; its follower.js is left out
   * (those edges would only ever serve other people).
   */
  selfService?: boolean;
}

interface AccountInfo {
  accountId: string;
  username: string | null;
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
      throw new ImportError(input, undefined, "has no data/account.js, so it does not say whose archive it is (give the whole archive, or --x-id).", { kind: "no-account" });
    }
    if (!isXAccountId(accountId)) throw new ImportError(input, undefined, `names an invalid X account id "${accountId}".`, { kind: "bad-account" });
    if (account && options.xAccountId && options.xAccountId !== account.accountId) {
      throw new ImportError(input, undefined, `belongs to X account ${account.accountId}, not ${options.xAccountId}.`);
    }
    const dataFiles = source.files.filter((f) => f.kind === "following" || (f.kind === "follower" && !options.selfService));
    const totalBytes = dataFiles.reduce((n, f) => n + f.size, 0);

    // Before reading: a wrong upload is refused before its data is read.
    if (options.selfService) await checkUploader(sql, input, accountId, options);
    const result = await sql.begin(async (tx) => {
      await tx`set local synchronous_commit = off`;
      // The data first, into a temporary table, before any lock: nobody waits
      // for the reading (up to 64 MB inflated and parsed), and no person or
      // identity is held while this waits for the edges' table (lock-order.ts).
      await tx`create temporary table archive_edge (follower bigint not null, followed bigint not null) on commit drop`;
      progress.phase("reading", totalBytes);
      const counts = { following: 0, follower: 0 };
      let bytesBefore = 0;
      for (const file of dataFiles) {
        const stream = await file.open().catch((e: unknown) => {
          throw asImportError(e, file);
        });
        const offset = bytesBefore;
        const rows = edgeRows(file, counted(stream, (read) => progress.tick(offset + read)), accountId, counts);
        const copy = await tx`copy archive_edge from stdin`.writable();
        try {
          await pipeline(Readable.from(rows), copy);
        } catch (error) {
          throw asImportError(error, file);
        }
        bytesBefore += file.size;
      }
      progress.phase("merging");
      const { personId, personCreated } = options.selfService
        ? { personId: await uploader(tx, input, accountId, options), personCreated: false }
        : await claimant(tx, input, accountId, account?.username ?? null, options);
      const matches = new Matches(tx);
      let added: number;
      let matchesAdded: number;
      if (options.selfService) {
        added = await new UploadedArchives(tx).replace(personId, { xAccountId: accountId, xUsername: account?.username ?? null }, "archive_edge");
        progress.phase("matching");
        // What an earlier upload alone found, and this one no longer lists, goes.
        await matches.prune([personId]);
        matchesAdded = await matches.refreshForFollowers([personId]);
      } else {
        added = await mergeEdges(tx, accountId);
        progress.phase("matching");
        matchesAdded = (await matches.refreshForFollowers([personId])) + (await matches.refreshForTargets([personId]));
      }
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
 * Whose archive, for the operator: the person holding its X account, else
 * `options.personId`, else someone new; the account is claimed for them
 * (verified by archive: their own matching only, until the registry or a
 * DM confirms it).
 */
async function claimant(
  tx: postgres.TransactionSql<{}>,
  input: string,
  accountId: string,
  username: string | null,
  options: ArchiveImportOptions,
): Promise<{ personId: number; personCreated: boolean }> {
  // The edges' write lock first: before the identity it updates (lock-order.ts),
  // and before mergeEdges reads them (taking the read lock first and then
  // waiting for the write lock behind a bulk edge import would deadlock with
  // that import's table swap).
  await tx`lock table x_follow in row exclusive mode`;
  const people = new People(tx);
  const identities = new Identities(tx);
  const existing = await identities.find({ platform: "x", stableId: accountId });
  let personId: number;
  let personCreated = false;
  if (existing) {
    if (options.personId !== undefined && existing.personId !== options.personId && existing.verifiedBy !== "archive") {
      throw new ImportError(input, undefined, `is the archive of X account ${accountId}, which belongs to another person.`);
    }
    personId = options.personId ?? existing.personId;
  } else if (options.personId !== undefined) {
    if (!(await people.get(options.personId))) throw new ImportError(input, undefined, `--person ${options.personId}: no such person in the store.`);
    personId = options.personId;
  } else {
    personId = (await people.create()).id;
    personCreated = true;
  }
  try {
    await identities.attach(personId, { platform: "x", stableId: accountId, handle: username, verifiedBy: "archive" });
  } catch (error) {
    if (error instanceof IdentityTakenError) {
      throw new ImportError(input, undefined, `is the archive of X account ${accountId}, which belongs to another person.`);
    }
    throw error;
  }
  return { personId, personCreated };
}

/**
 * Whose upload: the person who sent it. It claims nothing, so whichever X
 * account it names is taken as theirs to match from; only one that differs
 * from an X account the person already has is refused (a wrong file, most
 * likely), naming only their own account.
 */
async function checkUploader(db: Queryable, input: string, accountId: string, options: ArchiveImportOptions): Promise<number> {
  const personId = options.personId;
  if (personId === undefined) throw new Error("An uploaded archive needs the person who sent it (options.personId).");
  const ownX = (await new Identities(db).listForPerson(personId)).find((i) => i.platform === "x" && i.stableId !== accountId);
  if (ownX) {
    const yours = ownX.handle ? `@${ownX.handle}` : ownX.stableId!;
    throw new ImportError(input, undefined, `is the archive of X account ${accountId}, but yours is ${yours}: upload that account's archive.`, { kind: "other-account", yours });
  }
  return personId;
}

/** The uploader, held until the upload is in (a merge or a `forget` meanwhile waits), and checked again. */
async function uploader(tx: postgres.TransactionSql<{}>, input: string, accountId: string, options: ArchiveImportOptions): Promise<number> {
  // Its matches are derived from the edges too: see src/store/lock-order.ts.
  await lockEdgesBeforePeople(tx);
  if (!(await new People(tx).lockForUpdate(options.personId!))) throw new ImportError(input, undefined, "was sent for a person no longer in the store.");
  return checkUploader(tx, input, accountId, options);
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
  // The write lock on x_follow is held already: see claimant.
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
  for await (const { elements, lines } of readYtdEntries(stream, kind)) {
    for (const [i, element] of elements.entries()) {
      n++;
      const entry = (element as Record<string, unknown>)[kind] as { accountId?: unknown } | undefined;
      const id = entry && typeof entry === "object" ? entry.accountId : undefined;
      if (typeof id !== "string" || !isXAccountId(id)) {
        throw new ArchiveError(file.name, `entry ${n} has no valid "accountId".`, { kind: "bad-content" }, { line: lines[i], archive: file.archive });
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
    throw asImportError(error, file);
  }
  throw new ImportError(file.name, undefined, "has no account entry with an accountId.", { kind: "bad-account" }, file.archive);
}

/**
 * Errors met while opening the archive or reading one of its files, as one
 * sentence naming it (after its zip or folder). Database errors are not
 * about the file and pass through unchanged.
 */
function asImportError(error: unknown, file: string | ArchiveFile): unknown {
  const { name, archive } = typeof file === "string" ? { name: file, archive: undefined } : file;
  if (error instanceof ImportError) return error;
  if (error instanceof ArchiveError) return new ImportError(error.file, error.line, error.message, error.problem, error.archive);
  if (error instanceof YtdFormatError) return new ImportError(name, error.line, error.message, error.problem, archive);
  if (error instanceof postgres.PostgresError || !(error instanceof Error)) return error;
  // zlib and yauzl report damage in the stream itself (bad deflate data, a
  // size that does not match the header, a file cut short).
  return new ImportError(name, undefined, `cannot be unpacked (${error.message}); the archive may be truncated or damaged.`, { kind: "damaged" }, archive);
}
