/**
 * One archive import in a fresh process, so its peak memory is its own:
 * `node bench/archive-child.ts '{"url":…,"zip":…,"mode":"store"|"naive"}'`.
 * Prints one JSON line: seconds, memory before, peak RSS and heap, summary.
 */
import yauzl from "yauzl";
import { importArchive } from "../src/import/archive.ts";
import { connect, type Sql } from "../src/store/database.ts";

export interface ChildRequest {
  url: string;
  zip: string;
  mode: "store" | "naive";
}

export interface ChildResult {
  seconds: number;
  rssBefore: number;
  heapBefore: number;
  peakRss: number;
  peakHeap: number;
  personId: number | null;
  followings: number;
  followers: number;
  edgesAdded: number;
  matchesAdded: number;
  /** Seconds per phase the importer announced. */
  phases: [string, number][];
}

/** The straightforward way: each data file read whole, JSON.parse'd, inserted in one statement. */
async function naiveImport(sql: Sql, zip: string): Promise<Omit<ChildResult, "seconds" | "rssBefore" | "heapBefore" | "peakRss" | "peakHeap" | "phases">> {
  const files = await new Promise<Map<string, string>>((resolve, reject) => {
    const out = new Map<string, string>();
    yauzl.open(zip, { lazyEntries: true }, (error, archive) => {
      if (error) return reject(error);
      archive.on("entry", (entry: yauzl.Entry) => {
        if (!/^data\/(account|following|follower)\.js$/.test(entry.fileName)) return archive.readEntry();
        archive.openReadStream(entry, (e, stream) => {
          if (e) return reject(e);
          const chunks: Buffer[] = [];
          stream.on("data", (c: Buffer) => chunks.push(c));
          stream.on("end", () => {
            out.set(entry.fileName, Buffer.concat(chunks).toString("utf8"));
            archive.readEntry();
          });
        });
      });
      archive.on("end", () => resolve(out));
      archive.on("error", reject);
      archive.readEntry();
    });
  });
  const parse = (name: string) => JSON.parse(files.get(name)!.replace(/^[^[]*/, "")) as Record<string, { accountId: string }>[];
  const account = (parse("data/account.js")[0] as unknown as { account: { accountId: string } }).account.accountId;
  const following = parse("data/following.js").map((e) => e.following!.accountId);
  const follower = parse("data/follower.js").map((e) => e.follower!.accountId);
  const followers = [...following.map(() => account), ...follower];
  const followed = [...following, ...follower.map(() => account)];
  const result = await sql`
    insert into x_follow (follower, followed)
    select * from unnest(${followers}::bigint[], ${followed}::bigint[])
    on conflict do nothing`;
  return { personId: null, followings: following.length, followers: follower.length, edgesAdded: result.count, matchesAdded: 0 };
}

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2]!) as ChildRequest;
  const sql = connect(request.url);
  await sql`select 1`;
  global.gc?.();
  const before = process.memoryUsage();
  let peakRss = before.rss;
  let peakHeap = before.heapUsed;
  const sampler = setInterval(() => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  }, 2);
  const start = performance.now();
  const phases: [string, number][] = [];
  let phase: string | undefined = "opening";
  let since = start;
  const close = () => {
    if (phase !== undefined) phases.push([phase, (performance.now() - since) / 1000]);
    phase = undefined;
  };
  const progress = {
    phase(name: string) {
      close();
      phase = name;
      since = performance.now();
    },
    tick() {},
    end: close,
  };
  try {
    let summary;
    if (request.mode === "store") {
      const s = await importArchive(sql, request.zip, { progress });
      summary = { personId: s.personId, followings: s.followings, followers: s.followers, edgesAdded: s.edgesAdded, matchesAdded: s.matchesAdded };
    } else {
      summary = await naiveImport(sql, request.zip);
    }
    const seconds = (performance.now() - start) / 1000;
    clearInterval(sampler);
    const m = process.memoryUsage();
    const result: ChildResult = {
      seconds,
      rssBefore: before.rss,
      heapBefore: before.heapUsed,
      peakRss: Math.max(peakRss, m.rss, process.resourceUsage().maxRSS * 1024),
      peakHeap: Math.max(peakHeap, m.heapUsed),
      ...summary,
      phases,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    clearInterval(sampler);
    await sql.end({ timeout: 5 });
  }
}

await main();
