/**
 * Benchmark databases: on the server named by DATABASE_URL, else on an
 * embedded PostgreSQL kept in `.bench/pg` (gitignored). Graphs are kept
 * between runs with `--keep`, in a database named by size that is reused
 * when it is complete and was generated from the same parameters.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { connect, migrate, type Sql } from "../src/store/database.ts";
import { startEmbeddedPostgres } from "../src/store/embedded.ts";
import { GraphModel, loadGraph, type GraphSpec, type LoadReport } from "./generate.ts";
import { log } from "./report.ts";

export const BENCH_DIR = fileURLToPath(new URL("../.bench/", import.meta.url));

export interface BenchServer {
  urlFor(database: string): string;
  admin: Sql;
  stop(): Promise<void>;
}

export async function openServer(): Promise<BenchServer> {
  let adminUrl = process.env.DATABASE_URL;
  let stopServer = async () => {};
  if (!adminUrl) {
    const dir = path.join(BENCH_DIR, "pg");
    log(`starting the embedded PostgreSQL in ${path.relative(process.cwd(), dir)}`);
    const server = await startEmbeddedPostgres(dir);
    adminUrl = server.url;
    stopServer = server.stop;
  }
  const base = adminUrl;
  const admin = connect(base, { max: 1 });
  return {
    admin,
    urlFor(database) {
      const url = new URL(base);
      url.pathname = `/${database}`;
      return url.toString();
    },
    async stop() {
      await admin.end({ timeout: 5 });
      await stopServer();
    },
  };
}

/** `.bench/data/`, created if needed: generated CSV files and archives. */
export async function benchDataDir(): Promise<string> {
  const dir = path.join(BENCH_DIR, "data");
  await mkdir(dir, { recursive: true });
  return dir;
}

export async function databaseExists(server: BenchServer, name: string): Promise<boolean> {
  const rows = await server.admin`select 1 from pg_database where datname = ${name}`;
  return rows.length > 0;
}

export async function dropDatabase(server: BenchServer, name: string): Promise<void> {
  await server.admin.unsafe(`drop database if exists "${name}" with (force)`);
}

/** A new, migrated database (any previous one of that name is dropped). */
export async function freshDatabase(server: BenchServer, name: string, options: { onQuery?: (query: string) => void } = {}): Promise<Sql> {
  await dropDatabase(server, name);
  await server.admin.unsafe(`create database "${name}"`);
  // Migrated on a connection of its own: the pool must open knowing the schema's types (openDatabase).
  const migrator = connect(server.urlFor(name), { max: 1 });
  await migrate(migrator).finally(() => migrator.end({ timeout: 5 }));
  return connect(server.urlFor(name), options);
}

export interface GraphMeta {
  spec: GraphSpec;
  universe: number;
  maxDegree: number;
  heaviestPersonId: number;
  /** X id of the most-followed account (universe rank 0). */
  topAccount: string;
  load: LoadReport;
}

export interface GraphDatabase {
  name: string;
  url: string;
  meta: GraphMeta;
  model: GraphModel;
  /** Drops the database unless it is kept. */
  release(): Promise<void>;
}

/** Marks a graph database complete, with what was generated. */
async function writeMeta(sql: Sql, meta: GraphMeta): Promise<void> {
  await sql`create table bench_meta (id int primary key default 1, meta jsonb not null)`;
  await sql`insert into bench_meta (meta) values (${JSON.stringify(meta)}::text::jsonb)`;
}

async function readMeta(url: string): Promise<GraphMeta | undefined> {
  const sql = connect(url, { max: 1 });
  try {
    const rows = await sql<{ meta: GraphMeta | string }[]>`select meta from bench_meta where id = 1`;
    const meta = rows[0]?.meta;
    return typeof meta === "string" ? (JSON.parse(meta) as GraphMeta) : meta;
  } catch {
    return undefined;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * A database holding the graph of `spec`. With `keep`, `bench_graph_<label>`
 * is reused when complete and kept afterwards; otherwise
 * `bench_<bench>_<label>` is built and dropped on release.
 */
export async function graphDatabase(
  server: BenchServer,
  bench: string,
  label: string,
  spec: GraphSpec,
  keep: boolean,
  options: { edges?: boolean } = {},
): Promise<GraphDatabase> {
  const withEdges = options.edges !== false;
  const name = keep && withEdges ? `bench_graph_${label}` : `bench_${bench.replace(/-/g, "_")}_${label}`;
  const url = server.urlFor(name);
  const model = new GraphModel(spec);
  const release = async () => {
    if (!(keep && withEdges)) await dropDatabase(server, name);
  };
  if (keep && withEdges && (await databaseExists(server, name))) {
    const meta = await readMeta(url);
    if (meta && JSON.stringify(meta.spec) === JSON.stringify(spec)) {
      // Bring a kept graph's schema up to date (new indexes, say) before measuring it.
      const sql = connect(url, { max: 1 });
      const applied = await migrate(sql).finally(() => sql.end({ timeout: 5 }));
      if (applied.length > 0) log(`${name}: applied migrations ${applied.join(", ")}`);
      log(`reusing ${name} (${meta.load.edges.toLocaleString("en-US")} edges, ${meta.load.matches.toLocaleString("en-US")} matches)`);
      return { name, url, meta, model, release };
    }
    log(`${name} is incomplete or from other parameters: rebuilding it`);
  }
  log(`generating ${name}: ${spec.people.toLocaleString("en-US")} people, ~${spec.edges.toLocaleString("en-US")} edges` +
    ` (X universe ${model.universe.toLocaleString("en-US")}, heaviest follows ${model.maxDegree.toLocaleString("en-US")})`);
  const sql = await freshDatabase(server, name);
  try {
    const started = performance.now();
    // One connection, so the loading session's settings apply to every statement.
    const connection = await sql.reserve();
    const load = await loadGraph(connection, model, options).finally(() => connection.release());
    const meta: GraphMeta = {
      spec,
      universe: model.universe,
      maxDegree: model.maxDegree,
      heaviestPersonId: model.heaviest.id,
      topAccount: model.xId(0),
      load,
    };
    await writeMeta(sql, meta);
    log(`generated ${name} in ${((performance.now() - started) / 1000).toFixed(1)} s: ` +
      `${load.identities.toLocaleString("en-US")} identities, ${load.edges.toLocaleString("en-US")} edges, ${load.matches.toLocaleString("en-US")} matches`);
    return { name, url, meta, model, release };
  } catch (error) {
    await sql.end({ timeout: 5 }).catch(() => undefined);
    await dropDatabase(server, name).catch(() => undefined);
    throw error;
  } finally {
    await sql.end({ timeout: 5 }).catch(() => undefined);
  }
}
