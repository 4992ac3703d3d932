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

/** Work waiting, for /metrics: what an operator alerts on. */
export interface BacklogStats {
  /** Unfinished reconnection jobs by state. */
  reconnectJobs: Record<"queued" | "running" | "waiting" | "needs_authorization", number>;
  /** Fediverse queue messages by queue (inbox, outbox, fanout): how many, and how long the oldest ready one has waited. */
  fediverseQueues: Record<string, { messages: number; oldestReadySeconds: number }>;
  /** Grants waiting to be revoked at their servers (src/store/revocations.ts), and of those, how many were tried already (a server that did not answer, or one under way). */
  authorizationRevocations: { waiting: number; tried: number };
}

export async function backlogStats(db: Queryable): Promise<BacklogStats> {
  const [jobRows, queueRows, [revocations]] = await Promise.all([
    db<{ state: keyof BacklogStats["reconnectJobs"]; n: number }[]>`
      select state, count(*)::int as n from reconnect_job where state not in ('done', 'cancelled') group by 1`,
    db<{ queue: string; n: number; oldest: number }[]>`
      select queue, count(*)::int as n,
        coalesce(extract(epoch from now() - min(run_at) filter (where run_at <= now())), 0)::float8 as oldest
      from fediverse_queue group by 1`,
    db<{ waiting: number; tried: number }[]>`
      select count(*)::int as waiting, (count(*) filter (where attempts > 0))::int as tried from authorization_revocation`,
  ]);
  const reconnectJobs = { queued: 0, running: 0, waiting: 0, needs_authorization: 0 };
  for (const r of jobRows) reconnectJobs[r.state] = r.n;
  const fediverseQueues: BacklogStats["fediverseQueues"] = {};
  for (const q of ["inbox", "outbox", "fanout", ...queueRows.map((r) => r.queue)]) fediverseQueues[q] = { messages: 0, oldestReadySeconds: 0 };
  for (const r of queueRows) fediverseQueues[r.queue] = { messages: r.n, oldestReadySeconds: Math.round(r.oldest) };
  return { reconnectJobs, fediverseQueues, authorizationRevocations: revocations ?? { waiting: 0, tried: 0 } };
}
