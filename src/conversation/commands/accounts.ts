/** Reading an account named in a command (`@alice@host`, `@bob.bsky.social`, `@carol`, a profile URL). */
import { normalizeBlueskyHandle, normalizeFediverseAcct, normalizeXUsername } from "../../store/handles.ts";
import type { Platform, TargetPlatform } from "../../store/index.ts";

export interface AccountName {
  platform: Platform;
  /** Canonical: fediverse `user@host` (host lower-cased), Bluesky handle lower-cased, X username. */
  handle: string;
}

/**
 * Which account a word names: a fediverse acct has a second `@`, a Bluesky
 * handle is a domain, anything else that fits is an X username. Profile
 * links (`https://bsky.app/profile/…`, `https://host/@user`) work too.
 */
export function parseAccountName(token: string): AccountName | undefined {
  const word = token.trim().replace(/^[<(]+|[>),.;:!?]+$/g, "");
  if (/^https?:\/\//i.test(word)) return fromUrl(word);
  const bare = word.replace(/^@/, "");
  if (bare.includes("@")) {
    const acct = normalizeFediverseAcct(bare);
    return acct ? { platform: "fediverse", handle: acct } : undefined;
  }
  if (bare.includes(".")) {
    const handle = normalizeBlueskyHandle(bare);
    return handle ? { platform: "bluesky", handle } : undefined;
  }
  const x = normalizeXUsername(bare);
  return x ? { platform: "x", handle: x } : undefined;
}

function fromUrl(value: string): AccountName | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  const bsky = /^\/profile\/([^/]+)\/?$/.exec(url.pathname);
  if (url.hostname === "bsky.app" && bsky) {
    const handle = normalizeBlueskyHandle(decodeURIComponent(bsky[1]!));
    return handle ? { platform: "bluesky", handle } : undefined;
  }
  const fedi = /^\/@([A-Za-z0-9_.-]+)(?:@([^/]+))?\/?$/.exec(url.pathname);
  if (fedi) {
    const acct = normalizeFediverseAcct(`${fedi[1]}@${fedi[2] ?? url.host}`);
    return acct ? { platform: "fediverse", handle: acct } : undefined;
  }
  if (url.hostname === "x.com" || url.hostname === "twitter.com") {
    const x = normalizeXUsername(url.pathname.replace(/^\/|\/$/g, ""));
    return x ? { platform: "x", handle: x } : undefined;
  }
  return undefined;
}

/** A public profile address for an account, for people to open. */
export function profileUrl(platform: TargetPlatform, handle: string | null, stableId: string | null): string | null {
  if (platform === "bluesky") {
    const who = handle ?? stableId;
    return who ? `https://bsky.app/profile/${who}` : null;
  }
  if (stableId && /^https?:\/\//.test(stableId)) return stableId;
  const acct = handle ? /^([^@]+)@(.+)$/.exec(handle) : null;
  return acct ? `https://${acct[2]}/@${acct[1]}` : null;
}
