/**
 * The X archive upload page, over real HTTP on loopback with a real
 * PostgreSQL: archives built the way X builds them, sent as a browser's
 * multipart form sends them.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import yazl from "yazl";
import { loadConfig } from "../config.ts";
import type { Logger } from "../logger.ts";
import { createTestDatabase, type TestDatabase } from "../../test/harness/database.ts";
import { registerPerson } from "../../test/harness/graph.ts";
import { archiveFiles, writeArchiveZip } from "../../test/harness/x-archive.ts";
import { until } from "../../test/harness/wait.ts";
import { createWebApp } from "./app.ts";
import { archiveRoutes } from "./archive.ts";
import { importArchive } from "../import/archive.ts";
import { importEdges } from "../import/edges.ts";
import { LOCALES } from "../conversation/i18n/index.ts";

let db: TestDatabase;
let server: Server;
let base: string;
let uploadDir: string;
const MAX_UPLOAD = 64 * 1024;

beforeAll(async () => {
  db = await createTestDatabase();
  const config = loadConfig({ DEFAULT_LANGUAGE: "en" });
  const log = pino({ level: "silent" }) as unknown as Logger;
  uploadDir = await mkdtemp(path.join(tmpdir(), "archive-uploads-"));
  const routes = archiveRoutes({ store: db.store, sql: db.sql, config, log, maxUploadBytes: MAX_UPLOAD, uploadDir });
  const app = createWebApp({ store: db.store, ready: () => true, routes: [routes] });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await db?.drop();
  if (uploadDir) await rm(uploadDir, { recursive: true, force: true });
});

/** A person who wrote to the bot from Bluesky (no X account yet), and an upload link for them. */
let nextId = 0;
async function newcomerWithLink(language?: string) {
  const n = ++nextId;
  const person = await db.store.people.create(language ? { language } : {});
  const identity = await db.store.identities.attach(person.id, { platform: "bluesky", stableId: `did:plc:uploader${n}`, handle: `uploader${n}.test`, verifiedBy: "dm" });
  const token = await db.store.webLinks.create("archive", person.id, identity.id, 3600);
  return { personId: person.id, url: `${base}/archive/${token}` };
}

/** Another upload link for a person. */
async function newLinkFor(personId: number): Promise<string> {
  const [identity] = await db.store.identities.listForPerson(personId);
  return `${base}/archive/${await db.store.webLinks.create("archive", personId, identity!.id, 3600)}`;
}

function form(files: Array<{ name: string; body: Buffer | string }>): FormData {
  const data = new FormData();
  for (const f of files) data.append("archive", new Blob([f.body]), f.name);
  return data;
}

const upload = (url: string, files: Array<{ name: string; body: Buffer | string }>) => fetch(url, { method: "POST", body: form(files) });

async function xIdentityOf(personId: number) {
  const [row] = await db.sql<{ x_id: string; handle: string; verified_by: string }[]>`
    select x_id::text, handle, verified_by from identity where person_id = ${personId} and platform = 'x'`;
  return row;
}

/** The data files of an archive, as a browser sends the ones a person picked. */
function dataFiles(archive: Parameters<typeof archiveFiles>[0], names = ["data/account.js", "data/following.js", "data/follower.js"]) {
  const files = archiveFiles(archive);
  return names.map((name) => ({ name: path.basename(name), body: files.get(name)! }));
}

