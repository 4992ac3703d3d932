/**
 * The sandbox's world: the whole service, running as `npm start` runs it,
 * against networks that live on this machine — a fediverse server and a
 * Bluesky network (PLC, PDS, AppView, and the chat stand-in), the same ones
 * the tests use (test/harness/) — with a few people registered and their X
 * follows loaded through the real imports. Its data goes in a database of its
 * own, created for the run and dropped at the end: the operator's store is
 * never touched.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { loadConfig, type Config } from "../config.ts";
import { importEdges } from "../import/edges.ts";
import { importRegistry } from "../import/registry.ts";
import { startService, type RunningService } from "../main.ts";
import { connect, migrate } from "../store/database.ts";
import { freePort, startEmbeddedPostgres } from "../store/embedded.ts";
import type { BlueskyNetwork, TestUser } from "../../test/harness/bluesky.ts";
import type { FediServer, FediUser } from "../../test/harness/fediverse.ts";
import type { MastodonInstance } from "../../test/harness/mastodon-instance.ts";

/** One account a sandbox person can write from. */
export type SandboxAccount =
  | { label: string; person: string; platform: "fediverse"; user: FediUser; password: string }
  | { label: string; person: string; platform: "bluesky"; user: TestUser };

export interface SandboxWorld {
  config: Config;
  /** Every account, by label (`alice` on the fediverse, `bob.test` on Bluesky). */
  accounts: Map<string, SandboxAccount>;
  /** The fediverse accounts' server: a Mastodon-compatible instance (client API and OAuth, for reconnections). */
  mastodon: MastodonInstance;
  fediverse: FediServer;
  bluesky: BlueskyNetwork;
  /** The Bluesky bot's own account. */
  blueskyBot: TestUser;
  service: RunningService;
  close(): Promise<void>;
}

interface PersonSpec {
  name: string;
  xId: string;
  fediverse: boolean;
  bluesky: boolean;
  /** In the registry; else a stranger to the bot. */
  registered: boolean;
}

/** Who lives in the sandbox, and whom each followed on X. */
const PEOPLE: PersonSpec[] = [
  { name: "alice", xId: "1001", fediverse: true, bluesky: false, registered: true },
  { name: "bob", xId: "1002", fediverse: false, bluesky: true, registered: true },
  { name: "carol", xId: "1003", fediverse: true, bluesky: true, registered: true },
  { name: "dave", xId: "1004", fediverse: false, bluesky: true, registered: true },
  { name: "erin", xId: "1005", fediverse: true, bluesky: false, registered: false },
];
const X_FOLLOWS: [string, string[]][] = [
  ["alice", ["bob", "carol", "dave", "erin"]],
  ["bob", ["alice", "carol"]],
  ["carol", ["alice", "bob", "dave"]],
  ["dave", ["carol"]],
  ["erin", ["alice", "carol"]],
];

/**
 * Builds the world. `databaseUrl`: a PostgreSQL server to create the
 * sandbox's databases on (it needs CREATEDB); unset, the embedded cluster in
 * `dataDir`. `env` supplies DEFAULT_LANGUAGE, LOG_LEVEL and ANNOUNCE_CRON.
 */
