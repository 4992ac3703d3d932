/**
 * Heavy-tailed X follow graphs shaped like the reference deployment (33,000
 * registered people, 47 million follow edges), at several sizes.
 *
 * The model, deterministic for a seed:
 * - an X account universe of max(10 × people, 50,000) accounts, ranked by
 *   popularity; account rank r has weight 1/(r+1) (Zipf, s = 1). Rank 0 is
 *   followed by nearly everyone (far more than half), and is a registered
 *   person, as are about half of ranks 1–9;
 * - 90% of the edges are registered people's followings. Out-degrees are
 *   log-normal (σ = 1.3) scaled to that total, capped at half the universe;
 *   one person follows min(150,000, universe / 2) accounts. Each person's
 *   followings are a Poisson sample of the universe with inclusion
 *   probability min(1, λ/(r+1)), λ set so the expected count is the degree:
 *   no duplicates, and the most popular accounts come first;
 * - 10% come from unregistered accounts following registered ones (what
 *   archives' follower.js contribute), a few each, popular ones preferred;
 * - registered people: an X identity (4% only claimed by an archive), a
 *   verified Bluesky identity for 70%, fediverse for 50% (at least one).
 *
 * Loading streams CSV text straight into `COPY … FROM STDIN`, with
 * x_follow's indexes dropped during the load and rebuilt from their own
 * definitions afterwards, then builds every match with one set-based
 * statement using the definition of Matches.refreshForFollowers, then
 * VACUUM ANALYZE.
 */
import { createWriteStream } from "node:fs";
import { Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Matches } from "../src/store/matches.ts";
import type { Sql } from "../src/store/database.ts";
import { log } from "./report.ts";

export interface GraphSpec {
  /** Registered people. */
  people: number;
  /** X follow edges (approximately: sampling is random). */
  edges: number;
  seed: number;
}

export const REFERENCE = { people: 33_000, edges: 47_000_000 };

export const SIZES: Record<string, GraphSpec> = {
  small: { people: 330, edges: 470_000, seed: 1 },
  medium: { people: 3_300, edges: 4_700_000, seed: 1 },
  large: { people: 11_000, edges: 15_700_000, seed: 1 },
  reference: { people: 33_000, edges: 47_000_000, seed: 1 },
};

/** mulberry32: a small, fast, seeded PRNG in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * Poisson sampling without replacement over ranks 0..n-1 with weights
 * 1/(r+1): item r is drawn with probability min(1, λ/(r+1)). Cost is
 * proportional to the items drawn (geometric skips with thinning over
 * doubling blocks), not to n.
 */
export class ZipfSampler {
  readonly n: number;
  /** tail[k] = Σ_{r ≥ k} 1/(r+1) */
  private readonly tail: Float64Array;

  constructor(n: number) {
    this.n = n;
    this.tail = new Float64Array(n + 1);
    for (let r = n - 1; r >= 0; r--) this.tail[r] = this.tail[r + 1]! + 1 / (r + 1);
  }

  /** Expected draws for λ. */
  private expected(lambda: number): number {
    const k = Math.min(this.n, Math.floor(lambda));
    return k + lambda * this.tail[k]!;
  }

  lambdaFor(degree: number): number {
    if (degree >= this.n) return this.n;
    let lo = degree / this.tail[0]!;
    let hi = this.n;
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      if (this.expected(mid) < degree) lo = mid;
      else hi = mid;
    }
    return (lo + hi) / 2;
  }

  /** Calls `emit` with each drawn rank, in increasing order. */
  sample(degree: number, random: () => number, emit: (rank: number) => void): void {
    if (degree <= 0) return;
    const lambda = this.lambdaFor(degree);
    const head = Math.min(this.n, Math.floor(lambda));
    for (let r = 0; r < head; r++) emit(r);
    for (let a = head; a < this.n; ) {
      const b = Math.min(this.n, Math.max(a + 1, 2 * a));
      const pmax = Math.min(1, lambda / (a + 1));
      const logq = Math.log1p(-pmax);
      let r = a - 1;
      for (;;) {
        r += 1 + (pmax >= 1 ? 0 : Math.floor(Math.log(1 - random()) / logq));
        if (r >= b) break;
        if (random() * (r + 1) < a + 1) emit(r); // accept with w(r)/w(a)
      }
      a = b;
    }
  }
}

export interface Person {
  /** person.id in the store (people are inserted first, 1..n). */
  id: number;
  /** Universe rank of their X account. */
  rank: number;
  xVerifiedBy: "platform" | "archive";
  bluesky: "platform" | "dm" | null;
  fediverse: "platform" | "dm" | null;
  /** Expected number of followings. */
  degree: number;
}

