/**
 * Connecting to PostgreSQL and applying the plain-SQL migrations in
 * `db/migrations/`. The only module that opens connections.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import { startEmbeddedPostgres } from "./embedded.ts";

export type Sql = postgres.Sql<{}>;

export interface Database {
  sql: Sql;
  /** The URL actually used (embedded or configured). */
  url: string;
  /** Migration versions this opening applied (none when the schema was up to date). */
  migrationsApplied: number[];
  /** Closes connections and stops an embedded server this process started. */
  close(): Promise<void>;
}

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../db/migrations/", import.meta.url));

/** Options shared by every connection this project opens. */
export function connect(url: string, options: { max?: number; onQuery?: (query: string) => void } = {}): Sql {
  const onQuery = options.onQuery;
  return postgres(url, {
    max: options.max ?? 10,
    // Benchmarks count the statements a piece of work takes.
    ...(onQuery ? { debug: (_connection: number, query: string) => onQuery(query) } : {}),
    onnotice: () => {},
    idle_timeout: 30,
    connection: {
      application_name: "reconnexion",
      // Parallel plans cost more than the short index lookups they would
      // split on a 2-core machine (measured in bench/).
      max_parallel_workers_per_gather: 0,
    } as Record<string, string | number>,
  });
}

/**
 * Opens the configured database (or starts the embedded one) and brings its
 * schema up to date.
 */
export async function openDatabase(options: {
  databaseUrl: string | undefined;
  dataDir: string;
  migrate?: boolean;
  log?: (line: string) => void;
}): Promise<Database> {
  let url = options.databaseUrl;
  let stopServer = async () => {};
  if (!url) {
    // Shared: a CLI command and the service may use one data directory at once.
    const server = await startEmbeddedPostgres(options.dataDir, { log: options.log, shared: true });
    url = server.url;
    stopServer = server.stop;
  }
  let migrationsApplied: number[] = [];
  if (options.migrate !== false) {
    // On a connection of their own: postgres.js learns the array types a
    // connection may send when it opens, so the service's connections must
    // open after the migrations created theirs (match_state[] and the like).
    const migrator = connect(url, { max: 1 });
    try {
      migrationsApplied = await migrate(migrator).finally(() => migrator.end({ timeout: 5 }));
    } catch (error) {
      await stopServer();
      throw error;
    }
  }
  const sql = connect(url);
  return {
    sql,
    url,
    migrationsApplied,
    async close() {
      await sql.end({ timeout: 5 });
      await stopServer();
    },
  };
}

export interface Migration {
  version: number;
  name: string;
  file: string;
}

/** The migrations on disk, in order; file names are `NNN_name.sql`. */
export async function listMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort();
  return files.map((file) => {
    const match = /^(\d+)_([\w-]+)\.sql$/.exec(file);
    if (!match) throw new Error(`Migration file ${file} is not named NNN_name.sql.`);
    return { version: Number(match[1]), name: match[2]!, file: path.join(dir, file) };
  });
}

// Any constant works: it only has to be the same for every process.
const MIGRATION_LOCK = 7_346_201_009;

/**
 * Applies pending migrations in order, each once. One transaction holds an
 * advisory lock, so two processes starting together apply them once between
 * them, and a failing migration leaves the schema as it was.
 * @returns the versions applied by this call
 */
export async function migrate(sql: Sql, dir = MIGRATIONS_DIR): Promise<number[]> {
  const migrations = await listMigrations(dir);
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`create table if not exists schema_migration (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`;
    const done = new Set(
      (await tx<{ version: number }[]>`select version from schema_migration`).map((r) => r.version),
    );
    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      await tx.unsafe(await readFile(m.file, "utf8"));
      await tx`insert into schema_migration (version, name) values (${m.version}, ${m.name})`;
      applied.push(m.version);
    }
    return applied;
  });
}
