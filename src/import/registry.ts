/**
 * `reconnexion import registry <csv>`: people and their identities from the
 * registration platform, which verified them (`verified_by = 'platform'`).
 * Rows are checked here (one sentence per bad row, with its line), then
 * merged set-wise in one transaction: all or nothing, idempotent.
 *
 * Settings columns apply to people created by the import; people already
 * known keep the settings they chose talking to the bots.
 */
import { createReadStream } from "node:fs";
import { parse } from "csv-parse";
import type { Sql } from "../store/database.ts";
import { isDid, isXAccountId, normalizeBlueskyHandle, normalizeFediverseAcct, normalizeXUsername } from "../store/handles.ts";
import { lockEdgesBeforePeople } from "../store/lock-order.ts";
import { Matches } from "../store/matches.ts";
import { People } from "../store/people.ts";
import { retireAuthorizations } from "../store/revocations.ts";
import type { Queryable } from "../store/types.ts";
import { readCsvHeader } from "./csv-file.ts";
import { ImportError, silentProgress, type Progress, type RegistryImportSummary } from "./types.ts";

export const REGISTRY_COLUMNS = [
  "x_id",
  "x_username",
  "bluesky_did",
  "bluesky_handle",
  "fediverse_acct",
  "language",
  "notify",
  "auto_reconnect",
  "announce_me",
] as const;

interface RegistryRow {
  line: number;
  xId: string | null;
  xUsername: string | null;
  blueskyDid: string | null;
  blueskyHandle: string | null;
  fediverseAcct: string | null;
  language: string | null;
  notify: boolean | null;
  autoReconnect: boolean | null;
  announceMe: boolean | null;
}

export interface RegistryLimits {
  /** Largest file read (every row is held in memory until the merge). */
  maxBytes: number;
  /** Most rows read (short rows take more memory for their bytes). */
  maxRows: number;
}

export const DEFAULT_REGISTRY_LIMITS: RegistryLimits = {
  // The reference deployment has 33,000 people (~5 MB); 2 million rows of
  // every column take ~250 MB and ~700 MB of memory once read.
  maxBytes: 256 * 1024 * 1024,
  maxRows: 2_000_000,
};

const TRUE = new Set(["true", "1", "yes", "y", "oui", "t"]);
const FALSE = new Set(["false", "0", "no", "n", "non", "f"]);

function flag(value: string, column: string, file: string, line: number): boolean | null {
  const v = value.trim().toLowerCase();
  if (v === "") return null;
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw new ImportError(file, line, `${column} must be true or false, not "${value.slice(0, 40)}".`);
}

/** Checks one CSV record; throws an ImportError naming the line. */
function checkRow(cells: string[], file: string, line: number): RegistryRow {
  if (cells.length !== REGISTRY_COLUMNS.length) {
    throw new ImportError(file, line, `has ${cells.length} columns; the header has ${REGISTRY_COLUMNS.length}.`);
  }
  const [xId, xUsername, did, handle, acct, language, notify, auto, announce] = cells.map((c) => c.trim()) as string[];
  const fail = (message: string): never => {
    throw new ImportError(file, line, message);
  };
  if (xId && !isXAccountId(xId)) fail(`x_id must be a positive whole number (an X account id), not "${xId.slice(0, 40)}".`);
  const username = xUsername ? (normalizeXUsername(xUsername) ?? fail(`x_username "${xUsername.slice(0, 40)}" is not an X username.`)) : null;
  if (username && !xId) fail("x_username is given without x_id.");
  if (did && !isDid(did!)) fail(`bluesky_did "${did!.slice(0, 60)}" is not a DID (did:plc:… or did:web:…).`);
  const bskyHandle = handle ? (normalizeBlueskyHandle(handle) ?? fail(`bluesky_handle "${handle.slice(0, 60)}" is not a Bluesky handle.`)) : null;
  if (bskyHandle && !did) fail("bluesky_handle is given without bluesky_did.");
  const fediverseAcct = acct ? (normalizeFediverseAcct(acct) ?? fail(`fediverse_acct "${acct.slice(0, 60)}" is not an account address like name@instance.example.`)) : null;
  if (!xId && !did && !fediverseAcct) fail("has no identity (x_id, bluesky_did or fediverse_acct).");
  const lang = language ? language.toLowerCase() : null;
  if (lang && !/^[a-z]{2}$/.test(lang)) fail(`language must be a two-letter code such as fr or en, not "${language!.slice(0, 20)}".`);
  return {
    line,
    xId: xId || null,
    xUsername: username,
    blueskyDid: did || null,
    blueskyHandle: bskyHandle,
    fediverseAcct,
    language: lang,
    notify: flag(notify!, "notify", file, line),
    autoReconnect: flag(auto!, "auto_reconnect", file, line),
    announceMe: flag(announce!, "announce_me", file, line),
  };
}

