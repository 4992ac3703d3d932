/**
 * The acct (`user@domain`) a remote actor really holds, as WebFinger
 * confirms it. An instance's account domain can differ from its web host
 * (Mastodon's LOCAL_DOMAIN / WEB_DOMAIN): the actor's own host answers with
 * `acct:user@domain`, and that domain's WebFinger must point back to the
 * same actor before the bot believes it. Anything unconfirmed → null.
 */
import { lookupWebFinger, type ResourceDescriptor } from "@fedify/webfinger";
import type { KvStore } from "@fedify/fedify";
import { Temporal } from "@js-temporal/polyfill";
import type { TtlCache } from "./cache.ts";

export interface AcctOptions {
  allowPrivateAddress: boolean;
  userAgent?: string;
  /** Caches confirmed accts (a day) and failures (an hour). */
  kv?: KvStore;
  /** This process's copy of the above, for minutes (saves a database round trip per message). */
  memory?: TtlCache<{ acct: string | null }>;
  /**
   * The scheme of WebFinger lookups on an account domain. Always https,
   * except in tests and the sandbox (private addresses allowed), where an
   * http actor's account domain is asked over http too.
   */
  schemeFor?: (actorId: URL) => "https:" | "http:";
}

const ACCT = /^acct:([^@\s]+)@([^@\s]+)$/i;

function pointsTo(descriptor: ResourceDescriptor, actorId: URL): boolean {
  const href = actorId.href;
  if ((descriptor.aliases ?? []).some((a) => a === href)) return true;
  return (descriptor.links ?? []).some((l) => l.rel === "self" && l.href === href);
}

async function fetchJrd(url: URL, options: AcctOptions): Promise<ResourceDescriptor | null> {
  if (url.protocol === "https:" || !options.allowPrivateAddress) {
    // Fedify's lookup: https, SSRF checks, redirects.
    return lookupWebFinger(url.searchParams.get("resource")!, {
      allowPrivateAddress: options.allowPrivateAddress,
      ...(options.userAgent ? { userAgent: options.userAgent } : {}),
    });
  }
  const response = await fetch(url, { headers: { Accept: "application/jrd+json" }, redirect: "follow" });
  if (!response.ok) return null;
  return (await response.json()) as ResourceDescriptor;
}

/** Looks up and confirms an actor's acct; null when WebFinger does not vouch for one. */
export async function confirmAcct(actorId: URL, options: AcctOptions): Promise<string | null> {
  const cacheKey = ["reconnexion", "acct", actorId.href] as const;
  const remembered = options.memory?.get(actorId.href);
  if (remembered) return remembered.acct;
  if (options.kv) {
    const cached = await options.kv.get<{ acct: string | null }>(cacheKey);
    if (cached) {
      options.memory?.set(actorId.href, cached);
      return cached.acct;
    }
  }
  let acct: string | null = null;
  try {
    acct = await resolve(actorId, options);
  } catch {
    acct = null;
  }
  const hours = acct ? 24 : 1;
  await options.kv?.set(cacheKey, { acct }, { ttl: Temporal.Duration.from({ hours }) as never });
  options.memory?.set(actorId.href, { acct }, hours * 3_600_000);
  return acct;
}

async function resolve(actorId: URL, options: AcctOptions): Promise<string | null> {
  const descriptor = await lookupWebFinger(actorId, {
    allowPrivateAddress: options.allowPrivateAddress,
    ...(options.userAgent ? { userAgent: options.userAgent } : {}),
  });
  if (!descriptor) return null;
  const candidates = [descriptor.subject, ...(descriptor.aliases ?? [])].filter((a): a is string => !!a);
  for (const candidate of candidates) {
    const m = ACCT.exec(candidate);
    if (!m) continue;
    const user = m[1]!;
    const domain = m[2]!.toLowerCase();
    const acct = `${user}@${domain}`;
    if (domain === actorId.host.toLowerCase()) return acct;
    // Another domain claims the account: it must say so itself.
    const scheme = options.schemeFor?.(actorId) ?? "https:";
    const url = new URL(`${scheme}//${domain}/.well-known/webfinger`);
    url.searchParams.set("resource", `acct:${acct}`);
    const confirmation = await fetchJrd(url, options);
    if (confirmation && pointsTo(confirmation, actorId)) return acct;
  }
  return null;
}
