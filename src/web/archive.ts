/**
 * The page behind the `archive` command's one-time link:
 *
 *   GET  /archive/:token   a form: the X archive's .zip, or its data files
 *   POST /archive/:token   the upload (multipart), imported for the link's
 *                          person; the link is used up once it is in
 *
 * The upload is streamed to a temporary folder under DATA_DIR (never held
 * in memory) with a size cap, one upload at a time per person and a few at
 * once in all, then read by the same importer as `reconnexion import archive`
 * (streamed, all-or-nothing, zip bombs refused) in its self-service mode;
 * the folder is removed before the answer. An upload claims no X account:
 * its follows are kept apart as the uploader's own (uploaded_archive), for
 * their matching only, and a later upload replaces them.
 */
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { Transform, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import busboy from "busboy";
import { Router, type Request, type Response } from "express";
import type { Sql } from "postgres";
import type { Config } from "../config.ts";
import type { Locale } from "../conversation/i18n/index.ts";
import { classify, DEFAULT_LIMITS, type ArchiveFileKind, type ArchiveLimits } from "../archive/source.ts";
import { importArchive } from "../import/archive.ts";
import { ImportError } from "../import/types.ts";
import type { Logger } from "../logger.ts";
import type { Store } from "../store/index.ts";
import { html, prose, type SafeHtml } from "./html.ts";
import { linkPageLocale, sendLinkPage } from "./link-page.ts";

export interface ArchiveUploadContext {
  store: Store;
  sql: Sql;
  config: Config;
  log: Logger;
  /** The largest upload taken, in bytes (default 512 MiB: a whole archive with its media can be larger; its data files are small). */
  maxUploadBytes?: number;
  /** Where uploads are kept while they are read (default `DATA_DIR/uploads`: on disk, not in a tmpfs). */
  uploadDir?: string;
  /** Uploads read at once, over all people (default 4); one at a time per person. */
  maxConcurrentUploads?: number;
}

const DEFAULT_MAX_UPLOAD = 512 * 1024 * 1024;
/**
 * What an uploaded archive's data files may weigh (150,000 followings take
 * ~20 MB), each and together, and which are read: its follower.js (and
 * parts) is left out (src/import/archive.ts, selfService), so neither
 * counted toward these limits nor unpacked, however many followers.
 */
const UPLOAD_LIMITS = {
  ...DEFAULT_LIMITS,
  maxFileBytes: 64 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
  kinds: ["account", "following"],
} satisfies ArchiveLimits;
/** The data files an upload is read for (UPLOAD_LIMITS.kinds). */
const UPLOAD_KINDS: ReadonlySet<ArchiveFileKind> = new Set(UPLOAD_LIMITS.kinds);

/** What the form brought: where it was saved, and the names the person gave. */
interface Upload {
  folder: string;
  /** The first .zip, saved; `zipCount` says how many came. */
  zips: { saved: string; name: string }[];
  zipCount: number;
  /** Data files saved. */
  dataFiles: number;
  tooLarge: boolean;
  /** More files of one kind (following-partN.js…) than UPLOAD_LIMITS.maxParts: the rest was not saved. */
  tooManyParts: boolean;
}

class UploadError extends Error {}

/**
 * Saves the form's files under `folder`: the first .zip as is, and the data
 * files the import reads (account.js, following.js and its -partN.js) as
 * `data/<name>`, up to UPLOAD_LIMITS.maxParts of a kind; anything else —
 * the rest of an X archive's data/ folder, picked whole — is read past,
 * unsaved (so only the bytes count, not the number of files). Stops
 * reading, marked too large, once the whole request passes `maxBytes`.
 */
async function receive(req: Request, folder: string, maxBytes: number): Promise<Upload> {
  const upload: Upload = { folder, zips: [], zipCount: 0, dataFiles: 0, tooLarge: false, tooManyParts: false };
  const kinds: Record<ArchiveFileKind, number> = { account: 0, following: 0, follower: 0 };
  await mkdir(path.join(folder, "data"));
  let parser: busboy.Busboy;
  try {
    parser = busboy({ headers: req.headers, limits: { fileSize: maxBytes, fields: 0 } });
  } catch (error) {
    // Not a multipart form at all.
    throw new UploadError(error instanceof Error ? error.message : String(error));
  }
  const writes: Promise<void>[] = [];
  const files: Readable[] = [];
  // A file cut off (the sender went away, the form ended early) fails: noted here, never left unhandled.
  let failure: unknown;
  const fail = (error: unknown) => void (failure ??= error);
  parser.on("file", (_field, stream, info) => {
    stream.on("error", fail);
    stream.on("limit", () => (upload.tooLarge = true));
    // Only the base name, and only safe characters: the name never leaves the folder.
    const name = path.basename(info.filename ?? "").replace(/[^A-Za-z0-9._-]/g, "_");
    const kind = classify(name)?.kind;
    let target: string | undefined;
    if (/\.zip$/i.test(name)) {
      // A second one is refused anyway: counted, not kept.
      if (upload.zipCount++ === 0) {
        target = path.join(folder, "upload-0.zip");
        upload.zips.push({ saved: target, name });
      }
    } else if (kind && UPLOAD_KINDS.has(kind)) {
      if (++kinds[kind] > UPLOAD_LIMITS.maxParts) {
        upload.tooManyParts = true;
      } else {
        target = path.join(folder, "data", name);
        upload.dataFiles++;
      }
    }
    if (!target) {
      stream.resume();
      return;
    }
    files.push(stream);
    // `wx`: two files of one name are a refusal, not a mix of both.
    // A write that fails leaves its file unread: the whole form stops there, or it would never end.
    writes.push(
      pipeline(stream, createWriteStream(target, { flags: "wx" })).catch((error: unknown) => {
        fail(error);
        parser.destroy(error instanceof Error ? error : new Error(String(error)));
      }),
    );
  });
  // The whole request counts, not each file: past the cap, reading stops.
  let total = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      total += chunk.length;
      if (total > maxBytes) {
        upload.tooLarge = true;
        done(new UploadError("too large"));
      } else done(null, chunk);
    },
  });
  const parsed = await pipeline(req, counted, parser).then(
    () => undefined,
    (error: unknown) => error,
  );
  // A form cut off leaves its last file open: close it, so its write ends.
  if (parsed) for (const file of files) file.destroy(new Error("upload cut off"));
  await Promise.all(writes);
  if (upload.tooLarge) return upload;
  const failed = parsed ?? failure;
  if (failed) throw new UploadError(failed instanceof Error ? failed.message : String(failed));
  return upload;
}