/** Reads and checks every row; identities repeated across rows are an error. */
async function readRows(file: string, offset: number, progress: Progress, maxRows: number): Promise<RegistryRow[]> {
  const rows: RegistryRow[] = [];
  const seen = new Map<string, number>();
  const parser = createReadStream(file, { start: offset }).pipe(
    parse({ relax_column_count: true, skip_empty_lines: true, bom: false, info: true }),
  );
  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: string[]; info: { lines: number } }>) {
      const line = info.lines + 1; // + the header
      if (rows.length >= maxRows) {
        throw new ImportError(file, line, `is past the ${maxRows.toLocaleString("en-US")} rows a registry import reads; split the file into smaller ones.`);
      }
      const row = checkRow(record, file, line);
      for (const key of [row.xId && `x_id ${row.xId}`, row.blueskyDid && `bluesky_did ${row.blueskyDid}`, row.fediverseAcct && `fediverse_acct ${row.fediverseAcct.toLowerCase()}`]) {
        if (!key) continue;
        const earlier = seen.get(key);
        if (earlier !== undefined) throw new ImportError(file, line, `${key} is also on line ${earlier}; each identity may appear once.`);
        seen.set(key, line);
      }
      rows.push(row);
      if (rows.length % 1000 === 0) progress.tick(rows.length);
    }
  } catch (error) {
    if (error instanceof ImportError) throw error;
    const e = error as { code?: string; lines?: number; message?: string };
    if (typeof e.code === "string" && e.code.startsWith("CSV_")) {
      throw new ImportError(file, (e.lines ?? 0) + 1, `is not valid CSV (${e.message?.replace(/^Invalid[^:]*: /, "") ?? e.code}).`);
    }
    throw error;
  }
  return rows;
}