export class GraphModel {
  readonly spec: GraphSpec;
  readonly universe: number;
  readonly maxDegree: number;
  readonly people: Person[];
  /** rank → index in `people` + 1, 0 when unregistered. */
  readonly registeredAt: Int32Array;
  /** Registered people in popularity order (ranks ascending). */
  readonly registeredByRank: Person[];
  /** The person following `maxDegree` accounts. */
  readonly heaviest: Person;
  readonly registeredEdges: number;
  readonly strangerEdges: number;
  private readonly idText: string[];

  constructor(spec: GraphSpec) {
    this.spec = spec;
    const n = spec.people;
    this.universe = Math.max(10 * n, 50_000);
    this.maxDegree = Math.min(150_000, Math.floor(this.universe / 2));
    this.idText = new Array<string>(this.universe);
    for (let r = 0; r < this.universe; r++) this.idText[r] = String(xIdOfRank(r));

    const random = rng(spec.seed * 7919 + 17);
    // Which accounts are registered: rank 0, about half the top 10, the rest anywhere.
    this.registeredAt = new Int32Array(this.universe);
    const ranks: number[] = [0];
    this.registeredAt[0] = 1;
    for (let r = 1; r < 10 && ranks.length < n; r++) {
      if (random() < 0.5) {
        ranks.push(r);
        this.registeredAt[r] = ranks.length;
      }
    }
    while (ranks.length < n) {
      const r = Math.floor(random() * this.universe);
      if (this.registeredAt[r]) continue;
      ranks.push(r);
      this.registeredAt[r] = ranks.length;
    }

    this.registeredEdges = Math.round(spec.edges * 0.9);
    this.strangerEdges = spec.edges - this.registeredEdges;
    const heavyIndex = Math.floor(n / 2);
    // Log-normal out-degrees, scaled so their sum is registeredEdges.
    const sigma = 1.3;
    const raw = ranks.map(() => Math.exp(sigma * gaussian(random)));
    const cap = this.maxDegree;
    const total = (scale: number) =>
      raw.reduce((sum, d, i) => sum + (i === heavyIndex ? cap : Math.min(cap, Math.max(1, d * scale))), 0);
    let lo = 0;
    let hi = 1e9;
    for (let i = 0; i < 100; i++) {
      const mid = (lo + hi) / 2;
      if (total(mid) < this.registeredEdges) lo = mid;
      else hi = mid;
    }
    const degrees = raw.map((d, i) => (i === heavyIndex ? cap : Math.min(cap, Math.max(1, d * lo))));

    this.people = ranks.map((rank, i) => {
      const u = random();
      const forced = i === 0 || i === heavyIndex;
      const both = forced || u < 0.2;
      const bluesky = both || u < 0.7;
      const fediverse = both || u >= 0.7;
      const archive = !forced && random() < 0.04;
      const via = () => (archive || random() < 0.1 ? "dm" : "platform") as "dm" | "platform";
      return {
        id: i + 1,
        rank,
        xVerifiedBy: archive ? "archive" : "platform",
        bluesky: bluesky ? via() : null,
        fediverse: fediverse ? via() : null,
        degree: Math.min(degrees[i]!, this.universe - 1),
      } satisfies Person;
    });
    this.heaviest = this.people[heavyIndex]!;
    this.registeredByRank = [...this.people].sort((a, b) => a.rank - b.rank);
  }

  xId(rank: number): string {
    return this.idText[rank]!;
  }

  /**
   * The edge list as text chunks of about 1 MB: `follower<sep>followed\n`.
   * `duplicates` repeats that share of lines (for import benchmarks).
   */
  *edgeChunks(options: { separator?: string; duplicates?: number } = {}): Generator<string> {
    const sep = options.separator ?? "\t";
    const duplicates = options.duplicates ?? 0;
    const random = rng(this.spec.seed * 104_729 + 3);
    let chunk = "";
    let last = "";
    const universe = new ZipfSampler(this.universe);
    for (const person of this.people) {
      const prefix = this.idText[person.rank]! + sep;
      const own = person.rank;
      universe.sample(person.degree, random, (r) => {
        if (r === own) return;
        last = prefix + this.idText[r]! + "\n";
        chunk += last;
        if (duplicates > 0 && random() < duplicates) chunk += last;
      });
      if (chunk.length >= 1 << 20) {
        yield chunk;
        chunk = "";
      }
    }
    // Unregistered accounts following registered people, popular ones first.
    const registered = new ZipfSampler(this.registeredByRank.length);
    const strangers = this.universe - this.people.length;
    const mean = this.strangerEdges / Math.max(1, strangers);
    for (let r = 0; r < this.universe; r++) {
      if (this.registeredAt[r]) continue;
      const degree = -mean * Math.log(1 - random());
      const prefix = this.idText[r]! + sep;
      registered.sample(degree, random, (q) => {
        last = prefix + this.idText[this.registeredByRank[q]!.rank]! + "\n";
        chunk += last;
        if (duplicates > 0 && random() < duplicates) chunk += last;
      });
      if (chunk.length >= 1 << 20) {
        yield chunk;
        chunk = "";
      }
    }
    if (chunk) yield chunk;
  }

