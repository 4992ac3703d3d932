/**
 * Where an X archive's data files come from: the zip X sends (read in place,
 * entry by entry), an unpacked folder, or a single data file. Only the files
 * the import needs are opened — the kinds its caller reads (ArchiveLimits.kinds);
 * media and the rest are never read, nor counted toward any limit.
 */
import { createReadStream } from "node:fs";
import { open as openFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { Transform, type Readable } from "node:stream";
import yauzl from "yauzl";
import type { ArchiveProblem } from "./problem.ts";

export type ArchiveFileKind = "account" | "following" | "follower";

export interface ArchiveFile {
  /** Path inside the archive (or on disk), for messages. */
  name: string;
  /** The zip or folder `name` is inside, as given; none for a lone data file. */
  archive?: string;
  kind: ArchiveFileKind;
  part: number;
  /** Uncompressed size in bytes, as declared. */
  size: number;
  open(): Promise<Readable>;
}

export interface ArchiveSource {
  /** The needed files: account first, then followings and followers by part. */
  files: ArchiveFile[];
  close(): Promise<void>;
}

export interface ArchiveLimits {
  /** Largest data file read (uncompressed). */
  maxFileBytes: number;
  /**
   * Largest ratio uncompressed/compressed accepted for a zip entry, and for
   * the zip's data files together (past RATIO_FLOOR bytes unpacked: smaller
   * ones, such as an empty list, compress as well as they like).
   */
  maxCompressionRatio: number;
  /** Most bytes read from all the data files together (uncompressed); DEFAULT_LIMITS' when not given. */
  maxTotalBytes?: number;
  /** Most data files of one kind (following.js and its -partN.js splits…); DEFAULT_LIMITS' when not given. */
  maxParts?: number;
  /**
   * The kinds of data file the caller reads (DEFAULT_LIMITS': all of them).
   * Only these are listed, counted toward the total and the parts, and
   * unpacked; the others are skipped like media (the upload page reads no
   * follower.js, however large).
   */
  kinds?: readonly ArchiveFileKind[];
}

export const DEFAULT_LIMITS: Required<ArchiveLimits> = {
  // 150,000 followings take ~20 MB; 256 MB leaves room for any real account.
  maxFileBytes: 256 * 1024 * 1024,
  // Real data files compress 10–20:1 (measured on X's layout).
  maxCompressionRatio: 100,
  // Followings and followers (the operator reads both) of any real account.
  maxTotalBytes: 1024 * 1024 * 1024,
  // X splits a data file in parts of many megabytes: a hundred is far past
  // any real archive, and a ceiling on what many small entries can add up to.
  maxParts: 100,
  // The operator's import reads followers too.
  kinds: ["account", "following", "follower"],
};

/** Unpacked bytes below which an entry, or a zip's data files together, are not judged by their compression ratio. */
const RATIO_FLOOR = 64 * 1024;

/**
 * A bad archive; `line` when the problem is at a place in a data file,
 * `archive` when `file` is an entry of a zip or folder (the zip or folder).
 */
export class ArchiveError extends Error {
  readonly file: string;
  readonly line: number | undefined;
  readonly archive: string | undefined;
  readonly problem: ArchiveProblem;
  constructor(file: string, message: string, problem: ArchiveProblem, where: { line?: number; archive?: string } = {}) {
    super(message);
    this.file = file;
    this.line = where.line;
    this.archive = where.archive;
    this.problem = problem;
  }
}

function tooLarge(name: string, max: number, archive: string | undefined, unpacked = ""): ArchiveError {
  const mb = Math.round(max / 1048576);
  return new ArchiveError(name, `is larger than ${mb} MB${unpacked} — far more than any X archive data file.`, { kind: "too-large", mb }, { archive });
}

/** `archive`'s data files of the `kinds` read add up past the total cap. */
function tooLargeInAll(archive: string, max: number, kinds: ReadonlySet<ArchiveFileKind>): ArchiveError {
  const mb = Math.round(max / 1048576);
  const names = (["account", "following", "follower"] as const).filter((k) => kinds.has(k)).map((k) => `${k}.js`);
  return new ArchiveError(
    archive,
    `holds data files (${names.join(", ")} and their -partN.js splits) of more than ${mb} MB in all once unpacked — far more than any X archive.`,
    { kind: "too-large-in-all", mb },
  );
}

function zipBomb(name: string, archive: string): ArchiveError {
  return new ArchiveError(name, "is compressed beyond any real data file (a zip bomb?).", { kind: "zip-bomb" }, { archive });
}

/** The zip's data files together are compressed beyond any real archive. */
function zipBombInAll(archive: string, ratio: number): ArchiveError {
  return new ArchiveError(
    archive,
    `is compressed beyond any real X archive: its data files together unpack to more than ${ratio} times their size (a zip bomb?).`,
    { kind: "zip-bomb" },
  );
}

/**
 * Counts `archive`'s data files by kind as they are listed: the error once
 * one kind has more than `max`.
 */
function partCounter(archive: string, max: number): (kind: ArchiveFileKind) => ArchiveError | undefined {
  const counts: Record<ArchiveFileKind, number> = { account: 0, following: 0, follower: 0 };
  return (kind) =>
    ++counts[kind] > max
      ? new ArchiveError(archive, `holds more than ${max} ${kind} data files (${kind}.js and its -partN.js splits) — far more than any X archive.`, {
          kind: "too-many-parts",
          max,
        })
      : undefined;
}

/**
 * What all of one source's data files may unpack to, and what they have so
 * far: checked as the bytes come, whatever the sizes declared.
 */
interface Budget {
  /** The zip or folder, for messages (a lone data file has no other data file to add up with). */
  archive: string;
  maxTotal: number;
  /** The kinds read: the only ones listed and counted. */
  kinds: ReadonlySet<ArchiveFileKind>;
  ratio: number;
  /** Bytes read so far, over all the data files. */
  read: number;
  /** For a zip: the compressed size of its data files together. */
  compressed?: number;
}

const DATA_FILE = /(?:^|\/)(account|following|follower)(?:-part(\d+))?\.js$/;

/** What data file `name` (a path in an archive, or a file's name) is, if it is one the import reads. */
export function classify(name: string): { kind: ArchiveFileKind; part: number } | undefined {
  const match = DATA_FILE.exec(name.replace(/\\/g, "/"));
  if (!match) return undefined;
  return { kind: match[1] as ArchiveFileKind, part: match[2] ? Number(match[2]) : 0 };
}

function ordered(files: ArchiveFile[]): ArchiveFile[] {
  const rank = { account: 0, following: 1, follower: 2 };
  return files.sort((a, b) => rank[a.kind] - rank[b.kind] || a.part - b.part);
}

/**
 * Fails a stream that yields more than `max` bytes (a lying header, a bomb),
 * that unpacks beyond the ratio from its `compressed` size (a zip entry),
 * or that takes its source's `budget` past its total or its ratio.
 */
function capped(
  stream: Readable,
  max: number,
  name: string,
  archive: string | undefined,
  budget?: Budget,
  compressed?: number,
): Readable {
  let seen = 0;
  const guard = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      seen += chunk.length;
      if (seen > max) return callback(tooLarge(name, max, archive));
      if (budget) {
        budget.read += chunk.length;
        if (compressed !== undefined && seen > RATIO_FLOOR && seen > compressed * budget.ratio) return callback(zipBomb(name, budget.archive));
        if (budget.read > budget.maxTotal) return callback(tooLargeInAll(budget.archive, budget.maxTotal, budget.kinds));
        if (budget.compressed !== undefined && budget.read > RATIO_FLOOR && budget.read > budget.compressed * budget.ratio) {
          return callback(zipBombInAll(budget.archive, budget.ratio));
        }
      }
      callback(null, chunk);
    },
  });
  stream.on("error", (e) => guard.destroy(e));
  return stream.pipe(guard);
}

