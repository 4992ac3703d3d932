/** `reconnexion stats [--json]`: what the store holds. */
import type { StoreStats } from "../store/index.ts";

export function formatStats(stats: StoreStats): string {
  const n = (x: number) => x.toLocaleString("en-US");
  const rows: [string, string][] = [
    ["people", n(stats.people)],
    ["X follow edges", n(stats.edges)],
    ["uploaded archives", n(stats.uploadedArchives)],
  ];
  for (const [platform, c] of Object.entries(stats.identities)) {
    rows.push([`${platform} identities`, `${n(c.total)}  (platform ${n(c.platform)}, dm ${n(c.dm)}, archive ${n(c.archive)})`]);
  }
  rows.push([
    "matches",
    `${n(stats.matches.total)}  (pending ${n(stats.matches.pending)}, followed ${n(stats.matches.followed)}, ` +
      `already following ${n(stats.matches.already_following)}, failed ${n(stats.matches.failed)}, ignored ${n(stats.matches.ignored)})`,
  ]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}