  /** Identity rows for COPY (text format, tab-separated, \N for null). */
  *identityRows(): Generator<string> {
    let chunk = "";
    for (const p of this.people) {
      const k = p.id;
      const host = `m${k % 97}.example`;
      chunk += `${k}\tx\t${this.xId(p.rank)}\tuser_${k}\t\\N\t${p.xVerifiedBy}\n`;
      if (p.bluesky) {
        chunk += `${k}\tbluesky\tdid:plc:bench${String(k).padStart(19, "0")}\tuser${k}.bsky.social\t\\N\t${p.bluesky}\n`;
      }
      if (p.fediverse) {
        chunk += `${k}\tfediverse\thttps://${host}/users/user${k}\tuser${k}@${host}\thttps://${host}\t${p.fediverse}\n`;
      }
      if (chunk.length >= 1 << 20) {
        yield chunk;
        chunk = "";
      }
    }
    if (chunk) yield chunk;
  }

  /** Registry CSV (the bulk format of `reconnexion import registry`). */
  *registryCsv(): Generator<string> {
    let chunk = "x_id,x_username,bluesky_did,bluesky_handle,fediverse_acct,language,notify,auto_reconnect,announce_me\n";
    for (const p of this.people) {
      const k = p.id;
      const host = `m${k % 97}.example`;
      if (p.xVerifiedBy === "archive") continue; // archive claims are not in the platform's registry
      chunk += [
        this.xId(p.rank),
        `user_${k}`,
        p.bluesky ? `did:plc:bench${String(k).padStart(19, "0")}` : "",
        p.bluesky ? `user${k}.bsky.social` : "",
        p.fediverse ? `user${k}@${host}` : "",
        k % 3 === 0 ? "en" : "fr",
        "true",
        k % 5 === 0 ? "true" : "false",
        k % 4 === 0 ? "true" : "false",
      ].join(",") + "\n";
      if (chunk.length >= 1 << 20) {
        yield chunk;
        chunk = "";
      }
    }
    yield chunk;
  }
}

/** X ids for universe ranks: distinct, 13 digits, unrelated to popularity. */
export function xIdOfRank(rank: number): number {
  return 1_000_000_000_000 + (((rank + 1) * 48_271) % 2_147_483_647);
}

/** Streams chunks into a writable (a COPY or a file), honouring backpressure and errors. */
export async function writeChunks(out: Writable, chunks: Iterable<string>): Promise<number> {
  let bytes = 0;
  function* counted() {
    for (const chunk of chunks) {
      bytes += chunk.length;
      yield chunk;
    }
  }
  await pipeline(Readable.from(counted(), { objectMode: false }), out);
  return bytes;
}

export async function writeFileChunks(file: string, chunks: Iterable<string>): Promise<number> {
  return writeChunks(createWriteStream(file, { highWaterMark: 1 << 20 }), chunks);
}

/** Writes the edge list as the edges CSV format (`follower_x_id,followed_x_id`). */
export async function writeEdgesCsv(model: GraphModel, file: string, duplicates = 0.01): Promise<number> {
  function* withHeader() {
    yield "follower_x_id,followed_x_id\n";
    yield* model.edgeChunks({ separator: ",", duplicates });
  }
  return writeFileChunks(file, withHeader());
}

export async function writeRegistryCsv(model: GraphModel, file: string): Promise<number> {
  return writeFileChunks(file, model.registryCsv());
}

export interface LoadReport {
  people: number;
  identities: number;
  edges: number;
  matches: number;
  seconds: Record<string, number>;
}

/** Tunes a loading session: a bench database may be rebuilt, never half-trusted. */
async function loadingSession(sql: Sql): Promise<void> {
  await sql`set synchronous_commit = off`;
  await sql`set maintenance_work_mem = '2GB'`;
  await sql`set work_mem = '1GB'`;
}

