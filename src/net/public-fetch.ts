/**
 * Requests to servers that people name (their Mastodon instance, the inbox
 * their actor names), which must never reach this machine's own network
 * (SSRF): every address a host resolves to is checked when the connection
 * is made, not only before, so a DNS answer that changes in between (DNS
 * rebinding) is refused too, and so is each hop of a redirect.
 */
import type dns from "node:dns";
import { lookup } from "node:dns/promises";
import net from "node:net";
import { Agent, buildConnector, type Dispatcher, Dispatcher1Wrapper, EnvHttpProxyAgent, fetch as undiciFetch, getGlobalDispatcher, setGlobalDispatcher } from "undici";

/** A host that is, or resolves to, an address no public server has. */
export class NonPublicAddressError extends Error {
  readonly code = "ENONPUBLIC";
  constructor(host: string) {
    super(`${host} is not a public address`);
    this.name = "NonPublicAddressError";
  }
}

// Addresses no public server lives on (loopback, private, link-local and site-local, CGNAT, documentation,
// multicast, local-use NAT64 and SRv6 prefixes, IPv4-compatible ::a.b.c.d — which covers :: and ::1 —
// and IPv4-translated ::ffff:0:a.b.c.d). The well-known NAT64 prefix is judged by the IPv4 address it carries.
// BlockList matches IPv4-mapped IPv6 addresses (::ffff:10.0.0.1) against the IPv4 rules.
const NOT_PUBLIC = new net.BlockList();
for (const [address, prefix] of [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16], ["172.16.0.0", 12],
  ["192.0.0.0", 24], ["192.0.2.0", 24], ["192.88.99.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15],
  ["198.51.100.0", 24], ["203.0.113.0", 24], ["224.0.0.0", 4], ["240.0.0.0", 4],
] as const) NOT_PUBLIC.addSubnet(address, prefix, "ipv4");
for (const [address, prefix] of [
  ["::", 96], ["::ffff:0:0:0", 96], ["64:ff9b:1::", 48], ["100::", 64], ["2001::", 23],
  ["2001:db8::", 32], ["2002::", 16], ["3fff::", 20], ["5f00::", 16], ["fc00::", 7], ["fe80::", 10],
  ["fec0::", 10], ["ff00::", 8],
] as const) NOT_PUBLIC.addSubnet(address, prefix, "ipv6");

const NAT64 = new net.BlockList();
NAT64.addSubnet("64:ff9b::", 96, "ipv6");

/** The IPv4 address in an IPv6 address's last 32 bits (written as hextets or dotted). */
function embeddedIPv4(ipv6: string): string {
  let text = ipv6;
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const front = head ? head.split(":") : [];
  const back = tail ? tail.split(":") : [];
  const groups = tail === undefined ? front : [...front, ...Array<string>(8 - front.length - back.length).fill("0"), ...back];
  const [high = 0, low = 0] = groups.slice(6).map((g) => Number.parseInt(g, 16));
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/** True for an address a public server may have. */
export function isPublicAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return false;
  // An IPv6-only host reaches IPv4 servers through NAT64 (DNS64 answers): the server is what counts.
  if (family === 6 && NAT64.check(address, "ipv6")) return isPublicAddress(embeddedIPv4(address));
  return !NOT_PUBLIC.check(address, family === 4 ? "ipv4" : "ipv6");
}

/**
 * Refuses a host that is, or resolves to, a non-public address: a clear
 * early answer. The connection itself is checked again (publicFetch).
 * Returns false when the host does not resolve at all.
 */
export async function assertPublicHost(hostname: string): Promise<boolean> {
  const host = hostname.replace(/^\[|\]$/g, "");
  const addresses = net.isIP(host) ? [host] : (await lookup(host, { all: true, verbatim: true }).catch(() => [])).map((a) => a.address);
  if (addresses.length === 0) return false;
  if (!addresses.every(isPublicAddress)) throw new NonPublicAddressError(host);
  return true;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | dns.LookupAddress[], family?: number) => void;

export interface PublicFetchOptions {
  /** Resolves a host name (default: the system resolver, as every connection does). */
  resolve?: (hostname: string) => Promise<dns.LookupAddress[]>;
  /** The address policy (default isPublicAddress; tests widen it to prove the path works). */
  isAllowed?: (address: string) => boolean;
}

const systemResolve = (hostname: string) => lookup(hostname, { all: true, verbatim: true });

export interface PublicDispatcherOptions extends PublicFetchOptions {
  /**
   * The operator's own services (this one, the Bluesky PDS, PLC, AppView),
   * reached wherever they are: exact origins (scheme, host and port), so a
   * redirect to another port of the same host is still checked.
   */
  trustedOrigins?: Iterable<string>;
}

const bareHost = (hostname: string) => hostname.replace(/^\[|\]$/g, "").toLowerCase();

/** The origin a connection is for (`https://host:port`, default ports left out as URL does). */
function connectionOrigin(options: buildConnector.Options): string | undefined {
  const host = bareHost(options.hostname);
  try {
    return new URL(`${options.protocol}//${net.isIPv6(host) ? `[${host}]` : host}${options.port ? `:${options.port}` : ""}`).origin;
  } catch {
    return undefined;
  }
}

