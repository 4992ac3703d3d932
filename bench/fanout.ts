/**
 * Fan-out of an arrival: the registered people who followed an X account
 * (Matches.registeredFollowersOf), for a sample of registered accounts and
 * the most-followed one. Baseline: the same query without the
 * (followed, follower) index, dropped inside a transaction that is rolled back.
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

/** Candidate A (no schema change): one identity probe per follower, so cost follows the account's follower count. */
const arrayLookup: Lookup = (db, account) => db`
  select distinct person_id from identity
  where x_id = any(array(select follower from x_follow where followed = ${account}::bigint))
    and person_id is distinct from (select person_id from identity where x_id = ${account}::bigint)`;

/** Candidate B: an arrival's matches already name its registered followers (after refreshForTargets). */
export const FANOUT_INDEX = "create index match_target_person on match (target_person_id, person_id)";
const matchLookup: Lookup = (db, account) => db`
  select distinct m.person_id from identity i join match m on m.target_person_id = i.person_id
  where i.x_id = ${account}::bigint`;

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
  description: "registered followers of a new arrival (Matches.registeredFollowersOf)",
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
      log(`store: warming up over ${accounts.length} accounts`);
      await measure(sql, accounts);
      log("store: measuring");
      const result = await measure(sql, accounts);
      const s = summarize([...result.values()].map((r) => r.ms));
      const topResult = result.get(top)!;
      const rows = [["store: registeredFollowersOf", int(s.n), ms(s.p50), ms(s.p99), ms(s.max), ms(topResult.ms), int(topResult.found)]];

      for (const [name, lookup, index] of [
        ["proposed A: = any(array(followers))", arrayLookup, undefined],
        ["proposed B: from match + index", matchLookup, FANOUT_INDEX],
      ] as const) {
        try {
          await sql.begin(async (tx) => {
            if (index) await tx.unsafe(index);
            log(`${name}: warming up`);
            await measure(tx, accounts, lookup);
            log(`${name}: measuring`);
            const r = await measure(tx, accounts, lookup);
            const p = summarize([...r.values()].map((x) => x.ms));
            rows.push([name, int(p.n), ms(p.p50), ms(p.p99), ms(p.max), ms(r.get(top)!.ms), int(r.get(top)!.found)]);
            throw new Rollback();
          });
        } catch (error) {
          if (!(error instanceof Rollback)) throw error;
        }
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
          `proposed B (for an arrival whose matches refreshForTargets made) uses ${FANOUT_INDEX.replace("create index ", "index ")}`,
        ],
      );
    } finally {
      await sql.end({ timeout: 5 });
      await graph.release();
    }
  },
};
