/**
 * What is wrong with an archive, in words a person can act on. Every error
 * of the archive reader carries one; the upload page says it in the
 * person's language (src/conversation/i18n), while the operator's CLI
 * prints the reader's English sentence, which says more.
 */
export type ArchiveProblem =
  /** Not a zip, folder or data file of an X archive. */
  | { kind: "not-archive" }
  /** No data/account.js: nothing says whose archive it is. */
  | { kind: "no-account" }
  /** data/account.js names no valid X account. */
  | { kind: "bad-account" }
  /** The archive of another X account than the person's own (`yours`: @username or id). */
  | { kind: "other-account"; yours: string }
  /** A data file larger than any real one, once unpacked. */
  | { kind: "too-large"; mb: number }
  /** The data files read, together, past `mb` once unpacked (each may be under the cap for one). */
  | { kind: "too-large-in-all"; mb: number }
  /** Compressed beyond any real data file (a zip bomb). */
  | { kind: "zip-bomb" }
  /** More following (or follower, or account) files than any X archive has. */
  | { kind: "too-many-parts"; max: number }
  /** Cut short or damaged: a download to do again. */
  | { kind: "damaged" }
  /** A data file whose content is not what X writes. */
  | { kind: "bad-content" };
