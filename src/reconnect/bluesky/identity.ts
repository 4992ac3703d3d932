/**
 * What both Bluesky authorization flows need from the network: a fetch that
 * will not reach private addresses on behalf of a stranger (handles, DID
 * documents and PDS URLs are chosen by whoever signs in), handle → DID → PDS
 * resolution, and one test for "the authorization is gone".
 */
import { lookup } from "node:dns/promises";
import net from "node:net";
import {
  AtprotoHandleResolverNode,
  DidResolverCommon,
  type HandleResolver,
  type ResolvedHandle,
} from "@atproto/oauth-client-node";
import { isPublicAddress, publicFetch } from "../../net/public-fetch.ts";
import { AuthorizationExpiredError } from "../types.ts";

/** Where identities are resolved; the defaults are the public network's. */
export interface BlueskyResolverOptions {
  /** PLC directory for did:plc (default https://plc.directory). */
  plcUrl?: string | URL;
  /**
   * Resolve handles with `com.atproto.identity.resolveHandle` on this service
   * (tests: the local PDS) instead of DNS TXT and `/.well-known/atproto-did`.
   */
  handleResolver?: string | URL;
  /** Allow http and private or loopback addresses: tests and sandbox only. */
  allowPrivateAddresses?: boolean;
}

/** Refused before any byte was sent: the URL points somewhere we must not go. */
export class ForbiddenDestinationError extends TypeError {
  constructor(url: URL, why: string) {
    super(`Refusing to fetch ${url.origin}: ${why}.`);
    this.name = "ForbiddenDestinationError";
  }
}

