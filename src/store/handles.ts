/**
 * Normalizing what people type for accounts. Handles and instance names are
 * case-insensitive everywhere (`Alice@Mastodon.Social` is one account); the
 * store compares them lower-cased and keeps the case people use for display.
 */

const INT64_MAX = 9_223_372_036_854_775_807n;

/** An X account id: a positive 64-bit integer written in decimal. */
export function isXAccountId(value: string): boolean {
  return /^[1-9][0-9]{0,18}$/.test(value) && BigInt(value) <= INT64_MAX;
}

/** `@Alice@Mastodon.Social` → `Alice@mastodon.social`; null when not an acct. */
export function normalizeFediverseAcct(input: string): string | null {
  const acct = input.trim().replace(/^acct:/i, "").replace(/^@/, "");
  const match = /^([a-zA-Z0-9_.-]{1,64})@([a-zA-Z0-9.-]+\.[a-zA-Z0-9-]{2,}|localhost|[0-9.]+)(?::([0-9]{1,5}))?$/.exec(acct);
  if (!match) return null;
  const [, user, host, port] = match;
  return `${user}@${host!.toLowerCase()}${port ? `:${port}` : ""}`;
}

/** `@Alice.bsky.social` → `alice.bsky.social`; null when not a domain handle. */
export function normalizeBlueskyHandle(input: string): string | null {
  const handle = input.trim().replace(/^@/, "").toLowerCase();
  return /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/.test(handle) &&
    handle.length <= 253
    ? handle
    : null;
}

/** `@Alice_X` → `Alice_X`; null when not an X username. */
export function normalizeXUsername(input: string): string | null {
  const name = input.trim().replace(/^@/, "");
  return /^[A-Za-z0-9_]{1,50}$/.test(name) ? name : null;
}

/** A Bluesky DID (`did:plc:…` or `did:web:…`). */
export function isDid(value: string): boolean {
  return /^did:[a-z]+:[a-zA-Z0-9._:%-]+$/.test(value);
}