/** Removes upload folders older than an hour (a request never lasts that long). */
async function sweepStale(uploadDir: string): Promise<void> {
  const entries = await readdir(uploadDir).catch(() => [] as string[]);
  for (const entry of entries.filter((e) => e.startsWith("archive-"))) {
    const folder = path.join(uploadDir, entry);
    const info = await stat(folder).catch(() => undefined);
    if (info && Date.now() - info.mtimeMs > 3600_000) await rm(folder, { recursive: true, force: true });
  }
}

export function archiveRoutes(ctx: ArchiveUploadContext): Router {
  const router = Router();
  const maxBytes = ctx.maxUploadBytes ?? DEFAULT_MAX_UPLOAD;
  const uploadDir = ctx.uploadDir ?? path.join(ctx.config.dataDir, "uploads");
  const maxConcurrent = ctx.maxConcurrentUploads ?? 4;
  // Uploads under way, by person: disk and CPU stay bounded whatever the senders do.
  const inFlight = new Set<number>();
  // What a process that died mid-upload left behind.
  void sweepStale(uploadDir).catch((error: unknown) => ctx.log.warn({ err: error }, "archive uploads: could not sweep old folders"));

  const localeFor = (req: Request, personId: number | undefined) => linkPageLocale(ctx.store, ctx.config.defaultLanguage, req, personId);
  const page = sendLinkPage;

  function invalid(res: Response, locale: Locale): void {
    const command = locale.commands.archive.words[0]!;
    page(res, locale, locale.web.archiveTitle, html`<p>${prose(locale.web.archiveLinkInvalid(command))}</p>`, 410);
  }

  function form(locale: Locale, error?: SafeHtml): SafeHtml {
    return html`${error ? html`<p class="error">${error}</p>` : ""}<p>${prose(locale.web.archiveIntro)}</p>
      <form method="post" enctype="multipart/form-data">
        <label for="archive">${locale.web.archiveLabel}</label>
        <input id="archive" type="file" name="archive" accept=".zip,.js" multiple required>
        <p><button type="submit">${locale.web.archiveButton}</button></p>
      </form>`;
  }

  router.get("/archive/:token", async (req, res) => {
    const grant = await ctx.store.webLinks.peek(req.params.token, "archive");
    const locale = await localeFor(req, grant?.personId);
    if (!grant) return invalid(res, locale);
    page(res, locale, locale.web.archiveTitle, form(locale));
  });

  /** Reads and imports one upload into `folder`; returns the reply, sent once the folder is gone. */
  async function accept(req: Request, res: Response, token: string, personId: number, locale: Locale, folder: string): Promise<() => void> {
    // A refused form may not have been read to its end: the connection is not kept for another request.
    const refuse = (status: number, message: string) => () => {
      res.set("Connection", "close");
      page(res, locale, locale.web.archiveTitle, form(locale, prose(message)), status);
    };
    let upload: Upload;
    try {
      upload = await receive(req, folder, maxBytes);
    } catch (error) {
      if (!(error instanceof UploadError)) throw error;
      return refuse(400, locale.web.archiveNothing);
    }
    if (upload.tooLarge) {
      return refuse(413, locale.web.archiveTooLarge(Math.round(maxBytes / (1024 * 1024))));
    }
    if (upload.tooManyParts) {
      return refuse(400, locale.web.archiveRefused({ kind: "too-many-parts", max: UPLOAD_LIMITS.maxParts }, undefined, undefined));
    }
    // All in: reading it says nothing on the connection for a while, which
    // the server's idle timeout (src/main.ts) must not take for a stalled client.
    req.socket.setTimeout(0);
    // One zip, read as it came, or the data files.
    const oneZip = upload.zipCount === 1 && upload.dataFiles === 0;
    if (!oneZip && (upload.zipCount > 0 || upload.dataFiles === 0)) return refuse(400, locale.web.archiveNothing);
    // Forgotten (`forget`) while the upload came in: the link went with the person.
    if (!(await ctx.store.people.get(personId))) return () => invalid(res, locale);
    let summary;
    try {
      summary = await importArchive(ctx.sql, oneZip ? upload.zips[0]!.saved : folder, { personId, selfService: true, limits: UPLOAD_LIMITS });
    } catch (error) {
      if (!(error instanceof ImportError)) throw error;
      // Merged into another person or forgotten just now: this link is theirs no more.
      if (!(await ctx.store.people.get(personId))) return () => invalid(res, locale);
      // The names the person gave instead of ours: in the page, and in the reader's sentence for the log.
      const given = (text: string) => {
        for (const zip of upload.zips) text = text.replaceAll(zip.saved, zip.name);
        return text.replaceAll(`${folder}${path.sep}`, "").replaceAll(folder, locale.web.archiveLabel);
      };
      ctx.log.info({ person: personId, reason: given(error.message) }, "archive upload refused");
      // The folder stands for the files as a whole.
      return refuse(400, locale.web.archiveRefused(error.problem, error.file === folder ? undefined : given(error.file), error.line));
    }
    // In: the link is used up (had it expired meanwhile, the archive is in all the same).
    await ctx.store.webLinks.consume(token, "archive");
    const counts = await ctx.store.matches.counts(personId);
    ctx.log.info({ person: personId, followings: summary.followings, followers: summary.followers }, "archive uploaded");
    const done = locale.web.archiveDone({
      username: summary.xUsername,
      followings: summary.followings,
      found: { bluesky: counts.bluesky.total, fediverse: counts.fediverse.total },
      listCommand: locale.commands.list.words[0]!,
    });
    return () => page(res, locale, locale.web.archiveDoneTitle, html`<p>${prose(done)}</p>`);
  }

  router.post("/archive/:token", async (req, res) => {
    const token = req.params.token;
    const grant = await ctx.store.webLinks.peek(token, "archive");
    const locale = await localeFor(req, grant?.personId);
    if (!grant) {
      res.set("Connection", "close");
      return invalid(res, locale);
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > maxBytes) {
      res.set("Connection", "close");
      return page(res, locale, locale.web.archiveTitle, form(locale, prose(locale.web.archiveTooLarge(Math.round(maxBytes / (1024 * 1024))))), 413);
    }
    if (inFlight.has(grant.personId) || inFlight.size >= maxConcurrent) {
      res.set({ "Retry-After": "30", Connection: "close" });
      return page(res, locale, locale.web.archiveTitle, form(locale, prose(locale.web.archiveBusy)), 429);
    }
    inFlight.add(grant.personId);
    let reply: () => void;
    try {
      await mkdir(uploadDir, { recursive: true });
      const folder = await mkdtemp(path.join(uploadDir, "archive-"));
      try {
        reply = await accept(req, res, token, grant.personId, locale, folder);
      } finally {
        await rm(folder, { recursive: true, force: true });
      }
    } finally {
      inFlight.delete(grant.personId);
    }
    reply();
  });

  return router;
}