async function assertPublicDestination(url: URL): Promise<void> {
  if (url.protocol !== "https:") throw new ForbiddenDestinationError(url, "only https is allowed");
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const addresses = net.isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  if (addresses.length === 0 || !addresses.every(isPublicAddress)) {
    throw new ForbiddenDestinationError(url, "private or reserved address");
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 5;

/**
 * A fetch for URLs that come from user input. Unless private addresses are
 * allowed, only https to public addresses, checked before each request (a
 * clear error) and again when each connection is made (publicFetch: a DNS
 * answer that changes in between is refused too), at each redirect.
 */
export function networkFetch(options: { allowPrivateAddresses?: boolean } = {}): typeof globalThis.fetch {
  if (options.allowPrivateAddresses) return (input, init) => globalThis.fetch(input, init);
  return async (input, init) => {
    let request = new Request(input, init);
    const mode = request.redirect;
    for (let hop = 0; ; hop++) {
      await assertPublicDestination(new URL(request.url));
      const response = await publicFetch(new URL(request.url), {
        method: request.method,
        headers: request.headers,
        body: request.body ? await request.clone().arrayBuffer() : null,
        signal: request.signal,
        redirect: "manual",
      });
      const location = response.headers.get("location");
      if (!REDIRECTS.has(response.status) || !location || mode === "manual") return response;
      await response.body?.cancel();
      if (mode === "error") throw new TypeError(`Unexpected redirect from ${new URL(request.url).origin}.`);
      if (hop >= MAX_REDIRECTS) throw new TypeError("Too many redirects.");
      const keepsBody = response.status === 307 || response.status === 308;
      if (keepsBody && request.method !== "GET" && request.method !== "HEAD") {
        throw new TypeError("Cannot replay a request body across a redirect.");
      }
      request = new Request(new URL(location, request.url), {
        method: keepsBody || request.method === "HEAD" ? request.method : "GET",
        headers: request.headers,
        signal: request.signal,
        redirect: "manual",
      });
    }
  };
}

/** The handle resolver the options ask for (DNS + well-known by default). */
export function handleResolverFor(options: BlueskyResolverOptions): HandleResolver {
  const fetch = networkFetch(options);
  return options.handleResolver
    ? new ServiceHandleResolver(new URL(options.handleResolver), fetch)
    : new AtprotoHandleResolverNode({ fetch });
}

/**
 * `com.atproto.identity.resolveHandle` on a service. Any 400 means "no such
 * handle": servers answer `InvalidRequest` or `HandleNotFound` depending on
 * their version (the library's resolver only knows the first).
 */
class ServiceHandleResolver implements HandleResolver {
  readonly #service: URL;
  readonly #fetch: typeof globalThis.fetch;
  constructor(service: URL, fetch: typeof globalThis.fetch) {
    this.#service = service;
    this.#fetch = fetch;
  }

  async resolve(handle: string, options?: { signal?: AbortSignal }): Promise<ResolvedHandle> {
    const url = new URL("/xrpc/com.atproto.identity.resolveHandle", this.#service);
    url.searchParams.set("handle", handle);
    const response = await this.#fetch(url, { redirect: "error", ...(options?.signal ? { signal: options.signal } : {}) });
    if (response.status === 400) {
      await response.body?.cancel();
      return null;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`Handle resolution failed with HTTP ${response.status}.`);
    }
    const { did } = (await response.json()) as { did?: unknown };
    if (typeof did !== "string" || !/^did:(plc|web):/.test(did)) throw new Error("Handle resolution returned no DID.");
    return did as ResolvedHandle;
  }
}

/** The account named by a handle or a DID, as its DID document describes it. */
export interface ResolvedAccount {
  did: string;
  /** The handle, when it resolves back to this DID. */
  handle: string | null;
  /** The account's PDS (`#atproto_pds` in the DID document). */
  pds: string;
}

/** Nobody answers to that handle or DID. */
export class UnknownAccountError extends Error {
  constructor(identifier: string, options?: { cause?: unknown }) {
    super(`No Bluesky account found for ${identifier}.`, options);
    this.name = "UnknownAccountError";
  }
}

const HANDLE = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DID = /^did:(plc|web):[a-zA-Z0-9._:%-]+$/;

/** Normalises what a person typed (`@Alice.bsky.social`, a DID) into a handle or DID, or null. */
export function parseIdentifier(input: string): { did: string } | { handle: string } | null {
  const value = input.trim().replace(/^@/, "");
  if (DID.test(value)) return { did: value };
  const handle = value.toLowerCase();
  return handle.length <= 253 && HANDLE.test(handle) ? { handle } : null;
}

/**
 * Handle or DID → DID → DID document → PDS, checking that the handle and
 * the document agree (a handle is only believed when both directions match).
 */
export async function resolveAccount(identifier: string, options: BlueskyResolverOptions = {}): Promise<ResolvedAccount> {
  const parsed = parseIdentifier(identifier);
  if (!parsed) throw new UnknownAccountError(identifier);
  const fetch = networkFetch(options);
  let did: string;
  if ("did" in parsed) {
    did = parsed.did;
  } else {
    const found = await handleResolverFor(options).resolve(parsed.handle);
    if (!found) throw new UnknownAccountError(identifier);
    did = found;
  }
  const didResolver = new DidResolverCommon({
    fetch,
    allowHttp: options.allowPrivateAddresses ?? false,
    ...(options.plcUrl ? { plcDirectoryUrl: options.plcUrl } : {}),
  });
  let document;
  try {
    document = await didResolver.resolve(did as `did:${string}:${string}`);
  } catch (error) {
    // A DID nobody registered is "unknown"; anything else (network) is not ours to hide.
    if (isNotFound(error)) throw new UnknownAccountError(identifier);
    throw error;
  }
  const pds = document.service?.find(
    (s) => (s.id === "#atproto_pds" || s.id === `${did}#atproto_pds`) && s.type === "AtprotoPersonalDataServer",
  )?.serviceEndpoint;
  if (typeof pds !== "string") throw new UnknownAccountError(identifier);
  const claimed = document.alsoKnownAs?.find((a) => a.startsWith("at://"))?.slice("at://".length).toLowerCase() ?? null;
  if ("handle" in parsed) {
    if (claimed !== parsed.handle) throw new UnknownAccountError(identifier);
    return { did, handle: parsed.handle, pds };
  }
  const back = claimed ? await handleResolverFor(options).resolve(claimed).catch(() => null) : null;
  return { did, handle: back === did ? claimed : null, pds };
}

/** `error` and its causes, outermost first (bounded: causes can loop). */
export function causes(error: unknown): Error[] {
  const chain: Error[] = [];
  for (let e = error; e instanceof Error && chain.length < 8; e = e.cause) chain.push(e);
  return chain;
}

/** Whether the failure is "no such DID" (the directory answered 404/410). */
export function isNotFound(error: unknown): boolean {
  return causes(error).some((e) => {
    const status = (e as { statusCode?: unknown }).statusCode ?? (e as { status?: unknown }).status;
    return status === 404 || status === 410;
  });
}

/**
 * Whether `error` means the person's authorization is gone (revoked,
 * expired, deleted): an {@link AuthorizationExpiredError}, directly or as
 * the cause of the XRPC error an agent call turned it into.
 */
export function isAuthorizationExpired(error: unknown): boolean {
  return causes(error).some((e) => e instanceof AuthorizationExpiredError);
}
