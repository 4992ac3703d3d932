/** Counts for `reconnexion stats` and /metrics. */
import type { MatchState, Platform, Queryable, Verification } from "./types.ts";
import { MATCH_STATES, PLATFORMS } from "./types.ts";

export interface StoreStats {
  people: number;
  edges: number;
  /** X archives people uploaded themselves (kept apart from the shared graph). */
  uploadedArchives: number;
  /** Per platform: total and by verification. */
  identities: Record<Platform, { total: number } & Record<Verification, number>>;
  /** Per match state, and the total. */
  matches: { total: number } & Record<MatchState, number>;
}

/**
 * @param options.estimateEdges use the planner's row estimate for x_follow
 *   (instant) instead of counting tens of millions of rows (seconds): for
 *   /metrics, scraped every few seconds.
 */
export async function storeStats(db: Queryable, options: { estimateEdges?: boolean } = {}): Promise<StoreStats> {
  const [[people], [edges], [uploads], identityRows, matchRows] = await Promise.all([
    db<{ n: number }[]>`select count(*)::int as n from person`,
    options.estimateEdges
      ? db<{ n: string }[]>`select greatest(reltuples, 0)::bigint as n from pg_class where oid = 'x_follow'::regclass`
      : db<{ n: string }[]>`select count(*) as n from x_follow`,
    db<{ n: number }[]>`select count(*)::int as n from uploaded_archive`,
    db<{ platform: Platform; verified_by: Verification; n: number }[]>`
      select platform, verified_by, count(*)::int as n from identity group by 1, 2`,
    db<{ state: MatchState; n: number }[]>`select state, count(*)::int as n from match group by 1`,
  ]);
  const identities = Object.fromEntries(
    PLATFORMS.map((p) => [p, { total: 0, platform: 0, dm: 0, archive: 0 }]),
  ) as StoreStats["identities"];
  for (const r of identityRows) {
    identities[r.platform][r.verified_by] = r.n;
    identities[r.platform].total += r.n;
  }
  const matches = Object.assign(
    { total: 0 },
    Object.fromEntries(MATCH_STATES.map((s) => [s, 0])) as Record<MatchState, number>,
  );
  for (const r of matchRows) {
    matches[r.state] = r.n;
    matches.total += r.n;
  }
  return { people: people!.n, edges: Number(edges!.n), uploadedArchives: uploads!.n, identities, matches };
}
