/**
 * One person's matches on both platforms, with counts: what `status` and
 * `list` need. The store answers from the materialized `match` table
 * (Matches.counts + the first page of Matches.list per platform); the
 * baseline joins x_follow to registered identities on the fly.
 */
import { connect, type Sql } from "../src/store/database.ts";
import { Matches } from "../src/store/matches.ts";
import type { TargetPlatform } from "../src/store/types.ts";
import { sampleOf, type Benchmark } from "./context.ts";
import { graphDatabase } from "./db.ts";
import { rng } from "./generate.ts";
import { int, log, ms, printTable, summarize } from "./report.ts";

type Step = (personId: number) => Promise<unknown>;

/** The straightforward design: no match table, join the follow edges every time. */
function naive(sql: Sql) {
  const counts: Step = (personId) => sql`
    select t.platform, count(distinct xt.person_id)::int as n
    from identity p
    join x_follow e on e.follower = p.x_id
    join identity xt on xt.x_id = e.followed and xt.verified_by <> 'archive'
    join identity t on t.person_id = xt.person_id
      and t.platform in ('bluesky', 'fediverse') and t.verified_by <> 'archive'
    where p.person_id = ${personId} and p.x_id is not null and xt.person_id <> p.person_id
    group by t.platform`;
  const list = (platform: TargetPlatform): Step => (personId) => sql`
    select distinct on (xt.person_id) xt.person_id, t.handle, t.stable_id, xt.handle as x_username
    from identity p
    join x_follow e on e.follower = p.x_id
    join identity xt on xt.x_id = e.followed and xt.verified_by <> 'archive'
    join identity t on t.person_id = xt.person_id and t.platform = ${platform} and t.verified_by <> 'archive'
    where p.person_id = ${personId} and p.x_id is not null and xt.person_id <> p.person_id
    order by xt.person_id, t.updated_at desc
    limit 20`;
  return { counts, bluesky: list("bluesky"), fediverse: list("fediverse") };
}

function store(sql: Sql) {
  const matches = new Matches(sql);
  return {
    counts: (id: number) => matches.counts(id),
    bluesky: (id: number) => matches.list(id, "bluesky"),
    fediverse: (id: number) => matches.list(id, "fediverse"),
  } satisfies Record<string, Step>;
}

/** Times each step per person, serially; returns per-step and total ms by person. */
async function measure(steps: Record<string, Step>, people: readonly number[]): Promise<Map<string, Map<number, number>>> {
  const out = new Map<string, Map<number, number>>([["total", new Map()]]);
  for (const name of Object.keys(steps)) out.set(name, new Map());
  for (const id of people) {
    let total = 0;
    for (const [name, step] of Object.entries(steps)) {
      const start = performance.now();
      await step(id);
      const t = performance.now() - start;
      total += t;
      out.get(name)!.set(id, t);
    }
    out.get("total")!.set(id, total);
  }
  return out;
}

export const matching: Benchmark = {
  name: "matching",
  description: "one person's matches, both platforms, with counts (store vs on-the-fly join)",
  defaultSize: "medium",
  async run(context) {
    const graph = await graphDatabase(context.server, "matching", context.label, context.spec, context.keep);
    const sql = connect(graph.url);
    try {
      const heavy = graph.meta.heaviestPersonId;
      const top = await sql<{ person_id: number; n: number }[]>`
        select person_id, count(*)::int as n from match group by person_id order by n desc limit 3`;
      const [{ followings } = { followings: 0 }] = await sql<{ followings: number }[]>`
        select count(*)::int as followings from x_follow e join identity p on p.x_id = e.follower where p.person_id = ${heavy}`;
      const [{ heavyMatches } = { heavyMatches: 0 }] = await sql<{ heavyMatches: number }[]>`
        select count(*)::int as "heavyMatches" from match where person_id = ${heavy}`;
      const mostMatched = top[0]!;
      const ids = graph.model.people.map((p) => p.id);
      const people = sampleOf(ids, context.sample, rng(42), [heavy, ...top.map((t) => t.person_id)]);

      const rows: string[][] = [];
      const run = async (name: string, steps: Record<string, Step>, warm: () => Promise<unknown>) => {
        log(`${name}: warming up over ${people.length} people`);
        await warm();
        await measure(steps, people);
        log(`${name}: measuring`);
        const result = await measure(steps, people);
        for (const [step, byPerson] of result) {
          const s = summarize([...byPerson.values()]);
          rows.push([
            `${name}: ${step === "total" ? "counts + 2 pages" : step === "counts" ? "counts" : `page 1 ${step}`}`,
            int(s.n),
            ms(s.p50),
            ms(s.p99),
            ms(s.max),
            ms(byPerson.get(heavy)!),
            ms(byPerson.get(mostMatched.person_id)!),
          ]);
        }
      };
      const openPool = () => Promise.all(Array.from({ length: 10 }, () => sql`select 1`));
      await run("store", store(sql), openPool);
      await run("naive join", naive(sql), openPool);
      const load = graph.meta.load;
      printTable(
        `matching @ ${context.label}: ${int(load.people)} people, ${int(load.edges)} edges, ${int(load.matches)} matches (ms per person, serial, warm)`,
        ["variant", "people", "p50", "p99", "max", `heaviest (${int(followings)} followings, ${int(heavyMatches)} matches)`, `most matches (${int(mostMatched.n)})`],
        rows,
        [
          "target at reference: store total p99 <= 5 ms, heaviest <= 20 ms",
          "store = the page picked from match (index match_person_page) before joining identities",
        ],
      );
    } finally {
      await sql.end({ timeout: 5 });
      await graph.release();
    }
  },
};
