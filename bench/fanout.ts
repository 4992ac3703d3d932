/**
 * Fan-out of an arrival, for a sample of registered accounts and the
 * most-followed one: Matches.arrivalFollowers (from the arrival's matches,
 * what announcements use) and Matches.registeredFollowersOf (from the edges,
 * for any X account). Baselines: the straightforward join of edges to
 * identities, and the same without the (followed, follower) index.
 */
import { connect } from "../src/store/database.ts";
import { Matches } from "../src/store/matches.ts";
import type { Queryable } from "../src/store/types.ts";
import { sampleOf, type Benchmark } from "./context.ts";
import { graphDatabase } from "./db.ts";
import { rng } from "./generate.ts";
import { int, log, ms, printTable, summarize } from "./report.ts";

class Rollback extends Error {}

type Lookup = (db: Queryable, account: string) => PromiseLike<readonly unknown[]>;

const storeLookup: Lookup = (db, account) => new Matches(db).registeredFollowersOf(account);

/** The straightforward join (what registeredFollowersOf did first): walks the whole x_id index. */
const joinLookup: Lookup = (db, account) => db`
  select distinct p.person_id from x_follow e join identity p on p.x_id = e.follower
  where e.followed = ${account}::bigint
    and p.person_id is distinct from (select person_id from identity where x_id = ${account}::bigint)`;

async function measure(db: Queryable, accounts: readonly string[], lookup: Lookup = storeLookup): Promise<Map<string, { ms: number; found: number }>> {
  const out = new Map<string, { ms: number; found: number }>();
  for (const account of accounts) {
    const start = performance.now();
    const found = await lookup(db, account);
    out.set(account, { ms: performance.now() - start, found: found.length });
  }
  return out;
}

export const fanout: Benchmark = {
  name: "fanout",
  description: "registered followers of a new arrival (Matches.arrivalFollowers, registeredFollowersOf)",
  defaultSize: "medium",
  async run(context) {
    const graph = await graphDatabase(context.server, "fanout", context.label, context.spec, context.keep);
    const sql = connect(graph.url);
    try {
      const top = graph.meta.topAccount;
      const [{ followers } = { followers: 0 }] = await sql<{ followers: number }[]>`
        select count(*)::int as followers from x_follow where followed = ${top}::bigint`;
      // Arrivals: registered people with a verified X identity.
      const arrivals = graph.model.people.filter((p) => p.xVerifiedBy !== "archive").map((p) => graph.model.xId(p.rank));
      const accounts = sampleOf(arrivals, context.sample, rng(7), [top]);

      await Promise.all(Array.from({ length: 10 }, () => sql`select 1`));
      const people = new Map(
        (await sql<{ x_id: string; person_id: number }[]>`
          select x_id::text, person_id from identity where x_id = any(${accounts}::bigint[])`).map((r) => [r.x_id, r.person_id]),
      );
      const arrivalLookup: Lookup = (db, account) => new Matches(db).arrivalFollowers(people.get(account)!);
      const rows: string[][] = [];
      for (const [name, lookup] of [
        ["store: arrivalFollowers (matches)", arrivalLookup],
        ["store: registeredFollowersOf (edges)", storeLookup],
        ["naive: join edges to identities", joinLookup],
      ] as const) {
        log(`${name}: warming up over ${accounts.length} accounts`);
        await measure(sql, accounts, lookup);
        log(`${name}: measuring`);
        const r = await measure(sql, accounts, lookup);
        const p = summarize([...r.values()].map((x) => x.ms));
        rows.push([name, int(p.n), ms(p.p50), ms(p.p99), ms(p.max), ms(r.get(top)!.ms), int(r.get(top)!.found)]);
      }

      const few = [top, ...accounts.slice(1, 5)];
      log(`baseline without the (followed, follower) index: ${few.length} accounts`);
      let baseline = new Map<string, { ms: number; found: number }>();
      try {
        await sql.begin(async (tx) => {
          await tx`drop index x_follow_followed`;
          baseline = await measure(tx, few);
          throw new Rollback();
        });
      } catch (error) {
        if (!(error instanceof Rollback)) throw error;
      }
      const b = summarize([...baseline.values()].map((r) => r.ms));
      rows.push(["naive: no reverse index", int(b.n), ms(b.p50), ms(b.p99), ms(b.max), ms(baseline.get(top)?.ms ?? Number.NaN), int(baseline.get(top)?.found ?? Number.NaN)]);

      const load = graph.meta.load;
      printTable(
        `fanout @ ${context.label}: ${int(load.people)} people, ${int(load.edges)} edges; most-followed account has ${int(followers)} followers (ms per arrival, serial, warm)`,
        ["variant", "arrivals", "p50", "p99", "max", "most-followed", "its registered followers"],
        rows,
        [
          "target at reference: p99 <= 2 ms, most-followed <= 20 ms",
          "arrivalFollowers reads the matches refreshForTargets made for the arrival (index match_target)",
        ],
      );
    } finally {
      await sql.end({ timeout: 5 });
      await graph.release();
    }
  },
};