export async function importRegistry(
  sql: Sql,
  file: string,
  options: { progress?: Progress; limits?: Partial<RegistryLimits> } = {},
): Promise<RegistryImportSummary> {
  const progress = options.progress ?? silentProgress;
  const limits = { ...DEFAULT_REGISTRY_LIMITS, ...options.limits };
  const started = performance.now();
  const header = await readCsvHeader(file, REGISTRY_COLUMNS);
  // Its rows are held in memory: a file no registry could fill is refused unread.
  if (header.size > limits.maxBytes) {
    const mb = (bytes: number) => `${Math.round(bytes / 1048576).toLocaleString("en-US")} MB`;
    throw new ImportError(file, undefined, `is ${mb(header.size)}, more than the ${mb(limits.maxBytes)} a registry import reads; split it into smaller files.`);
  }
  progress.phase("checking rows");
  const rows = await readRows(file, header.bodyOffset, progress, limits.maxRows);

  const result = await sql.begin(async (tx) => {
    // It merges people and derives matches: see src/store/lock-order.ts.
    await lockEdgesBeforePeople(tx);
    await tx`
      create temporary table registry_import (
        line integer primary key, x_id bigint, x_username text, bluesky_did text, bluesky_handle text,
        fediverse_acct text, language text, notify boolean, auto_reconnect boolean, announce_me boolean,
        person_id integer
      ) on commit drop`;
    progress.phase("loading", rows.length);
    const copy = await tx`copy registry_import (line, x_id, x_username, bluesky_did, bluesky_handle, fediverse_acct, language, notify, auto_reconnect, announce_me) from stdin`.writable();
    await new Promise<void>((resolve, reject) => {
      copy.on("error", reject);
      copy.on("finish", resolve);
      const cell = (v: string | number | boolean | null) =>
        v === null ? "\\N" : String(v).replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
      let chunk = "";
      for (const r of rows) {
        chunk += [r.line, r.xId, r.xUsername, r.blueskyDid, r.blueskyHandle, r.fediverseAcct, r.language, r.notify, r.autoReconnect, r.announceMe].map(cell).join("\t") + "\n";
        if (chunk.length > 1 << 16) {
          copy.write(chunk);
          chunk = "";
        }
      }
      copy.end(chunk);
    });
    await tx`analyze registry_import`;

    progress.phase("resolving people");
    const peopleMerged = await mergeOwners(tx);
    const [{ created } = { created: 0 }] = await tx<{ created: number }[]>`
      with fresh as (
        update registry_import set person_id = nextval(pg_get_serial_sequence('person', 'id'))
        where person_id is null returning *),
      made as (
        insert into person (id, language, notify, auto_reconnect, announce_me)
        overriding system value
        select person_id, language, coalesce(notify, true), coalesce(auto_reconnect, false), coalesce(announce_me, false)
        from fresh returning 1)
      select count(*)::int as created from made`;

    progress.phase("identities");
    // Its people held before their identities (which the upsert locks), as a
    // forget or a merge holds a person before the identities: the matches
    // inserted next lock the people, and would otherwise cross one.
    await tx`select 1 from person where id in (select person_id from registry_import) order by id for key share`;
    // Archive claims of these identities by other people are superseded.
    const losers = await tx<{ person_id: number }[]>`
      select distinct i.person_id from identity i join registry_import r
        on (i.platform = 'x' and i.x_id = r.x_id) or (i.platform = 'bluesky' and i.stable_id = r.bluesky_did)
      where i.person_id <> r.person_id`;
    const counts = await upsertIdentities(tx);
    const identitiesReplaced = await keepOneAccountPerPlatform(tx);

    progress.phase("matching");
    const matches = new Matches(tx);
    const ids = (await tx<{ person_id: number }[]>`select distinct person_id from registry_import`).map((r) => r.person_id);
    await matches.prune(losers.map((l) => l.person_id));
    const matchesAdded = (await matches.refreshForFollowers(ids)) + (await matches.refreshForTargets(ids));
    progress.end();
    return { peopleCreated: created, peopleMerged, matchesAdded, identitiesReplaced, ...counts };
  });
  return { file, rows: rows.length, ...result, seconds: (performance.now() - started) / 1000 };
}

/**
 * Gives each row the person who already holds one of its identities (by a
 * verification stronger than an archive claim). When a row's identities
 * belong to several people, the registry says they are one: merge them.
 */
async function mergeOwners(tx: Queryable): Promise<number> {
  await tx`
    create temporary table registry_owner on commit drop as
    select r.line, i.person_id from registry_import r join identity i on i.platform = 'x' and i.x_id = r.x_id and i.verified_by <> 'archive'
    union
    select r.line, i.person_id from registry_import r join identity i on i.platform = 'bluesky' and i.stable_id = r.bluesky_did
    union
    select r.line, i.person_id from registry_import r join identity i
      on i.platform = 'fediverse' and lower(i.handle) = lower(r.fediverse_acct)`;
  const conflicts = await tx<{ line: number; people: number[] }[]>`
    select line, array_agg(person_id order by person_id) as people from registry_owner
    group by line having count(*) > 1`;
  if (conflicts.length > 0) {
    // All of them at once, in id order, before any merge.
    const all = [...new Set(conflicts.flatMap((c) => c.people))];
    await tx`select id from person where id = any(${all}::int[]) order by id for update`;
  }
  const people = new People(tx);
  // Who each merged person went into: a later row may name one already gone
  // (rows chain people together), so each name is followed to its keeper.
  const keptIn = new Map<number, number>();
  const current = (id: number) => {
    while (keptIn.has(id)) id = keptIn.get(id)!;
    return id;
  };
  let merged = 0;
  for (const { people: ids } of conflicts) {
    const [keep, ...drop] = [...new Set(ids.map(current))].sort((x, y) => x - y);
    for (const d of drop) {
      if (await people.get(d)) {
        await people.merge(keep!, d);
        merged++;
      }
      keptIn.set(d, keep!);
      await tx`update registry_owner set person_id = ${keep!} where person_id = ${d}`;
    }
  }
  await tx`
    update registry_import r set person_id = o.person_id
    from (select line, min(person_id) as person_id from registry_owner group by line) o
    where o.line = r.line`;
  return merged;
}

