/**
 * Where an X archive's data files come from: the zip X sends (read in place,
 * entry by entry), an unpacked folder, or a single data file. Only the files
 * the import needs are opened; media and the rest are never read.
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
  /** Largest ratio uncompressed/compressed accepted for a large zip entry. */
  maxCompressionRatio: number;
}

export const DEFAULT_LIMITS: ArchiveLimits = {
  // 150,000 followings take ~20 MB; 256 MB leaves room for any real account.
  maxFileBytes: 256 * 1024 * 1024,
  maxCompressionRatio: 100,
};

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

const DATA_FILE = /(?:^|\/)(account|following|follower)(?:-part(\d+))?\.js$/;

function classify(name: string): { kind: ArchiveFileKind; part: number } | undefined {
  const match = DATA_FILE.exec(name.replace(/\\/g, "/"));
  if (!match) return undefined;
  return { kind: match[1] as ArchiveFileKind, part: match[2] ? Number(match[2]) : 0 };
}

function ordered(files: ArchiveFile[]): ArchiveFile[] {
  const rank = { account: 0, following: 1, follower: 2 };
  return files.sort((a, b) => rank[a.kind] - rank[b.kind] || a.part - b.part);
}

/** Fails a stream that yields more than `max` bytes (a lying header, a bomb). */
function capped(stream: Readable, max: number, name: string, archive: string | undefined): Readable {
  let seen = 0;
  const guard = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      seen += chunk.length;
      if (seen > max) callback(tooLarge(name, max, archive));
      else callback(null, chunk);
    },
  });
  stream.on("error", (e) => guard.destroy(e));
  return stream.pipe(guard);
}

/** Opens `input`: a zip file, a folder (with or without `data/`), or one data file. */
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
  return { files: [diskFile(input, path.basename(input), info.size, limits)], close: async () => {} };
}

/** A data file on disk: `name` for messages, inside `archive` (a folder) when there is one. */
function diskFile(file: string, name: string, size: number, limits: ArchiveLimits, archive?: string): ArchiveFile {
  const kind = classify(name)!;
  return {
    name,
    ...(archive === undefined ? {} : { archive }),
    ...kind,
    size,
    async open() {
      if (size > limits.maxFileBytes) throw tooLarge(name, limits.maxFileBytes, archive);
      return capped(createReadStream(file, { highWaterMark: 1 << 20 }), limits.maxFileBytes, name, archive);
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
    for (const name of names) {
      if (!classify(name)) continue;
      const full = path.join(dir, name);
      const s = await stat(full);
      if (s.isFile()) files.push(diskFile(full, path.relative(folder, full), s.size, limits, folder));
    }
    if (files.length > 0) return { files: ordered(files), close: async () => {} };
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
      const fail = (e: Error) => {
        zip.close();
        reject(e instanceof ArchiveError ? e : new ArchiveError(file, `is a damaged zip file (${e.message}).`, { kind: "damaged" }));
      };
      zip.on("error", fail);
      zip.on("entry", (entry: yauzl.Entry) => {
        const kind = classify(entry.fileName);
        if (kind && !entry.fileName.endsWith("/")) {
          const name = entry.fileName;
          if (entry.uncompressedSize > limits.maxFileBytes) return fail(tooLarge(name, limits.maxFileBytes, file, " once unpacked"));
          if (entry.uncompressedSize > 1024 * 1024 && entry.uncompressedSize > entry.compressedSize * limits.maxCompressionRatio) {
            return fail(new ArchiveError(name, "is compressed beyond any real data file (a zip bomb?).", { kind: "zip-bomb" }, { archive: file }));
          }
          files.push({
            name,
            archive: file,
            ...kind,
            size: entry.uncompressedSize,
            open: () =>
              new Promise<Readable>((res, rej) =>
                zip.openReadStream(entry, (e, stream) => {
                  if (e || !stream) rej(new ArchiveError(name, `cannot be unpacked (${e?.message ?? "unreadable"}).`, { kind: "damaged" }, { archive: file }));
                  else res(capped(stream, limits.maxFileBytes, name, file));
                }),
              ),
          });
        }
        zip.readEntry();
      });
      zip.on("end", () => {
        if (files.length === 0) {
          zip.close();
          reject(new ArchiveError(file, "is a zip file but not an X archive (no data/account.js, following.js or follower.js inside).", { kind: "not-archive" }));
        } else {
          resolve({ files: ordered(files), close: async () => zip.close() });
        }
      });
      zip.readEntry();
    });
  });
}
