/**
 * npm run bench -- <name> [--size small|medium|large|reference | --people N --edges M]
 *                         [--keep] [--sample N]
 *
 * Runs one benchmark against a generated graph and prints one table. The
 * database server is DATABASE_URL's, else an embedded PostgreSQL in .bench/pg.
 * --keep keeps generated graphs (and files) for the next run and reuses them.
 */
import { parseArgs } from "node:util";
import { archiveImport } from "./archive-import.ts";
import type { Benchmark } from "./context.ts";
import { openServer } from "./db.ts";
import { edgesImport } from "./edges-import.ts";
import { fanout } from "./fanout.ts";
import { REFERENCE, SIZES, type GraphSpec } from "./generate.ts";
import { matching } from "./matching.ts";
import { generateCsv } from "./csv.ts";
import { fediverseInbox } from "./fediverse-inbox.ts";
import { reconnectBluesky } from "./reconnect-bluesky.ts";

const BENCHMARKS: Benchmark[] = [matching, fanout, edgesImport, archiveImport, generateCsv, fediverseInbox, reconnectBluesky];

function usage(): string {
  const names = BENCHMARKS.map((b) => `  ${b.name.padEnd(16)} ${b.description} (default size: ${b.defaultSize})`);
  const sizes = Object.entries(SIZES).map(
    ([name, s]) => `  ${name.padEnd(16)} ${s.people.toLocaleString("en-US")} people, ${s.edges.toLocaleString("en-US")} edges` +
      ` (1/${Math.round(REFERENCE.edges / s.edges)} of reference)`.replace(" (1/1 of reference)", " (the reference deployment)"),
  );
  return [
    "usage: npm run bench -- <name> [--size NAME | --people N --edges M] [--keep] [--sample N]",
    "",
    "benchmarks:",
    ...names,
    "",
    "sizes:",
    ...sizes,
    "",
    "DATABASE_URL set: benchmark databases are created on that server; else an embedded PostgreSQL runs in .bench/pg.",
    "--keep: keep generated graphs (database bench_graph_<size>) and files in .bench/ and reuse them next time.",
  ].join("\n");
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      size: { type: "string" },
      people: { type: "string" },
      edges: { type: "string" },
      keep: { type: "boolean", default: false },
      sample: { type: "string", default: "1000" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const name = positionals[0];
  if (!name || values.help) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const bench = BENCHMARKS.find((b) => b.name === name);
  if (!bench) {
    process.stderr.write(`unknown benchmark "${name}"\n\n${usage()}\n`);
    return 2;
  }
  let label: string;
  let spec: GraphSpec;
  if (values.people !== undefined || values.edges !== undefined) {
    const people = Number(values.people ?? 0);
    const edges = Number(values.edges ?? 0);
    if (!Number.isInteger(people) || people < 2 || !Number.isInteger(edges) || edges < 1) {
      process.stderr.write("--people and --edges take positive integers (people >= 2)\n");
      return 2;
    }
    label = `p${people}_e${edges}`;
    spec = { people, edges, seed: 1 };
  } else {
    label = values.size ?? bench.defaultSize;
    const known = SIZES[label];
    if (!known) {
      process.stderr.write(`unknown size "${label}": ${Object.keys(SIZES).join(", ")}, or --people N --edges M\n`);
      return 2;
    }
    spec = known;
  }
  const sample = Number(values.sample);
  if (!Number.isInteger(sample) || sample < 1) {
    process.stderr.write("--sample takes a positive integer\n");
    return 2;
  }

  const server = await openServer();
  const stop = () => {
    server.stop().finally(() => process.exit(130));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await bench.run({ server, label, spec, keep: values.keep, sample });
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await server.stop();
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