/**
 * A person has one account per platform (the bots refuse to link a second):
 * where a row names a Bluesky or fediverse account, any other account its
 * person had there goes (a later export naming a new account, or two people
 * merged who each had one), with its stored authorization.
 * Reconnection then acts on the account the registry names. Several rows of
 * one person (chained by the merge): the last one names it.
 */
async function keepOneAccountPerPlatform(tx: Queryable): Promise<number> {
  // One equi-join on (person, platform), not a subquery per identity: a
  // registry of 20,000 rows took 30 s that way, as a join 64 ms (measured).
  const replaced = await tx<{ id: number }[]>`
    with named as (
      select distinct on (person_id, platform) person_id, platform, account
      from registry_import
      cross join lateral (values ('bluesky', bluesky_did), ('fediverse', lower(fediverse_acct))) as v (platform, account)
      where account is not null
      order by person_id, platform, line desc)
    select i.id from identity i join named n
      on i.person_id = n.person_id and i.platform::text = n.platform
      and (case i.platform when 'bluesky' then i.stable_id else lower(i.handle) end) is distinct from n.account`;
  const ids = replaced.map((r) => r.id);
  // Their tokens still work at their servers: revoked there by the service.
  await retireAuthorizations(tx, ids);
  if (ids.length > 0) await tx`delete from identity where id = any(${ids}::int[])`;
  return ids.length;
}

async function upsertIdentities(tx: Queryable): Promise<{ identitiesAdded: number; identitiesUpdated: number }> {
  const results = [
    // X and Bluesky identities are keyed by stable id (X account id, DID).
    await tx<{ inserted: boolean }[]>`
      insert into identity (person_id, platform, stable_id, handle, verified_by)
      select r.person_id, v.platform, v.stable_id, v.handle, 'platform'
      from registry_import r
      cross join lateral (values ('x', r.x_id::text, r.x_username), ('bluesky', r.bluesky_did, r.bluesky_handle))
        as v (platform, stable_id, handle)
      where v.stable_id is not null
      on conflict (platform, stable_id) do update set
        person_id = excluded.person_id, handle = coalesce(excluded.handle, identity.handle),
        verified_by = 'platform', updated_at = now(),
        verified_at = case when identity.verified_by = 'archive' then now() else identity.verified_at end
      where (identity.person_id, identity.handle, identity.verified_by)
        is distinct from (excluded.person_id, coalesce(excluded.handle, identity.handle), 'platform'::verification)
      returning (xmax = 0) as inserted`,
    // Fediverse accounts may be known by acct only (their actor URI comes when they write).
    await tx<{ inserted: boolean }[]>`
      insert into identity (person_id, platform, handle, verified_by)
      select person_id, 'fediverse', fediverse_acct, 'platform' from registry_import where fediverse_acct is not null
      on conflict (lower(handle)) where platform = 'fediverse' do update set
        person_id = excluded.person_id, verified_by = 'platform', updated_at = now(),
        verified_at = case when identity.verified_by = 'archive' then now() else identity.verified_at end
      where (identity.person_id, identity.verified_by) is distinct from (excluded.person_id, 'platform'::verification)
      returning (xmax = 0) as inserted`,
  ].flat();
  const added = results.filter((r) => r.inserted).length;
  return { identitiesAdded: added, identitiesUpdated: results.length - added };
}