function budgetFor(archive: string, limits: ArchiveLimits): Budget {
  return {
    archive,
    maxTotal: limits.maxTotalBytes ?? DEFAULT_LIMITS.maxTotalBytes,
    kinds: kindsRead(limits),
    ratio: limits.maxCompressionRatio,
    read: 0,
  };
}

/** The kinds of data file `limits`' caller reads. */
function kindsRead(limits: ArchiveLimits): ReadonlySet<ArchiveFileKind> {
  return new Set(limits.kinds ?? DEFAULT_LIMITS.kinds);
}

/**
 * Opens `input`: a zip file, a folder (with or without `data/`), or one data
 * file, listing the data files of the kinds `limits` reads (a lone data file
 * of another kind lists none).
 */
export async function openArchiveSource(input: string, limits: ArchiveLimits = DEFAULT_LIMITS): Promise<ArchiveSource> {
  let info;
  try {
    info = await stat(input);
  } catch {
    throw new ArchiveError(input, "cannot be read (no such file or folder, or no permission).", { kind: "not-archive" });
  }
  if (info.isDirectory()) return openFolder(input, limits);
  if (!info.isFile()) throw new ArchiveError(input, "is not a file or a folder.", { kind: "not-archive" });
  const head = Buffer.alloc(4);
  const handle = await openFile(input, "r");
  try {
    await handle.read(head, 0, 4, 0);
  } finally {
    await handle.close();
  }
  if (head.readUInt32LE(0) === 0x04034b50 || head.readUInt32LE(0) === 0x06054b50) return openZip(input, limits);
  const kind = classify(path.basename(input));
  if (!kind) {
    throw new ArchiveError(
      input,
      "is not an X archive: give the .zip X sent you, its unpacked folder, or a data file such as following.js.",
      { kind: "not-archive" },
    );
  }
  if (!kindsRead(limits).has(kind.kind)) return { files: [], close: async () => {} };
  return { files: [diskFile(input, path.basename(input), info.size, limits)], close: async () => {} };
}