/**
 * Whether this process sends through an egress proxy: Node puts one in
 * place at start when NODE_USE_ENV_PROXY is set with HTTP(S)_PROXY.
 */
function egressProxy(): boolean {
  return /ProxyAgent$/.test(getGlobalDispatcher().constructor.name);
}

/**
 * A dispatcher whose own connections are made by `connect`: through the
 * process's egress proxy when it has one (the proxy then connects to the
 * targets; hosts in NO_PROXY are still connected to here), else directly.
 */
function dispatcherWith(connect?: buildConnector.connector): Dispatcher {
  const options = connect ? { connect } : {};
  return egressProxy() ? new EnvHttpProxyAgent(options) : new Agent(options);
}

/**
 * An undici dispatcher whose connections only ever go to allowed addresses:
 * a name is refused when any of its answers is not public, by the lookup
 * made for the connection itself; an IP literal (which no lookup sees) is
 * checked before connecting. Each redirect hop is a new connection, so it
 * is checked too, whoever follows it. Behind an egress proxy, the proxy
 * connects to the targets: refusing private addresses is its job then.
 */
export function createPublicDispatcher(options: PublicDispatcherOptions = {}): Dispatcher {
  const resolve = options.resolve ?? systemResolve;
  const isAllowed = options.isAllowed ?? isPublicAddress;
  const trusted = new Set([...(options.trustedOrigins ?? [])].map((url) => new URL(url).origin));
  const lookupChecked = (hostname: string, lookupOptions: dns.LookupOptions, callback: LookupCallback) => {
    resolve(hostname).then(
      (addresses) => {
        if (addresses.length === 0 || !addresses.every((a) => isAllowed(a.address))) {
          return callback(new NonPublicAddressError(hostname), []);
        }
        if (lookupOptions.all) return callback(null, addresses);
        callback(null, addresses[0]!.address, addresses[0]!.family);
      },
      (error: NodeJS.ErrnoException) => callback(error, []),
    );
  };
  const direct = buildConnector({});
  const checked = buildConnector({ lookup: lookupChecked } as buildConnector.BuildOptions);
  return dispatcherWith((connectOptions, callback) => {
    const origin = connectionOrigin(connectOptions);
    if (origin && trusted.has(origin)) return direct(connectOptions, callback);
    const host = bareHost(connectOptions.hostname);
    if (net.isIP(host)) return isAllowed(host) ? direct(connectOptions, callback) : callback(new NonPublicAddressError(host), null);
    return checked(connectOptions, callback);
  });
}

/** What guardProcessFetch did. */
export interface ProcessFetchGuard {
  /** Whether requests go through an egress proxy (which must then refuse private addresses itself). */
  viaProxy: boolean;
  /** Puts the process's previous dispatcher back. */
  undo(): void;
}

/**
 * Guards every `fetch` of this process — Fedify's deliveries (which follow
 * an inbox's redirects on their own) and lookups, the Bluesky libraries —
 * with a public dispatcher.
 */
export function guardProcessFetch(options: PublicDispatcherOptions = {}): ProcessFetchGuard {
  const previous = getGlobalDispatcher();
  const viaProxy = egressProxy();
  const guarded = createPublicDispatcher(options);
  setGlobalDispatcher(guarded);
  return {
    viaProxy,
    undo() {
      // Only while it is still the one in place: another guard installed since may put this one back when it is undone.
      if (getGlobalDispatcher() !== guarded) return;
      setGlobalDispatcher(previous);
      void guarded.close().catch(() => {});
    },
  };
}

/**
 * A `fetch` for the operator's own services (the bot's PDS, wherever its DID
 * document puts it) on a dispatcher of its own, past the process's guard.
 */
export function createOperatorFetch(): typeof fetch {
  // The platform's fetch (its Request and Response), given an undici dispatcher in the interface it speaks.
  const dispatcher = new Dispatcher1Wrapper(dispatcherWith());
  return (input, init) => globalThis.fetch(input, { ...init, dispatcher } as RequestInit);
}

/**
 * A `fetch` whose connections only ever go to allowed addresses (see
 * createPublicDispatcher).
 */
export function createPublicFetch(options: PublicFetchOptions = {}): typeof fetch {
  let agent: Dispatcher | undefined;
  return async (input, init) => {
    // A Request would carry its own method, headers and body past `init`: callers give a URL.
    if (input instanceof Request) throw new TypeError("publicFetch takes a URL, not a Request.");
    const url = new URL(input);
    agent ??= createPublicDispatcher(options);
    // undici's own fetch: the agent comes from the same package (Node's built-in fetch may be another version).
    // Redirects are the caller's to see and decide on (each would be checked again if followed).
    const res = await undiciFetch(url, { ...(init as object), redirect: "manual", dispatcher: agent });
    // As the platform's own Response: libraries may check `instanceof Response`.
    const response = new Response(NULL_BODY.has(res.status) ? null : (res.body as ReadableStream | null), {
      status: res.status,
      statusText: res.statusText,
      headers: [...res.headers],
    });
    Object.defineProperty(response, "url", { value: res.url });
    return response;
  };
}

const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** The process-wide fetch for public servers. */
export const publicFetch: typeof fetch = createPublicFetch();

/** Whether an error from fetch came from a non-public address. */
export function isNonPublicAddressError(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = e.cause) if (e instanceof NonPublicAddressError) return true;
  return false;
}