export async function startSandboxWorld(options: {
  databaseUrl: string | undefined;
  dataDir: string;
  env: Record<string, string | undefined>;
  progress: (line: string) => void;
}): Promise<SandboxWorld> {
  const closers: (() => Promise<void>)[] = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  };
  try {
    const { startBlueskyNetwork, startMastodonInstance } = await loadNetworks();
    // One folder for everything temporary the sandbox makes — its CSV files,
    // and the local PDSs' data, which dev-env puts in the system's temporary
    // folder and never removes — deleted when it stops.
    const dir = await mkdtemp(path.join(tmpdir(), "reconnexion-sandbox-"));
    const previousTmp = process.env.TMPDIR;
    process.env.TMPDIR = dir;
    closers.push(async () => {
      if (previousTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = previousTmp;
      await rm(dir, { recursive: true, force: true });
    });

    let serverUrl = options.databaseUrl;
    if (!serverUrl) {
      options.progress(`starting the embedded PostgreSQL in ${options.dataDir}`);
      const embedded = await startEmbeddedPostgres(options.dataDir);
      closers.push(() => embedded.stop());
      serverUrl = embedded.url;
    }
    const admin = connect(serverUrl, { max: 1 });
    closers.push(() => admin.end({ timeout: 5 }));
    await dropAbandoned(admin);
    const dbName = `${DATABASE_PREFIX}${randomBytes(4).toString("hex")}`;
    await admin.unsafe(`create database ${dbName}`);
    closers.push(async () => void (await admin.unsafe(`drop database if exists ${dbName} with (force)`)));
    const adminUrl = new URL(serverUrl);
    const databaseUrl = new URL(serverUrl);
    databaseUrl.pathname = `/${dbName}`;
    // Connected from now on: another sandbox starting meanwhile sees it in use.
    const holder = connect(databaseUrl.toString(), { max: 1 });
    closers.push(() => holder.end({ timeout: 5 }));
    await holder`select 1`;

    options.progress("starting a local fediverse server and a local Bluesky network (PLC, PDS, AppView, chat)");
    const mastodon = await startMastodonInstance({ users: PEOPLE.filter((p) => p.fediverse).map((p) => ({ name: p.name, password: passwordOf(p.name) })) });
    const fediverse = mastodon.server;
    closers.push(() => fediverse.close());
    const bluesky = await startBlueskyNetwork({ adminDatabaseUrl: adminUrl.toString(), databaseName: `${dbName}_bsky` });
    closers.push(() => bluesky.close());
    const blueskyBot = await bluesky.createUser("reconnexion");

    const accounts = new Map<string, SandboxAccount>();
    for (const p of PEOPLE) {
      if (p.fediverse) accounts.set(p.name, { label: p.name, person: p.name, platform: "fediverse", user: fediverse.user(p.name), password: passwordOf(p.name) });
      if (p.bluesky) {
        const user = await bluesky.createUser(p.name);
        accounts.set(user.handle, { label: user.handle, person: p.name, platform: "bluesky", user });
      }
    }
    await bluesky.processAll();

    const port = await freePort();
    const config = loadConfig({
      DEFAULT_LANGUAGE: options.env.DEFAULT_LANGUAGE,
      ANNOUNCE_CRON: options.env.ANNOUNCE_CRON,
      LOG_LEVEL: options.env.LOG_LEVEL ?? "error",
      DATABASE_URL: databaseUrl.toString(),
      HOST: "127.0.0.1",
      PORT: String(port),
      PUBLIC_URL: `http://127.0.0.1:${port}`,
      SECRET_KEY: randomBytes(32).toString("base64url"),
      BLUESKY_SERVICE: bluesky.pdsUrl,
      BLUESKY_HANDLE: blueskyBot.handle,
      BLUESKY_APP_PASSWORD: blueskyBot.password,
      // People's accounts resolve on the local network too (reconnection).
      BLUESKY_PLC_URL: bluesky.network.plc.url,
      BLUESKY_APPVIEW_URL: bluesky.network.bsky.url,
      // Everything here is on loopback: the one place besides tests where it is on.
      ALLOW_PRIVATE_ADDRESSES: "true",
    });

    options.progress("loading the sandbox's people and their X follows through the real imports");
    await seed(databaseUrl.toString(), dir, accounts);

    options.progress("starting the service");
    const service = await startService({ config, bluesky: { pollIntervalMs: 500, backoffMs: 500 } });
    closers.push(() => service.stop());

    return { config, accounts, mastodon, fediverse, bluesky, blueskyBot, service, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** What the harness's Bluesky accounts use, for the Mastodon instance's login form too. */
const passwordOf = (name: string) => `${name}-password`;

/** Every database a sandbox creates starts with this. */
const DATABASE_PREFIX = "reconnexion_sandbox_";

/**
 * Drops what killed sandboxes left behind: their databases that nobody is
 * connected to (a sandbox running beside this one keeps its own).
 */
async function dropAbandoned(admin: ReturnType<typeof connect>): Promise<void> {
  const rows = await admin<{ datname: string }[]>`
    select datname from pg_database d
    where starts_with(datname, ${DATABASE_PREFIX})
      and not exists (select 1 from pg_stat_activity a where a.datname = d.datname)`;
  for (const { datname } of rows) await admin.unsafe(`drop database if exists "${datname.replace(/"/g, '""')}"`);
}

/** The error the CLI turns into one sentence. */
export class SandboxUnavailableError extends Error {
  override name = "SandboxUnavailableError";
}

/** The local networks come with a checkout's development dependencies (dev-env, the test harness). */
async function loadNetworks() {
  try {
    const [{ startBlueskyNetwork }, { startMastodonInstance }] = await Promise.all([
      import("../../test/harness/bluesky.ts"),
      import("../../test/harness/mastodon-instance.ts"),
    ]);
    return { startBlueskyNetwork, startMastodonInstance };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ERR_MODULE_NOT_FOUND") throw error;
    throw new SandboxUnavailableError(
      "The sandbox runs from a checkout with its development dependencies (npm ci): the local networks it starts are not installed here.",
    );
  }
}

/** The registry and the X follows, as CSV files through `import registry` and `import edges`. */
async function seed(databaseUrl: string, dir: string, accounts: Map<string, SandboxAccount>): Promise<void> {
  const of = (person: string, platform: SandboxAccount["platform"]) =>
    [...accounts.values()].find((a) => a.person === person && a.platform === platform);
  const registry = ["x_id,x_username,bluesky_did,bluesky_handle,fediverse_acct,language,notify,auto_reconnect,announce_me"];
  for (const p of PEOPLE.filter((p) => p.registered)) {
    const bsky = of(p.name, "bluesky");
    const fedi = of(p.name, "fediverse");
    registry.push([
      p.xId, `${p.name}_x`,
      bsky?.platform === "bluesky" ? bsky.user.did : "", bsky?.platform === "bluesky" ? bsky.user.handle : "",
      fedi?.platform === "fediverse" ? fedi.user.acct : "",
      "", "true", "false", "true",
    ].join(","));
  }
  const xIdOf = new Map(PEOPLE.map((p) => [p.name, p.xId]));
  const edges = ["follower_x_id,followed_x_id", ...X_FOLLOWS.flatMap(([from, tos]) => tos.map((to) => `${xIdOf.get(from)},${xIdOf.get(to)}`))];
  const registryFile = path.join(dir, "registry.csv");
  const edgesFile = path.join(dir, "edges.csv");
  await writeFile(registryFile, `${registry.join("\n")}\n`);
  await writeFile(edgesFile, `${edges.join("\n")}\n`);

  // The service migrates on start; the imports need the schema first.
  // Migrated first on a connection of its own, as openDatabase does: the
  // importers' connections then know the schema's types.
  const migrator = connect(databaseUrl, { max: 1 });
  await migrate(migrator).finally(() => migrator.end({ timeout: 5 }));
  const sql = connect(databaseUrl, { max: 2 });
  try {
    await importRegistry(sql, registryFile);
    await importEdges(sql, edgesFile);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Who followed whom on X in the sandbox, for the welcome text. */
export function sandboxFollows(): readonly [string, readonly string[]][] {
  return X_FOLLOWS;
}

/** Whether the person is in the registry. */
export function isRegistered(person: string): boolean {
  return PEOPLE.find((p) => p.name === person)?.registered ?? false;
}
