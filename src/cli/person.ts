/**
 * One person, for the operator: finding them from whatever the request
 * names (a person id, any of their accounts), and what the store holds about
 * them. Used by `reconnexion person`, `reconnexion forget` and
 * `import archive --person`. Tokens never appear: only what kind of
 * authorization exists and when it was granted.
 */
import { parseAccountName } from "../conversation/commands/accounts.ts";
import { isDid, isXAccountId, normalizeBlueskyHandle, normalizeFediverseAcct, normalizeXUsername } from "../store/handles.ts";
import type { AuthorizationInfo } from "../store/authorizations.ts";
import { MATCH_STATES, type IdentityRef, type MatchCounts, type Platform, type PersonSettings, type Store } from "../store/index.ts";
import type { JobCounts, ReconnectJob } from "../store/reconnect-jobs.ts";

/** A person reference that names nobody, or cannot be read; the message is one sentence. */
export class PersonRefError extends Error {
  override name = "PersonRefError";
}

/** An operator command that deletes asked without `--yes`: nothing was done. */
export class NeedsConfirmationError extends Error {
  override name = "NeedsConfirmationError";
}

const PLATFORM_WORDS: Record<string, Platform> = {
  x: "x",
  twitter: "x",
  bluesky: "bluesky",
  bsky: "bluesky",
  fediverse: "fediverse",
  mastodon: "fediverse",
  fedi: "fediverse",
};

/** The ways to name a person on the command line. */
export const PERSON_FORMS =
  "a person id (as `reconnexion person` shows it) or an account: x:<id or username>, bluesky:<did or handle>, " +
  "fediverse:<user@host or actor URI>, or a profile link";

/** How an identity is looked up, from `platform:value`; undefined when it cannot be one. */
function refFor(platform: Platform, value: string): IdentityRef | undefined {
  const v = value.trim();
  if (platform === "x") {
    const handle = normalizeXUsername(v);
    if (isXAccountId(v)) return { platform, stableId: v, handle };
    return handle ? { platform, handle } : undefined;
  }
  if (platform === "bluesky") {
    if (isDid(v)) return { platform, stableId: v };
    const handle = normalizeBlueskyHandle(v);
    return handle ? { platform, handle } : undefined;
  }
  if (/^https?:\/\//i.test(v)) {
    const named = parseAccountName(v);
    return { platform, stableId: v, handle: named?.platform === "fediverse" ? named.handle : null };
  }
  const acct = normalizeFediverseAcct(v);
  return acct ? { platform, handle: acct } : undefined;
}

/** A reference without a platform word: a DID, a profile link, `@user@host`, a Bluesky handle. */
function bareRef(value: string): IdentityRef | undefined {
  if (isDid(value)) return { platform: "bluesky", stableId: value };
  if (/^https?:\/\//i.test(value)) {
    const named = parseAccountName(value);
    // An actor URI is looked up as it is; a profile page by the account it names.
    if (!named || named.platform === "fediverse") return { platform: "fediverse", stableId: value, handle: named?.handle ?? null };
    return { platform: named.platform, handle: named.handle };
  }
  const named = parseAccountName(value);
  // A bare word would be an X username: too easily a typo for a person id.
  return named && named.platform !== "x" ? { platform: named.platform, handle: named.handle } : undefined;
}

/** The largest person id (`person.id` is a PostgreSQL integer). */
const MAX_PERSON_ID = 2_147_483_647;

/** The person `ref` names: a person id, or any account of theirs. */
export async function resolvePerson(store: Store, ref: string): Promise<number> {
  const value = ref.trim();
  if (/^[0-9]+$/.test(value)) {
    const id = Number(value);
    // Person ids are PostgreSQL integers: a larger number is no person (more
    // likely an X account id typed without `x:`), and is never sent to the
    // database, which would refuse it as out of range.
    if (id > MAX_PERSON_ID) {
      throw new PersonRefError(`No person ${value} in the store (person ids are below ${MAX_PERSON_ID + 1}); for the X account ${value}, write x:${value}.`);
    }
    if (await store.people.get(id)) return id;
    throw new PersonRefError(`No person ${value} in the store.`);
  }
  const colon = value.indexOf(":");
  const word = colon > 0 ? PLATFORM_WORDS[value.slice(0, colon).toLowerCase()] : undefined;
  const identityRef = word ? refFor(word, value.slice(colon + 1)) : bareRef(value);
  if (!identityRef) throw new PersonRefError(`"${ref}" names no person: give ${PERSON_FORMS}.`);
  const identity = await store.identities.find(identityRef);
  if (!identity) {
    throw new PersonRefError(`Nobody in the store has the ${identityRef.platform} account "${word ? value.slice(colon + 1).trim() : value}".`);
  }
  return identity.personId;
}