describe("the archive upload page", () => {
  it("takes an X archive's zip: its follows are kept as the person's own (no X account claimed, nothing in the shared graph), a followed person on Bluesky is found; the link is then used up", async () => {
    // Someone the uploader followed on X, registered with Bluesky.
    await registerPerson(db.store, "5550001", { platform: "bluesky", stableId: "did:plc:followed1", handle: "followed1.test" }, "followed_x");
    const { personId, url } = await newcomerWithLink();
    const page = await fetch(url);
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain('enctype="multipart/form-data"');
    expect(page.headers.get("cache-control")).toBe("no-store");

    const zip = await writeArchiveZip(path.join(await mkdtemp(path.join(tmpdir(), "archive-zip-")), "archive.zip"), { accountId: "5550100", username: "uploader_x", followings: ["5550001", "5550002"], followers: ["5550003"] });
    const res = await upload(url, [{ name: "twitter-2026-11-24-abc.zip", body: await readFile(zip) }]);
    const done = await res.text();
    expect(res.status, done).toBe(200);
    expect(done).toContain("Archive received");
    expect(done).toContain("@uploader_x: 2 accounts you followed on X. Found here so far — Bluesky: 1, Mastodon (fediverse): 0.");
    expect(await db.store.uploadedArchives.get(personId)).toMatchObject({ xAccountId: "5550100", xUsername: "uploader_x", followings: 2 });
    expect(await xIdentityOf(personId)).toBeUndefined();
    expect(await db.sql`select 1 from x_follow where follower = 5550100 or followed = 5550100`).toHaveLength(0);
    expect((await db.store.matches.counts(personId)).bluesky.total).toBe(1);

    // Used up: the page and the form say to ask again.
    const again = await upload(url, [{ name: "again.zip", body: await readFile(zip) }]);
    expect(again.status).toBe(410);
    expect(await again.text()).toContain("send it <code>archive</code>");
    expect((await fetch(url)).status).toBe(410);
    await rm(path.dirname(zip), { recursive: true, force: true });
  });

  it("takes the data files alone (account.js, following.js, follower.js), in the person's language", async () => {
    const { personId, url } = await newcomerWithLink("fr");
    const files = archiveFiles({ accountId: "5550200", username: "files_x", followings: ["5550001"], followers: [] });
    const res = await upload(url, ["data/account.js", "data/following.js", "data/follower.js"].map((name) => ({ name: path.basename(name), body: files.get(name)! })));
    const done = await res.text();
    expect(res.status, done).toBe(200);
    expect(done).toContain("Archive reçue");
    expect(await db.store.uploadedArchives.get(personId)).toMatchObject({ xAccountId: "5550200", followings: 1 });
  });

  it("takes the archive's whole data/ folder: the files it does not read (follower.js, tweets.js…) are skipped, unsaved", async () => {
    const { personId, url } = await newcomerWithLink();
    const files = archiveFiles({ accountId: "5550250", username: "folder_x", followings: ["5550001"], followers: ["5550003"] });
    const others = Array.from({ length: 120 }, (_, i) => ({ name: `other-${i}.js`, body: `window.YTD.other${i}.part0 = []` }));
    const picked = [...dataFiles({ accountId: "5550250", username: "folder_x", followings: ["5550001"], followers: ["5550003"] }), ...others, { name: "manifest.js", body: files.get("data/manifest.js")! }];
    const res = await upload(url, picked);
    const done = await res.text();
    expect(res.status, done).toBe(200);
    expect(done).toContain("Archive received");
    expect(await db.store.uploadedArchives.get(personId)).toMatchObject({ xAccountId: "5550250", followings: 1 });
  });

  it("says so, in the person's language, when there are more parts of a data file than any archive has", async () => {
    const { personId, url } = await newcomerWithLink("fr");
    const files = archiveFiles({ accountId: "5550260", username: "parts_x", followings: [], followers: [] });
    const parts = Array.from({ length: 101 }, (_, p) => ({ name: `following${p === 0 ? "" : `-part${p}`}.js`, body: `window.YTD.following.part${p} = [ ]` }));
    const many = await upload(url, [{ name: "account.js", body: files.get("data/account.js")! }, ...parts]);
    const text = await many.text();
    expect(many.status).toBe(400);
    expect(text).toContain("Ce que vous avez envoyé contient plus de 100 parties d’un même fichier de données");
    expect(text).not.toContain("Mo");
    // A hundred is taken.
    const hundred = await upload(url, [{ name: "account.js", body: files.get("data/account.js")! }, ...parts.slice(0, 100)]);
    expect(hundred.status, await hundred.text()).toBe(200);
    expect(await db.store.uploadedArchives.get(personId)).toMatchObject({ xAccountId: "5550260", followings: 0 });
  });

  it("refuses a zip bomb split into many small entries, and a zip of more parts than any archive has", async () => {
    const { personId, url } = await newcomerWithLink();
    const zipOf = async (entries: Record<string, string>) => {
      const zip = new yazl.ZipFile();
      zip.addBuffer(Buffer.from(archiveFiles({ accountId: "5550270", username: "bomb_x", followings: [] }).get("data/account.js")!), "data/account.js");
      for (const [name, body] of Object.entries(entries)) zip.addBuffer(Buffer.from(body), name);
      zip.end();
      const chunks: Buffer[] = [];
      for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    };
    const named = (count: number, body: (p: number) => string) =>
      Object.fromEntries(Array.from({ length: count }, (_, p) => [`data/following${p === 0 ? "" : `-part${p}`}.js`, body(p)]));
    const bomb = await zipOf(named(20, (p) => `window.YTD.following.part${p} = [${" ".repeat(200 * 1024)}]`));
    expect(bomb.length).toBeLessThan(MAX_UPLOAD);
    const refused = await upload(url, [{ name: "bomb.zip", body: bomb }]);
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain("data/following.js is compressed far beyond any real archive file. Nothing was kept.");
    const parts = await upload(url, [{ name: "parts.zip", body: await zipOf(named(101, (p) => `window.YTD.following.part${p} = [ ]`)) }]);
    expect(parts.status).toBe(400);
    expect(await parts.text()).toContain("parts.zip holds more than 100 parts of one data file");
    expect(await db.store.uploadedArchives.get(personId)).toBeUndefined();
  });

  it("takes a zip with more follower parts than any archive has: follower files are not read, so neither counted nor unpacked", async () => {
    const { personId, url } = await newcomerWithLink();
    const zip = new yazl.ZipFile();
    const files = archiveFiles({ accountId: "5550275", username: "popular_x", followings: ["5550001"], followers: [] });
    zip.addBuffer(Buffer.from(files.get("data/account.js")!), "data/account.js");
    zip.addBuffer(Buffer.from(files.get("data/following.js")!), "data/following.js");
    for (let p = 0; p < 101; p++) zip.addBuffer(Buffer.from(`window.YTD.follower.part${p} = [ ]`), `data/follower${p === 0 ? "" : `-part${p}`}.js`);
    // And one a zip bomb (1,000:1): never opened.
    zip.addBuffer(Buffer.alloc(24 * 1024 * 1024, 32), "data/follower-part101.js");
    zip.end();
    const chunks: Buffer[] = [];
    for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    expect(body.length).toBeLessThan(MAX_UPLOAD);
    const res = await upload(url, [{ name: "popular.zip", body }]);
    const done = await res.text();
    expect(res.status, done).toBe(200);
    expect(await db.store.uploadedArchives.get(personId)).toMatchObject({ xAccountId: "5550275", followings: 1 });
  });

  it("says the data files together are too large apart from one file too large, naming the total, in English and French", () => {
    expect(LOCALES.en!.web.archiveRefused({ kind: "too-large-in-all", mb: 256 }, "archive.zip", undefined)).toBe(
      "archive.zip holds data files (account.js, following.js) of more than 256 MB in all once unpacked — far more than any X archive. Nothing was kept.",
    );
    expect(LOCALES.fr!.web.archiveRefused({ kind: "too-large-in-all", mb: 256 }, undefined, undefined)).toBe(
      "Ce que vous avez envoyé contient des fichiers de données (account.js, following.js) de plus de 256 Mo en tout une fois décompressés — bien plus que toute archive X. Rien n’a été gardé.",
    );
    expect(LOCALES.en!.web.archiveRefused({ kind: "too-large", mb: 64 }, "data/following.js", undefined)).toBe(
      "data/following.js is larger than 64 MB — far more than any X archive data file. Nothing was kept.",
    );
  });

  it("refuses a broken zip in one sentence naming the file, keeps nothing, and leaves the link usable", async () => {
    const { personId, url } = await newcomerWithLink();
    const res = await upload(url, [{ name: "my-archive.zip", body: Buffer.concat([Buffer.from("PK\x03\x04"), Buffer.alloc(2000, 1)]) }]);
    const body = await res.text();
    expect(res.status).toBe(400);
    expect(body).toContain("my-archive.zip is damaged or cut short: download your archive from X again. Nothing was kept.");
    expect(body).not.toContain(uploadDir);
    expect(await xIdentityOf(personId)).toBeUndefined();
    expect((await fetch(url)).status).toBe(200);
  });

  it("answers an upload that takes long to read after it came in, whatever the server's idle timeout", async () => {
    const { personId, url } = await newcomerWithLink();
    server.timeout = 300;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let locked!: () => void;
    const lockTaken = new Promise<void>((resolve) => (locked = resolve));
    // Something else writing for this person holds them: the import waits, saying nothing on the connection.
    const holder = db.store.transaction(async (s) => {
      await s.people.lockForUpdate(personId);
      locked();
      await held;
    });
    try {
      await lockTaken;
      const sending = upload(url, dataFiles({ accountId: "5550700", username: "slow_x", followings: ["5550001"], followers: [] }));
      setTimeout(release, 1000);
      const res = await sending;
      expect(res.status).toBe(200);
      expect(await res.text()).toContain("Archive received");
    } finally {
      release();
      await holder;
      server.timeout = 0;
    }
  });

  it("says what is wrong in the person's language: a file that is no data file, a line X would not write, account.js missing", async () => {
    const { personId, url } = await newcomerWithLink("fr");
    const good = archiveFiles({ accountId: "5550600", username: "fr_x", followings: ["5550001", "5550002"], followers: [] });
    const notData = await upload(url, [{ name: "account.js", body: good.get("data/account.js")! }, { name: "following.js", body: "alert('hi')" }]);
    expect(notData.status).toBe(400);
    expect(await notData.text()).toContain("following.js (ligne 1) n’est pas écrit comme X écrit les fichiers de ses archives. Rien n’a été gardé.");
    const broken = good.get("data/following.js")!.replace('"accountId" : "5550002"', '"accountId" : 5550002,,');
    const badLine = await upload(url, [{ name: "account.js", body: good.get("data/account.js")! }, { name: "following.js", body: broken }]);
    const badText = await badLine.text();
    expect(badLine.status).toBe(400);
    expect(badText).toMatch(/following\.js \(ligne \d+\) n’est pas écrit comme X/);
    const noAccount = await upload(url, [{ name: "following.js", body: good.get("data/following.js")! }]);
    expect(await noAccount.text()).toContain("Il manque data/account.js");
    expect(await db.store.uploadedArchives.get(personId)).toBeUndefined();
  });

  it("refuses an upload over the size cap, a form without an archive, and files that are no archive", async () => {
    const { personId, url } = await newcomerWithLink();
    const big = await upload(url, [{ name: "huge.zip", body: Buffer.alloc(MAX_UPLOAD + 1, 0) }]);
    expect(big.status).toBe(413);
    expect(await big.text()).toContain("more than 0 MB");
    // Without a declared length, the whole request is counted as it comes: two files each under the cap, over it together.
    const boundary = "bigboundary";
    const part = (name: string) => `--${boundary}\r\nContent-Disposition: form-data; name="archive"; filename="${name}"\r\n\r\n${"y".repeat(MAX_UPLOAD * 0.6)}\r\n`;
    const chunks = [part("following.js"), part("follower.js"), `--${boundary}--\r\n`];
    const streamed = await fetch(url, {
      method: "POST",
      body: new ReadableStream({ pull(c) { const next = chunks.shift(); if (next) c.enqueue(new TextEncoder().encode(next)); else c.close(); } }),
      headers: { "Content-Type": `multipart/form-data; boundary=${boundary}` },
      duplex: "half",
    } as RequestInit);
    expect(streamed.status).toBe(413);
    const none = await upload(url, [{ name: "notes.txt", body: "hello" }]);
    expect(none.status).toBe(400);
    expect(await none.text()).toContain("No archive came with the form");
    for (const type of ["text/plain", "application/json", "multipart/form-data", "application/x-www-form-urlencoded"]) {
      const notForm = await fetch(url, { method: "POST", body: "archive=nothing", headers: { "Content-Type": type } });
      expect(notForm.status, type).toBe(400);
      expect(await notForm.text()).toContain("No archive came with the form");
    }
    const notArchive = await upload(url, [{ name: "following.js", body: "alert('hi')" }]);
    expect(notArchive.status).toBe(400);
    expect(await xIdentityOf(personId)).toBeUndefined();
  });

  it("takes one upload at a time per link, and leaves nothing behind in its folder", async () => {
    const { url } = await newcomerWithLink();
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const boundary = "slowboundary";
    const encoder = new TextEncoder();
    const slowBody = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(encoder.encode(`--${boundary}\r\nContent-Disposition: form-data; name="archive"; filename="slow.zip"\r\nContent-Type: application/zip\r\n\r\nPK`));
        await finished;
        controller.enqueue(encoder.encode(`\r\n--${boundary}--\r\n`));
        controller.close();
      },
    });
    const slow = fetch(url, { method: "POST", body: slowBody, headers: { "Content-Type": `multipart/form-data; boundary=${boundary}` }, duplex: "half" } as RequestInit);
    // The first upload is being read (its folder is there): a second one on the same link waits its turn.
    await until("the first upload to be under way", async () => (await readdir(uploadDir)).length > 0, 30_000, 20);
    const second = await upload(url, [{ name: "x.zip", body: "PK" }]);
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).toBe("30");
    finish();
    expect((await slow).status).toBe(400);
    expect(await readdir(uploadDir)).toEqual([]);
  });

  it("survives a sender who goes away mid-upload: the link's slot is free again and nothing is left behind", async () => {
    const { url } = await newcomerWithLink();
    const boundary = "cutboundary";
    const abort = new AbortController();
    const cut = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(`--${boundary}\r\nContent-Disposition: form-data; name="archive"; filename="cut.zip"\r\nContent-Type: application/zip\r\n\r\nPK${"x".repeat(1000)}`));
        setTimeout(() => abort.abort(), 100);
      },
    });
    await fetch(url, { method: "POST", body: cut, headers: { "Content-Type": `multipart/form-data; boundary=${boundary}` }, duplex: "half", signal: abort.signal } as RequestInit).catch(() => undefined);
    // The server notices, lets go of the link, and removes what it had written.
    const next = await until("the link's slot to be free", async () => {
      const res = await upload(url, [{ name: "x.zip", body: "PK" }]);
      return res.status === 429 ? undefined : res;
    }, 30_000, 50);
    expect(next.status).toBe(400);
    await until("the cut upload's folder to be gone", async () => (await readdir(uploadDir)).length === 0, 30_000, 50);
  });

  it("survives a form cut off inside a file it does not keep (the service goes on)", async () => {
    const { url } = await newcomerWithLink();
    const body = `--ZZ\r\nContent-Disposition: form-data; name="archive"; filename="photo.jpg"\r\n\r\nabcdef`;
    const res = await fetch(url, { method: "POST", body, headers: { "Content-Type": "multipart/form-data; boundary=ZZ" } });
    expect(res.status).toBe(400);
    expect((await fetch(url)).status).toBe(200);
  });

  it("claims no X account: naming one the store knows reads none of its data, nor do the operator's later imports of it; follower.js is not taken", async () => {
    // What other data says X account 5550300 follows: not for whoever names it to read.
    const seen = await registerPerson(db.store, "5550310", { platform: "bluesky", stableId: "did:plc:seen310", handle: "seen310.test" });
    await db.sql`insert into x_follow values (5550300, 5550310)`;
    const { personId, url } = await newcomerWithLink();
    const named = await upload(url, dataFiles({ accountId: "5550300", username: "claimer", followings: [], followers: ["5550310"] }));
    expect(named.status, await named.text()).toBe(200);
    expect(await xIdentityOf(personId)).toBeUndefined();
    expect(await db.store.uploadedArchives.get(personId)).toMatchObject({ xAccountId: "5550300", followings: 0 });
    expect((await db.store.matches.counts(personId)).bluesky.total).toBe(0);
    // follower.js serves only other people: not taken from a page.
    expect(await db.sql`select 1 from x_follow where followed = 5550300`).toHaveLength(0);

    // Later, the operator loads that account's edges and its archive: they reach its owner, never the uploader.
    const later = await registerPerson(db.store, "5550311", { platform: "bluesky", stableId: "did:plc:later311", handle: "later311.test" });
    const edgesFile = path.join(uploadDir, "..", `edges-${personId}.csv`);
    await writeFile(edgesFile, "follower_x_id,followed_x_id\n5550300,5550311\n");
    await importEdges(db.sql, edgesFile);
    await rm(edgesFile);
    const zip = await writeArchiveZip(path.join(await mkdtemp(path.join(tmpdir(), "archive-zip-")), "owner.zip"), { accountId: "5550300", username: "owner", followings: ["5550310"], followers: [] });
    const owner = await importArchive(db.sql, zip);
    await rm(path.dirname(zip), { recursive: true, force: true });
    expect(owner.personCreated).toBe(true);
    expect(owner.personId).not.toBe(personId);
    expect(await xIdentityOf(personId)).toBeUndefined();
    expect((await db.store.matches.counts(personId)).bluesky.total).toBe(0);
    const ownerMatches = (await db.store.matches.list(owner.personId, "bluesky")).entries.map((e) => e.targetPersonId);
    expect(ownerMatches.sort()).toEqual([seen.personId, later.personId].sort());
  });

  it("replaces an earlier upload with a newer one; refuses an archive of another X account than the person's own", async () => {
    const first = await registerPerson(db.store, "5550401", { platform: "bluesky", stableId: "did:plc:first401", handle: "first401.test" });
    const second = await registerPerson(db.store, "5550402", { platform: "bluesky", stableId: "did:plc:second402", handle: "second402.test" });
    const { personId, url } = await newcomerWithLink();
    expect((await upload(url, dataFiles({ accountId: "5550490", username: "x5550490", followings: ["5550401"], followers: [] }))).status).toBe(200);
    expect((await db.store.matches.list(personId, "bluesky")).entries.map((e) => e.targetPersonId)).toEqual([first.personId]);
    // The right file after a wrong one (or a newer archive): it replaces the first whole.
    expect((await upload(await newLinkFor(personId), dataFiles({ accountId: "5550491", username: "x5550491", followings: ["5550402"], followers: [] }))).status).toBe(200);
    expect(await db.store.uploadedArchives.get(personId)).toMatchObject({ xAccountId: "5550491", followings: 1 });
    const pending = await db.store.matches.list(personId, "bluesky");
    expect(pending.entries.map((e) => e.targetPersonId)).toEqual([second.personId]);

    // Someone registered with X account 5550403 may upload that account's archive, and no other.
    const registered = await registerPerson(db.store, "5550403", { platform: "bluesky", stableId: "did:plc:own403", handle: "own403.test" }, "own403");
    const link = async () => `${base}/archive/${await db.store.webLinks.create("archive", registered.personId, registered.identityId, 3600)}`;
    const other = await upload(await link(), dataFiles({ accountId: "5550404", username: "x5550404", followings: ["5550401"], followers: [] }));
    expect(other.status).toBe(400);
    expect(await other.text()).toContain("@own403");
    expect(await db.store.uploadedArchives.get(registered.personId)).toBeUndefined();
    expect((await upload(await link(), dataFiles({ accountId: "5550403", username: "x5550403", followings: ["5550401"], followers: [] }))).status).toBe(200);
    expect((await db.store.matches.counts(registered.personId)).bluesky.total).toBe(1);
  });

  it("frees the person's slot when a file cannot be written (two files of one name, a name too long for the disk)", async () => {
    // A cap large enough for a file to outrun its failed write.
    const log = pino({ level: "silent" }) as unknown as Logger;
    const roomy = createWebApp({ store: db.store, ready: () => true, routes: [archiveRoutes({ store: db.store, sql: db.sql, config: loadConfig({}), log, maxUploadBytes: 4 * 1024 * 1024, uploadDir })] });
    const other = await new Promise<Server>((resolve) => {
      const s = roomy.listen(0, "127.0.0.1", () => resolve(s));
    });
    try {
      const { url: onBase } = await newcomerWithLink();
      const url = onBase.replace(base, `http://127.0.0.1:${(other.address() as AddressInfo).port}`);
      // The server stops reading there: the sender sees the 400, or the connection closed under its upload.
      const outcome = (res: Promise<Response>) => res.then((r) => r.status, () => "closed");
      const twice = [{ name: "following.js", body: "x" }, { name: "following.js", body: "y".repeat(300_000) }];
      expect([400, "closed"]).toContain(await outcome(upload(url, twice)));
      const longName = [{ name: `${"n".repeat(300)}.js`, body: "z".repeat(300_000) }];
      expect([400, "closed"]).toContain(await outcome(upload(url, longName)));
      // Not stuck: the next upload is read (and refused for what it is, not as busy).
      expect((await upload(url, [{ name: "x.zip", body: "PK" }])).status).toBe(400);
      expect(await readdir(uploadDir)).toEqual([]);
    } finally {
      other.closeAllConnections();
      await new Promise((resolve) => other.close(resolve));
    }
  });

  it("answers an unknown or malformed link with a page saying to ask again", async () => {
    for (const token of ["A".repeat(32), "not-a-token", "..%2F..%2Fetc"]) {
      const res = await fetch(`${base}/archive/${token}`);
      expect(res.status, token).toBe(410);
    }
    const post = await upload(`${base}/archive/${"B".repeat(32)}`, [{ name: "x.zip", body: "PK" }]);
    expect(post.status).toBe(410);
  });
});
