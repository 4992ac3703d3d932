/**
 * Writes a generated graph as the bulk import formats (registry CSV and
 * edges CSV) into .bench/data/, for `reconnexion import registry|edges`.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import type { Benchmark } from "./context.ts";
import { benchDataDir } from "./db.ts";
import { GraphModel, writeEdgesCsv, writeRegistryCsv } from "./generate.ts";
import { int, log, printTable } from "./report.ts";

export const generateCsv: Benchmark = {
  name: "csv",
  description: "write the graph as registry and edges CSV files into .bench/data/ (generator speed)",
  defaultSize: "small",
  async run(context) {
    const dir = await benchDataDir();
    const model = new GraphModel(context.spec);
    const rows: string[][] = [];
    for (const [kind, write] of [
      ["registry", (f: string) => writeRegistryCsv(model, f)],
      ["edges", (f: string) => writeEdgesCsv(model, f, 0)],
    ] as const) {
      const file = path.join(dir, `${kind}-${context.label}.csv`);
      log(`writing ${file}`);
      const start = performance.now();
      await write(file);
      const seconds = (performance.now() - start) / 1000;
      const { size } = await stat(file);
      rows.push([kind, path.relative(process.cwd(), file), (size / 1e6).toFixed(1), seconds.toFixed(2), (size / 1e6 / seconds).toFixed(0)]);
    }
    printTable(
      `csv @ ${context.label}: ${int(context.spec.people)} people, ~${int(context.spec.edges)} edges`,
      ["file", "path", "MB", "seconds", "MB/s"],
      rows,
    );
  },
};
