/** What every import reports, and how it shows progress. */
import type { ArchiveProblem } from "../archive/problem.ts";

/** Receives progress; the CLI draws it on a terminal, tests ignore it. */
export interface Progress {
  /** A new phase begins; `total` in units when known (rows, bytes). */
  phase(name: string, total?: number): void;
  /** `done` units of the current phase are complete. */
  tick(done: number): void;
  end(): void;
}

export const silentProgress: Progress = { phase() {}, tick() {}, end() {} };

/**
 * A bad input: one sentence naming the file (and line when there is one),
 * after the zip or folder it is in when it is one of an archive's entries
 * (`archive.zip: data/following.js, line 7: …`); for an archive, also what
 * is wrong in words for the person who sent it.
 */
export class ImportError extends Error {
  readonly file: string;
  readonly line: number | undefined;
  readonly problem: ArchiveProblem | undefined;
  /** The zip or folder `file` is an entry of. */
  readonly archive: string | undefined;
  constructor(file: string, line: number | undefined, message: string, problem?: ArchiveProblem, archive?: string) {
    super(`${archive === undefined ? "" : `${archive}: `}${file}${line === undefined ? "" : `, line ${line}`}: ${message}`);
    this.name = "ImportError";
    this.file = file;
    this.line = line;
    this.problem = problem;
    this.archive = archive;
  }
}

export interface EdgeImportSummary {
  file: string;
  /** Data rows read. */
  rows: number;
  /** Edges new to the store. */
  added: number;
  /** Rows already in the store or repeated in the file. */
  duplicates: number;
  matchesAdded: number;
  seconds: number;
}

export interface RegistryImportSummary {
  file: string;
  rows: number;
  peopleCreated: number;
  peopleMerged: number;
  identitiesAdded: number;
  identitiesUpdated: number;
  /** Accounts a person had on a platform where the registry now names another. */
  identitiesReplaced: number;
  matchesAdded: number;
  seconds: number;
}

export interface ArchiveImportSummary {
  source: string;
  xAccountId: string;
  xUsername: string | null;
  personId: number;
  personCreated: boolean;
  followings: number;
  followers: number;
  edgesAdded: number;
  matchesAdded: number;
  seconds: number;
}
