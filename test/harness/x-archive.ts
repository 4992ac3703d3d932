/**
 * Builds X archives the way X does: a zip holding `data/account.js`,
 * `data/following.js`, `data/follower.js` (split into `-partN.js` files past
 * a size), and some media to skip, each a `window.YTD.<name>.partN = [...]`
 * script with X's own spacing.
 */
import { createWriteStream } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import yazl from "yazl";

export interface ArchiveSpec {
  accountId: string;
  username: string;
  followings: readonly string[];
  followers?: readonly string[];
  /** Entries per data file before X splits into -part1.js, -part2.js… */
  perPart?: number;
}

function ytd(section: string, part: number, entries: string[]): string {
  return `window.YTD.${section}.part${part} = [ ${entries.join(", ")} ]`;
}

function relation(kind: "following" | "follower", id: string): string {
  return `{\n  "${kind}" : {\n    "accountId" : "${id}",\n    "userLink" : "https://twitter.com/intent/user?user_id=${id}"\n  }\n}`;
}

/** The data files of an archive, by path inside it. */
export function archiveFiles(spec: ArchiveSpec): Map<string, string> {
  const files = new Map<string, string>();
  files.set(
    "data/account.js",
    ytd("account", 0, [
      `{\n  "account" : {\n    "email" : "someone@example.com",\n    "createdVia" : "web",\n    "username" : "${spec.username}",\n    "accountId" : "${spec.accountId}",\n    "createdAt" : "2010-03-04T05:06:07.000Z",\n    "accountDisplayName" : "Ça va — 😀"\n  }\n}`,
    ]),
  );
  for (const kind of ["following", "follower"] as const) {
    const ids = (kind === "following" ? spec.followings : spec.followers) ?? [];
    const perPart = spec.perPart ?? Number.POSITIVE_INFINITY;
    const parts = Math.max(1, Math.ceil(ids.length / perPart));
    for (let p = 0; p < parts; p++) {
      const slice = ids.slice(p * perPart, Number.isFinite(perPart) ? (p + 1) * perPart : undefined);
      files.set(`data/${kind}${p === 0 ? "" : `-part${p}`}.js`, ytd(kind, p, slice.map((id) => relation(kind, id))));
    }
  }
  files.set("data/manifest.js", `window.__THAR_CONFIG = {}`);
  files.set("Your archive.html", "<html><body>archive</body></html>");
  return files;
}

/** Writes the archive as a zip at `file`. */
export async function writeArchiveZip(file: string, spec: ArchiveSpec, extra: Record<string, string | Buffer> = {}): Promise<string> {
  const zip = new yazl.ZipFile();
  for (const [name, text] of archiveFiles(spec)) zip.addBuffer(Buffer.from(text), name);
  zip.addBuffer(Buffer.alloc(4096, 7), "data/tweets_media/123-abc.jpg", { compress: false });
  for (const [name, body] of Object.entries(extra)) zip.addBuffer(Buffer.isBuffer(body) ? body : Buffer.from(body), name);
  zip.end();
  await new Promise<void>((resolve, reject) => {
    const out = createWriteStream(file);
    zip.outputStream.pipe(out).on("close", resolve).on("error", reject);
  });
  return file;
}

/** Writes the archive unpacked into `folder`. */
export async function writeArchiveFolder(folder: string, spec: ArchiveSpec): Promise<string> {
  for (const [name, text] of archiveFiles(spec)) {
    await mkdir(path.dirname(path.join(folder, name)), { recursive: true });
    await writeFile(path.join(folder, name), text);
  }
  return folder;
}
