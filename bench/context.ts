/** What run.ts hands every benchmark. */
import type { BenchServer } from "./db.ts";
import type { GraphSpec } from "./generate.ts";

export interface BenchContext {
  server: BenchServer;
  /** `small`, `medium`… or `p<people>_e<edges>` for a custom size. */
  label: string;
  spec: GraphSpec;
  keep: boolean;
  /** People / accounts sampled by latency benchmarks. */
  sample: number;
}

export interface Benchmark {
  name: string;
  description: string;
  defaultSize: string;
  run(context: BenchContext): Promise<void>;
}

/** A seeded sample of up to `count` distinct values out of `values`, plus `always`. */
export function sampleOf<T>(values: readonly T[], count: number, random: () => number, always: readonly T[] = []): T[] {
  const pool = [...values];
  const n = Math.min(count, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return [...new Set([...always, ...pool.slice(0, n)])];
}