/** People (ids 1..n) and their identities. */
export async function loadPeople(sql: Sql, model: GraphModel): Promise<{ people: number; identities: number }> {
  const n = model.people.length;
  await sql`
    insert into person (language, notify, auto_reconnect, announce_me, created_at, updated_at)
    select case when i % 3 = 0 then 'en' else 'fr' end, i % 10 <> 0, i % 5 = 0, i % 4 = 0,
      now() - (i * 7919 % 1000) * interval '17 hours', now()
    from generate_series(1, ${n}::int) i`;
  const [range] = await sql<{ min: number; max: number; n: number }[]>`select min(id) as min, max(id) as max, count(*)::int as n from person`;
  if (!range || range.min !== 1 || range.max !== n || range.n !== n) {
    throw new Error(`people were expected to get ids 1..${n} in a fresh database; got ${JSON.stringify(range)}`);
  }
  const copy = await sql`copy identity (person_id, platform, stable_id, handle, api_base, verified_by) from stdin`.writable();
  await writeChunks(copy, model.identityRows());
  const [{ identities } = { identities: 0 }] = await sql<{ identities: number }[]>`select count(*)::int as identities from identity`;
  return { people: n, identities };
}

/**
 * Streams the edges into x_follow with its indexes dropped, then rebuilds
 * them from their own definitions (as db/migrations declares them).
 */
export async function loadEdges(sql: Sql, model: GraphModel): Promise<number> {
  const [pk] = await sql<{ name: string; def: string }[]>`
    select conname as name, pg_get_constraintdef(oid) as def from pg_constraint
    where conrelid = 'x_follow'::regclass and contype = 'p'`;
  const indexes = await sql<{ name: string; def: string }[]>`
    select indexname as name, indexdef as def from pg_indexes
    where schemaname = current_schema() and tablename = 'x_follow' and indexname <> ${pk?.name ?? ""}`;
  if (pk) await sql.unsafe(`alter table x_follow drop constraint ${pk.name}`);
  for (const i of indexes) await sql.unsafe(`drop index ${i.name}`);
  const copy = await sql`copy x_follow (follower, followed) from stdin`.writable();
  let started = performance.now();
  await writeChunks(copy, model.edgeChunks());
  const [{ edges } = { edges: 0 }] = await sql<{ edges: number }[]>`select count(*)::float8 as edges from x_follow`;
  log(`  copied ${edges.toLocaleString("en-US")} edges in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  started = performance.now();
  if (pk) await sql.unsafe(`alter table x_follow add constraint ${pk.name} ${pk.def}`);
  for (const i of indexes) await sql.unsafe(i.def);
  log(`  indexed x_follow in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return edges;
}

/**
 * Every match, in one statement with the definition of
 * Matches.refreshForFollowers; created when the later of the two registered,
 * with a realistic spread of states.
 */
export async function buildMatches(sql: Sql): Promise<number> {
  const result = await sql`
    insert into match (person_id, platform, target_person_id, state, created_at, updated_at)
    select d.person_id, d.platform, d.target_person_id,
      (case when d.r < 0.08 then 'followed' when d.r < 0.10 then 'already_following'
            when d.r < 0.11 then 'failed' when d.r < 0.12 then 'ignored' else 'pending' end)::match_state,
      greatest(a.created_at, b.created_at), greatest(a.created_at, b.created_at)
    from (
      select m.*, random() as r from (
        select distinct p.person_id, t.platform, xt.person_id as target_person_id
        from identity p
        join x_follow e on e.follower = p.x_id
        join identity xt on xt.x_id = e.followed and xt.verified_by <> 'archive'
        join identity t on t.person_id = xt.person_id
          and t.platform in ('bluesky', 'fediverse') and t.verified_by <> 'archive'
        where p.x_id is not null and xt.person_id <> p.person_id) m) d
    join person a on a.id = d.person_id
    join person b on b.id = d.target_person_id
    order by d.person_id, d.platform, d.target_person_id`;
  return result.count;
}

/** Loads a whole graph into a freshly migrated database. */
export async function loadGraph(sql: Sql, model: GraphModel, options: { edges?: boolean } = {}): Promise<LoadReport> {
  await loadingSession(sql);
  const seconds: Record<string, number> = {};
  let t = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    seconds[name] = (now - t) / 1000;
    t = now;
    log(`  ${name}: ${seconds[name]!.toFixed(1)} s`);
  };
  const { people, identities } = await loadPeople(sql, model);
  lap("people");
  let edges = 0;
  let matches = 0;
  if (options.edges !== false) {
    edges = await loadEdges(sql, model);
    lap("edges");
    matches = await buildMatches(sql);
    lap("matches");
  }
  await sql`vacuum (analyze) person, identity, x_follow, match`;
  lap("vacuum analyze");
  if (options.edges !== false) {
    // The set-based build must leave nothing for the store's own refresh to add.
    const check = [model.heaviest.id, model.people[0]!.id, model.people[model.people.length - 1]!.id];
    const missing = await new Matches(sql).refreshForFollowers(check);
    if (missing !== 0) throw new Error(`the generated matches miss ${missing} rows that Matches.refreshForFollowers adds`);
    lap("check against Matches.refreshForFollowers");
  }
  return { people, identities, edges, matches, seconds };
}