/** A data file on disk: `name` for messages, inside `archive` (a folder, whose `budget` it counts in) when there is one. */
function diskFile(file: string, name: string, size: number, limits: ArchiveLimits, archive?: string, budget?: Budget): ArchiveFile {
  const kind = classify(name)!;
  return {
    name,
    ...(archive === undefined ? {} : { archive }),
    ...kind,
    size,
    async open() {
      if (size > limits.maxFileBytes) throw tooLarge(name, limits.maxFileBytes, archive);
      return capped(createReadStream(file, { highWaterMark: 1 << 20 }), limits.maxFileBytes, name, archive, budget);
    },
  };
}

async function openFolder(folder: string, limits: ArchiveLimits): Promise<ArchiveSource> {
  const candidates = [path.join(folder, "data"), folder];
  for (const dir of candidates) {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      continue;
    }
    const files: ArchiveFile[] = [];
    const budget = budgetFor(folder, limits);
    const tooMany = partCounter(folder, limits.maxParts ?? DEFAULT_LIMITS.maxParts);
    let total = 0;
    // Data files of a kind not read: an archive all the same, with nothing to read in it.
    let skipped = false;
    for (const name of names) {
      const kind = classify(name);
      if (!kind) continue;
      const full = path.join(dir, name);
      const s = await stat(full);
      if (!s.isFile()) continue;
      if (!budget.kinds.has(kind.kind)) {
        skipped = true;
        continue;
      }
      const refused = tooMany(kind.kind);
      if (refused) throw refused;
      total += s.size;
      if (total > budget.maxTotal) throw tooLargeInAll(folder, budget.maxTotal, budget.kinds);
      files.push(diskFile(full, path.relative(folder, full), s.size, limits, folder, budget));
    }
    if (files.length > 0 || skipped) return { files: ordered(files), close: async () => {} };
  }
  throw new ArchiveError(folder, "holds no X archive data (no data/account.js, following.js or follower.js).", { kind: "not-archive" });
}

function openZip(file: string, limits: ArchiveLimits): Promise<ArchiveSource> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, autoClose: false, validateEntrySizes: true, strictFileNames: false }, (error, zip) => {
      if (error || !zip) {
        reject(new ArchiveError(file, `is not a complete zip file (${error?.message ?? "unreadable"}); it may be truncated or damaged.`, { kind: "damaged" }));
        return;
      }
      const files: ArchiveFile[] = [];
      const budget: Budget = { ...budgetFor(file, limits), compressed: 0 };
      const tooMany = partCounter(file, limits.maxParts ?? DEFAULT_LIMITS.maxParts);
      // Declared sizes: checked before anything is read (yauzl holds each entry to its own).
      let unpacked = 0;
      // Data files of a kind not read: neither counted nor unpacked, but an X archive all the same.
      let skipped = false;
      const fail = (e: Error) => {
        zip.close();
        reject(e instanceof ArchiveError ? e : new ArchiveError(file, `is a damaged zip file (${e.message}).`, { kind: "damaged" }));
      };
      zip.on("error", fail);
      zip.on("entry", (entry: yauzl.Entry) => {
        const kind = classify(entry.fileName);
        if (kind && !entry.fileName.endsWith("/") && !budget.kinds.has(kind.kind)) skipped = true;
        else if (kind && !entry.fileName.endsWith("/")) {
          const name = entry.fileName;
          const refused = tooMany(kind.kind);
          if (refused) return fail(refused);
          if (entry.uncompressedSize > limits.maxFileBytes) return fail(tooLarge(name, limits.maxFileBytes, file, " once unpacked"));
          if (entry.uncompressedSize > RATIO_FLOOR && entry.uncompressedSize > entry.compressedSize * limits.maxCompressionRatio) {
            return fail(zipBomb(name, file));
          }
          unpacked += entry.uncompressedSize;
          budget.compressed! += entry.compressedSize;
          if (unpacked > budget.maxTotal) return fail(tooLargeInAll(file, budget.maxTotal, budget.kinds));
          const compressed = entry.compressedSize;
          files.push({
            name,
            archive: file,
            ...kind,
            size: entry.uncompressedSize,
            open: () =>
              new Promise<Readable>((res, rej) =>
                zip.openReadStream(entry, (e, stream) => {
                  if (e || !stream) rej(new ArchiveError(name, `cannot be unpacked (${e?.message ?? "unreadable"}).`, { kind: "damaged" }, { archive: file }));
                  else res(capped(stream, limits.maxFileBytes, name, file, budget, compressed));
                }),
              ),
          });
        }
        zip.readEntry();
      });
      zip.on("end", () => {
        if (files.length === 0 && !skipped) {
          zip.close();
          reject(new ArchiveError(file, "is a zip file but not an X archive (no data/account.js, following.js or follower.js inside).", { kind: "not-archive" }));
        } else if (unpacked > RATIO_FLOOR && unpacked > budget.compressed! * limits.maxCompressionRatio) {
          fail(zipBombInAll(file, limits.maxCompressionRatio));
        } else {
          resolve({ files: ordered(files), close: async () => zip.close() });
        }
      });
      zip.readEntry();
    });
  });
}