export interface PersonReport {
  id: number;
  createdAt: Date;
  settings: PersonSettings;
  identities: {
    platform: Platform;
    stableId: string | null;
    handle: string | null;
    verifiedBy: string;
    authorization: AuthorizationInfo | null;
  }[];
  /** X accounts the person follows, as the store's edges and their uploaded archive say. */
  followedOnX: number;
  /** The X archive the person uploaded themselves (unverified: serves their own matching only). */
  upload: { xAccountId: string; xUsername: string | null; followings: number; uploadedAt: Date } | null;
  matches: MatchCounts;
  /** Open jobs and the latest finished one, per platform. */
  jobs: (Pick<ReconnectJob, "id" | "platform" | "state" | "reason" | "createdAt" | "finishedAt"> & { targets: JobCounts })[];
}

/** What the store holds about person `personId` (who must exist). */
export async function personReport(store: Store, personId: number): Promise<PersonReport> {
  const view = await store.personView(personId);
  if (!view) throw new PersonRefError(`No person ${personId} in the store.`);
  const [authorizations, followedOnX, upload, matches, jobs] = await Promise.all([
    store.authorizations.describeForPerson(personId),
    store.people.followingCount(personId),
    store.uploadedArchives.get(personId),
    store.matches.counts(personId),
    store.reconnectJobs.recentFor(personId),
  ]);
  const { person } = view;
  return {
    id: person.id,
    createdAt: person.createdAt,
    settings: { language: person.language, notify: person.notify, autoReconnect: person.autoReconnect, announceMe: person.announceMe },
    identities: view.identities.map((i) => ({
      platform: i.platform,
      stableId: i.stableId,
      handle: i.handle,
      verifiedBy: i.verifiedBy,
      authorization: authorizations.get(i.id) ?? null,
    })),
    followedOnX,
    upload: upload ? { xAccountId: upload.xAccountId, xUsername: upload.xUsername, followings: upload.followings, uploadedAt: upload.uploadedAt } : null,
    matches,
    jobs: await Promise.all(
      jobs.map(async (j) => ({
        id: j.id, platform: j.platform, state: j.state, reason: j.reason, createdAt: j.createdAt, finishedAt: j.finishedAt,
        targets: await store.reconnectJobs.counts(j.id),
      })),
    ),
  };
}

const day = (d: Date) => d.toISOString().slice(0, 10);
const onOff = (b: boolean) => (b ? "on" : "off");

/** The report as a few aligned lines for a terminal. */
export function formatPersonReport(r: PersonReport): string {
  const s = r.settings;
  const lines = [
    `person ${r.id}, since ${day(r.createdAt)}`,
    `  language ${s.language ?? "(from each message)"}, notify ${onOff(s.notify)}, auto-reconnect ${onOff(s.autoReconnect)}, announce me ${onOff(s.announceMe)}`,
    "accounts",
  ];
  const table = (rows: string[][]) => {
    const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
    return rows.map((row) => `  ${row.map((cell, c) => cell.padEnd(widths[c]!)).join("  ")}`.trimEnd());
  };
  lines.push(
    ...table(
      r.identities.map((i) => {
        const auth = i.authorization;
        const how = `verified by ${i.verifiedBy}${auth ? `, authorized (${auth.kind}, granted ${day(auth.grantedAt)})` : ""}`;
        return [i.platform, i.handle ? `@${i.handle}` : "-", i.stableId ?? "-", how];
      }),
    ),
  );
  if (r.upload) {
    const u = r.upload;
    lines.push(`uploaded archive: X account ${u.xUsername ? `@${u.xUsername} ` : ""}${u.xAccountId} (unverified), ${u.followings.toLocaleString("en-US")} follows, ${day(u.uploadedAt)}`);
  }
  lines.push(`follows on X: ${r.followedOnX.toLocaleString("en-US")} accounts`, "matches");
  lines.push(...table(Object.entries(r.matches).map(([platform, c]) => [platform, ...MATCH_STATES.map((st) => `${st.replace("_", " ")} ${c[st]}`), `total ${c.total}`])));
  lines.push("reconnection jobs");
  if (r.jobs.length === 0) lines.push("  none");
  for (const j of r.jobs) {
    const t = j.targets;
    lines.push(
      `  #${j.id} ${j.platform} ${j.state}${j.reason ? ` (${j.reason})` : ""}, asked ${day(j.createdAt)}${j.finishedAt ? `, ended ${day(j.finishedAt)}` : ""}: ` +
        `${t.total} targets, ${t.followed + t.requested} followed, ${t.already_following} already, ${t.not_found + t.gone} not found, ${t.failed + t.blocked} failed, ${t.todo} to do`,
    );
  }
  return lines.join("\n");
}
